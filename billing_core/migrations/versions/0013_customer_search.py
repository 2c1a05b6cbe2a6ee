"""Customer search: a folded text column indexed by trigrams, a character index for short Han, kana and
Hangul names, code-point-order indexes for id and reference prefixes, and orders by amount and total.

SQLite: an FTS5 trigram table over ``customers.search_text`` (external content, kept by triggers in the
same transaction as the row). PostgreSQL: ``pg_trgm`` GIN index on the same column, and
``text_pattern_ops`` indexes so a prefix of an id or reference is an index range whatever the collation
(SQLite's BINARY indexes already are). The folded text and the grams are computed by the app
(billing_core.orders.customer_index) and backfilled here.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from billing_core.orders.customer_index import FTS_REBUILD, search_text, short_grams

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The FTS5 table follows every change to a customer's search_text, in the same statement's transaction.
_TRIGGERS = {
    "customers_search_insert": """
        CREATE TRIGGER customers_search_insert AFTER INSERT ON customers BEGIN
            INSERT INTO customer_search (rowid, search_text) VALUES (new.id, new.search_text);
        END""",
    "customers_search_delete": """
        CREATE TRIGGER customers_search_delete AFTER DELETE ON customers BEGIN
            INSERT INTO customer_search (customer_search, rowid, search_text) VALUES ('delete', old.id, old.search_text);
        END""",
    "customers_search_update": """
        CREATE TRIGGER customers_search_update AFTER UPDATE OF search_text ON customers BEGIN
            INSERT INTO customer_search (customer_search, rowid, search_text) VALUES ('delete', old.id, old.search_text);
            INSERT INTO customer_search (rowid, search_text) VALUES (new.id, new.search_text);
        END""",
}


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.add_column("customers", sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "customer_grams",
        sa.Column("gram", sa.String(length=2), nullable=False),
        sa.Column("customer_id", sa.Integer() if sqlite else sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_customer_grams_customer_id_customers"),
        sa.PrimaryKeyConstraint("gram", "customer_id", name="pk_customer_grams"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_orders_amount_cents_created_at", "orders", ["amount_cents", "created_at"])
    op.create_index("ix_orders_total_cents_created_at", "orders", ["total_cents", "created_at"])

    customers = sa.table(
        "customers",
        sa.column("id"),
        sa.column("name"),
        sa.column("company"),
        sa.column("email"),
        sa.column("tax_id"),
        sa.column("search_text"),
    )
    grams = sa.table("customer_grams", sa.column("gram"), sa.column("customer_id"))
    rows = bind.execute(
        sa.select(customers.c.id, customers.c.name, customers.c.company, customers.c.email, customers.c.tax_id)
    ).all()
    if rows:
        bind.execute(
            customers.update().where(customers.c.id == sa.bindparam("row_id")).values(search_text=sa.bindparam("text")),
            [{"row_id": r.id, "text": search_text(r.name, r.company, r.email, r.tax_id)} for r in rows],
        )
        gram_rows = [{"gram": g, "customer_id": r.id} for r in rows for g in sorted(short_grams(r.name, r.company))]
        if gram_rows:
            bind.execute(grams.insert(), gram_rows)

    if sqlite:
        op.execute(
            "CREATE VIRTUAL TABLE customer_search USING fts5(search_text, content='customers', content_rowid='id', "
            "tokenize='trigram case_sensitive 1')"
        )
        op.execute(FTS_REBUILD)
        for create in _TRIGGERS.values():
            op.execute(create)
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_customers_search_text_trgm ON customers USING gin (search_text gin_trgm_ops)")
        op.execute("CREATE INDEX ix_customers_public_id_prefix ON customers (public_id text_pattern_ops)")
        op.execute("CREATE INDEX ix_orders_public_id_prefix ON orders (public_id text_pattern_ops)")
        op.execute("CREATE INDEX ix_orders_provider_ref_prefix ON orders (provider_ref text_pattern_ops)")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for name in _TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
        op.execute("DROP TABLE customer_search")
    else:
        for name in (
            "ix_orders_provider_ref_prefix",
            "ix_orders_public_id_prefix",
            "ix_customers_public_id_prefix",
            "ix_customers_search_text_trgm",
        ):
            op.execute(f"DROP INDEX {name}")
    op.drop_index("ix_orders_total_cents_created_at", table_name="orders")
    op.drop_index("ix_orders_amount_cents_created_at", table_name="orders")
    op.drop_table("customer_grams")
    if sqlite:  # in place (SQLite 3.35+): a batch copy would drop customers, which other tables refer to
        op.execute("ALTER TABLE customers DROP COLUMN search_text")
    else:
        op.drop_column("customers", "search_text")
