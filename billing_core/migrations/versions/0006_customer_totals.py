"""Customer totals: paid top-ups per customer over all time, filled from customer_monthly.

Top customers use a customer's lifetime total as the bound on what they can have paid in any
period, so only the few customers whose lifetime reaches the period's tenth best are summed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customer_totals",
        sa.Column("customer_id", BIGINT, autoincrement=False, nullable=False),
        sa.Column("paid_count", BIGINT, nullable=False),
        sa.Column("total_cents", BIGINT, nullable=False),
        sa.Column("amount_cents", BIGINT, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_totals")),
        sqlite_with_rowid=False,
    )
    # customer_monthly is kept exact with every payment, so its sums per customer are the totals.
    op.execute(
        "INSERT INTO customer_totals (customer_id, paid_count, total_cents, amount_cents) "
        "SELECT customer_id, sum(paid_count), sum(total_cents), sum(amount_cents) FROM customer_monthly "
        "GROUP BY customer_id"
    )
    op.create_index("ix_customer_totals_total_cents", "customer_totals", ["total_cents"])


def downgrade() -> None:
    op.drop_index("ix_customer_totals_total_cents", table_name="customer_totals")
    op.drop_table("customer_totals")
