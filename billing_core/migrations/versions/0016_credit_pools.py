"""Credits apart by pool (paid, promotional) with their worth at the price paid, the balances and the
monthly roll-forward kept beside the ledger (billing_core.credits.ledger), and imported usage.

Every entry before this revision is paid: top-ups are worth their order's amount before fees, a
refund's credits a share of that amount. The balances and monthly rollups are then built from the ledger.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 14:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from billing_core.credits.ledger import _rebuild, _value_from_orders

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
POOL = sa.Enum("paid", "promotional", name="creditpool", native_enum=False, length=12)
KIND = sa.Enum(
    "topup",
    "refund",
    "adjustment",
    "usage",
    "usage_correction",
    "expiry",
    name="ledgerkind",
    native_enum=False,
    length=24,
)
MEASURES = ("entries", "credits", "value_cents")


def upgrade() -> None:
    op.add_column("ledger_entries", sa.Column("pool", POOL, server_default="paid", nullable=False))
    op.add_column("ledger_entries", sa.Column("value_cents", BIGINT, server_default=sa.text("0"), nullable=False))
    op.add_column("ledger_entries", sa.Column("note", sa.Text(), nullable=True))
    _value_from_orders(op.get_bind())
    op.create_table(
        "credit_balances",
        sa.Column("customer_id", BIGINT, autoincrement=False, nullable=False),
        sa.Column("paid_credits", BIGINT, nullable=False),
        sa.Column("promotional_credits", BIGINT, nullable=False),
        sa.Column("paid_value_cents", BIGINT, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_credit_balances_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_credit_balances")),
    )
    keys = [sa.Column("month", sa.Date(), nullable=False)]
    tail = [sa.Column("pool", POOL, nullable=False), sa.Column("kind", KIND, nullable=False)]
    op.create_table(
        "credit_monthly",
        *keys,
        *tail,
        *(sa.Column(m, BIGINT, nullable=False) for m in MEASURES),
        sa.PrimaryKeyConstraint("month", "pool", "kind", name=op.f("pk_credit_monthly")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "customer_credit_monthly",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("customer_id", BIGINT, autoincrement=False, nullable=False),
        sa.Column("pool", POOL, nullable=False),
        sa.Column("kind", KIND, nullable=False),
        *(sa.Column(m, BIGINT, nullable=False) for m in MEASURES),
        sa.PrimaryKeyConstraint("month", "customer_id", "pool", "kind", name=op.f("pk_customer_credit_monthly")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_customer_credit_monthly_customer_id_month", "customer_credit_monthly", ["customer_id", "month"])
    op.create_table(
        "usage_imports",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=320), nullable=False),
        sa.Column("rows", BIGINT, nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_imports")),
    )
    op.create_table(
        "usage_lines",
        sa.Column("customer_id", BIGINT, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("credits", BIGINT, nullable=False),
        sa.Column("promotional_credits", BIGINT, nullable=False),
        sa.Column("paid_value_cents", BIGINT, nullable=False),
        sa.Column("overdrawn", sa.Boolean(), nullable=False),
        sa.Column("import_id", BIGINT, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_usage_lines_customer_id_customers")),
        sa.ForeignKeyConstraint(
            ["import_id"], ["usage_imports.id"], name=op.f("fk_usage_lines_import_id_usage_imports")
        ),
        sa.PrimaryKeyConstraint("customer_id", "day", "model", name=op.f("pk_usage_lines")),
    )
    _rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("usage_lines")
    op.drop_table("usage_imports")
    op.drop_index("ix_customer_credit_monthly_customer_id_month", table_name="customer_credit_monthly")
    op.drop_table("customer_credit_monthly")
    op.drop_table("credit_monthly")
    op.drop_table("credit_balances")
    # Only paid top-ups and refunds existed before this revision.
    op.execute("DELETE FROM ledger_entries WHERE pool <> 'paid' OR kind NOT IN ('topup', 'refund')")
    for column in ("note", "value_cents", "pool"):
        op.drop_column("ledger_entries", column)
