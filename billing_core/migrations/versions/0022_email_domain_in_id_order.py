"""The customers of an email domain in id order (issue 12): "example.com" names 20,000 demo customers and
the search lists the first 201 of them. Read with LIMIT and no order, PostgreSQL returned whichever 201 its
index scan met first, so the customers listed, the orders of theirs on the first page and the capped count
changed from run to run. With ``id`` after the domain the index yields them in id order and stops at the
201st, the same ones every time (SQLite's index already ends with the rowid, which is the id).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 10:30:00.000000
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_customers_email_domain", table_name="customers")
    op.create_index("ix_customers_email_domain", "customers", ["email_domain", "id"])


def downgrade() -> None:
    op.drop_index("ix_customers_email_domain", table_name="customers")
    op.create_index("ix_customers_email_domain", "customers", ["email_domain"])
