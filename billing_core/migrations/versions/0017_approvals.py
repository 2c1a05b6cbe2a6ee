"""Approvals: goodwill grants and correction debits proposed by one person and approved by others.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 14:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("kind", sa.Enum("adjustment", name="approvalkind", native_enum=False, length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "approved", "rejected", "expired", name="approvalstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("customer_id", BIGINT, nullable=False),
        sa.Column("credits", BIGINT, nullable=False),
        sa.Column(
            "pool", sa.Enum("paid", "promotional", name="creditpool", native_enum=False, length=12), nullable=False
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("proposed_by", sa.String(length=320), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approvals_needed", BIGINT, nullable=False),
        sa.Column("approved_by", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("ledger_entry_id", BIGINT, nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_approvals_customer_id_customers")),
        sa.ForeignKeyConstraint(
            ["ledger_entry_id"], ["ledger_entries.id"], name=op.f("fk_approvals_ledger_entry_id_ledger_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    op.create_index("ix_approvals_status_proposed_at", "approvals", ["status", "proposed_at"])
    op.create_index("ix_approvals_customer_id", "approvals", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_approvals_customer_id", table_name="approvals")
    op.drop_index("ix_approvals_status_proposed_at", table_name="approvals")
    op.drop_table("approvals")
