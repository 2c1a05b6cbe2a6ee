"""Approvals of refunds and manual completions: the order, the refund's amount, the provider reference,
the override of used credits, and the refund an approval made.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 16:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A batch copy on SQLite (its ALTER TABLE adds no foreign key); plain ALTER TABLE on PostgreSQL. The
    # approvals table is small and nothing points at it.
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("order_id", BIGINT, nullable=True))
        batch.add_column(sa.Column("amount_cents", BIGINT, nullable=True))
        batch.add_column(sa.Column("reference", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("override", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("refund_id", BIGINT, nullable=True))
        batch.create_foreign_key(op.f("fk_approvals_order_id_orders"), "orders", ["order_id"], ["id"])
        batch.create_foreign_key(op.f("fk_approvals_refund_id_refunds"), "refunds", ["refund_id"], ["id"])
        batch.create_index("ix_approvals_order_id", ["order_id"])


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.drop_index("ix_approvals_order_id")
        batch.drop_constraint(op.f("fk_approvals_refund_id_refunds"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_approvals_order_id_orders"), type_="foreignkey")
        batch.drop_column("refund_id")
        batch.drop_column("override")
        batch.drop_column("reference")
        batch.drop_column("amount_cents")
        batch.drop_column("order_id")
