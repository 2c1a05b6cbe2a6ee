"""Three search indexes (issue 12: p95 at most 10 ms at 1,000,000 orders):

- ``customers.email_domain``, the part of the email after its "@", by a B-tree: "mail.test" names
  20,000 customers in the demo, and through the trigram index every layer of the search read them all to
  find 11 (PostgreSQL: 60-90 ms). The customer write keeps it (billing_core.orders.customer_index).
- ``ix_orders_customer_id_created_at`` with ``id`` as its last column: a customer's newest orders, in the
  order the pages list them (created_at, id), from the index alone. On PostgreSQL the page of 200 matched
  customers' orders read every one of their rows from the table (4,000-9,000 rows: 20-30 ms).
- PostgreSQL: ``ix_customers_search_words``, a GIN index of search_text as the array of its words: a whole
  word is one posting list. Through the trigram index "nelson" read every customer holding "son" (12 ms;
  this: 1.4 ms), "zoe nunez" every one holding "nez".

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 19:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

WORDS_INDEX = "ix_customers_search_words"  # the expression of billing_core.orders.customer_index.words_column


def upgrade() -> None:
    op.add_column("customers", sa.Column("email_domain", sa.String(255), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE customers SET email_domain = substring(email from '@([^@]*)$')")
    else:  # what follows the last "@": the email less what rtrim leaves when it strips every other character
        op.execute(
            "UPDATE customers SET email_domain = nullif(replace(email, rtrim(email, replace(email, '@', '')), ''), email)"
        )
    op.create_index("ix_customers_email_domain", "customers", ["email_domain"])
    op.drop_index("ix_orders_customer_id_created_at", table_name="orders")
    op.create_index("ix_orders_customer_id_created_at", "orders", ["customer_id", "created_at", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX {WORDS_INDEX} ON customers USING gin (string_to_array(btrim(search_text), ' '))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX {WORDS_INDEX}")
    op.drop_index("ix_orders_customer_id_created_at", table_name="orders")
    op.create_index("ix_orders_customer_id_created_at", "orders", ["customer_id", "created_at"])
    op.drop_index("ix_customers_email_domain", table_name="customers")
    op.drop_column("customers", "email_domain")
