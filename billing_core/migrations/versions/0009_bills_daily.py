"""Bills totals: issued invoices and credit notes per UTC day, plan, method, kind, series and sandbox
flag, filled here from the documents and kept by every issue after that (billing_core.invoices.totals).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 10:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PLAN = sa.Enum("study", "standard", "pro", "max", "custom", name="planid", native_enum=False, length=24)
METHOD = sa.Enum("stripe", "airwallex", "alipay", name="method", native_enum=False, length=24)
KIND = sa.Enum("invoice", "credit_note", name="invoicekind", native_enum=False, length=24)
MEASURES = ("documents", "subtotal_cents", "fee_cents", "tax_cents", "total_cents")


def upgrade() -> None:
    keys = [
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("plan", PLAN, nullable=False),
        sa.Column("method", METHOD, nullable=False),
        sa.Column("kind", KIND, nullable=False),
        sa.Column("series", sa.String(length=40), nullable=False),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
    ]
    op.create_table(
        "bills_daily",
        *keys,
        *(sa.Column(m, BIGINT, nullable=False) for m in MEASURES),
        sa.PrimaryKeyConstraint(*(c.name for c in keys), name=op.f("pk_bills_daily")),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        day = "CAST((i.issued_at AT TIME ZONE 'UTC') AS date)"
    else:
        day = "substr(i.issued_at, 1, 10)"  # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS...'
    op.execute(
        f"INSERT INTO bills_daily (day, plan, method, kind, series, sandbox, {', '.join(MEASURES)}) "  # noqa: S608
        f"SELECT {day}, o.plan, o.method, i.kind, i.series, i.sandbox, count(*), sum(i.subtotal_cents), "
        "sum(i.fee_cents), sum(i.tax_cents), sum(i.total_cents) "
        "FROM invoices i JOIN orders o ON o.id = i.order_id "
        f"GROUP BY {day}, o.plan, o.method, i.kind, i.series, i.sandbox"
    )


def downgrade() -> None:
    op.drop_table("bills_daily")
