"""Revenue rollups: daily top-ups per reporting time zone (and per country), customers per month, state.

The tables start empty; billing_core.revenue.rollup.ensure_built fills them from the orders the first time
the Revenue page (or ``rollup.rebuild``) runs, and every order write keeps them current after that.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 11:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PLAN = sa.Enum("study", "standard", "pro", "max", "custom", name="planid", native_enum=False, length=24)
METHOD = sa.Enum("stripe", "airwallex", "alipay", name="method", native_enum=False, length=24)
KIND = sa.Enum("new", "returning", name="customerkind", native_enum=False, length=10)
MEASURES = (
    "created_count",
    "paid_count",
    "amount_cents",
    "fee_cents",
    "total_cents",
    "credits",
    "refund_count",
    "refunded_cents",
)


def _daily(name: str, with_country: bool) -> None:
    keys = [sa.Column("tz", sa.String(length=40), nullable=False)]
    if with_country:
        keys.append(sa.Column("country", sa.String(length=2), nullable=False))
    keys += [
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("plan", PLAN, nullable=False),
        sa.Column("method", METHOD, nullable=False),
        sa.Column("kind", KIND, nullable=False),
    ]
    op.create_table(
        name,
        *keys,
        *(sa.Column(m, BIGINT, nullable=False) for m in MEASURES),
        sa.PrimaryKeyConstraint(*(c.name for c in keys), name=op.f(f"pk_{name}")),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    _daily("revenue_daily", with_country=False)
    _daily("revenue_daily_country", with_country=True)
    op.create_table(
        "customer_monthly",
        sa.Column("customer_id", BIGINT, nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("paid_count", BIGINT, nullable=False),
        sa.Column("total_cents", BIGINT, nullable=False),
        sa.Column("amount_cents", BIGINT, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "month", name=op.f("pk_customer_monthly")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_customer_monthly_month_total_cents", "customer_monthly", ["month", "total_cents"])
    op.create_table(
        "revenue_state",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("version", BIGINT, nullable=False),
        sa.Column("timezones", sa.String(length=400), nullable=False),
        sa.Column("built", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revenue_state")),
    )


def downgrade() -> None:
    op.drop_table("revenue_state")
    op.drop_index("ix_customer_monthly_month_total_cents", table_name="customer_monthly")
    op.drop_table("customer_monthly")
    op.drop_table("revenue_daily_country")
    op.drop_table("revenue_daily")
