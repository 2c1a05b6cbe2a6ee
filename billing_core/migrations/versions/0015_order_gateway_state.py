"""The latest gateway answer on the order: a list shows what the gateway said, and the stuck view
(unpaid here, paid at the gateway) is a partial index read oldest first.

Backfilled from each order's newest row in gateway_checks.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 14:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from billing_core.core.models import STUCK_PAID_WHERE, UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_LATEST = """
    SELECT {column} FROM gateway_checks g WHERE g.order_id = orders.id
    ORDER BY g.checked_at DESC, g.id DESC LIMIT 1
"""


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both databases: no copy of the orders table.
    op.add_column("orders", sa.Column("gateway_state", sa.String(20), nullable=True))
    op.add_column("orders", sa.Column("gateway_checked_at", UTCDateTime(), nullable=True))
    op.execute(
        "UPDATE orders SET "  # noqa: S608 - fixed text, no input
        f"gateway_state = ({_LATEST.format(column='state')}), "
        f"gateway_checked_at = ({_LATEST.format(column='checked_at')}) "
        "WHERE id IN (SELECT order_id FROM gateway_checks)"
    )
    op.create_index(
        "ix_orders_stuck_paid_created_at",
        "orders",
        ["created_at", "id"],
        sqlite_where=sa.text(STUCK_PAID_WHERE),
        postgresql_where=sa.text(STUCK_PAID_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_orders_stuck_paid_created_at", table_name="orders")
    # ALTER TABLE DROP COLUMN (SQLite 3.35+): a batch copy of orders would break the keys pointing at it.
    op.drop_column("orders", "gateway_checked_at")
    op.drop_column("orders", "gateway_state")
