"""Documents by order: a customer's invoices and credit notes (bills review, batch selection) are
found through their orders by index instead of a pass over every document.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 11:20:00.000000
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_invoices_order_id", "invoices", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_invoices_order_id", table_name="invoices")
