"""Payments: gateway checks, refunds (a ledger entry each), sync cursors, settlement imports.

The ledger's unique (order, kind) becomes unique top-up per order, so an order can have several
partial refunds while its credits are still granted only once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:12:38.277619
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_imports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=320), nullable=False),
        sa.Column("rows", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("completed", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_imports")),
    )
    with op.batch_alter_table("settlement_imports", schema=None) as batch_op:
        batch_op.create_index("ix_settlement_imports_sha256", ["sha256"], unique=False)

    op.create_table(
        "sync_cursors",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("position", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_cursors")),
    )
    op.create_table(
        "gateway_checks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_by", sa.String(length=320), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("ref", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("amount_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("refunded_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_gateway_checks_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_checks")),
    )
    with op.batch_alter_table("gateway_checks", schema=None) as batch_op:
        batch_op.create_index("ix_gateway_checks_order_id_checked_at", ["order_id", "checked_at"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("credits", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("credit_note_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["credit_note_id"], ["invoices.id"], name=op.f("fk_refunds_credit_note_id_invoices")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_refunds_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index("ix_refunds_order_id", ["order_id"], unique=False)

    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_ledger_entries_order_id_kind"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_ledger_entries_refund_id"), ["refund_id"])
        batch_op.create_index(
            "uq_ledger_entries_topup_order_id",
            ["order_id"],
            unique=True,
            sqlite_where=sa.text("kind = 'topup'"),
            postgresql_where=sa.text("kind = 'topup'"),
        )
        batch_op.create_foreign_key(batch_op.f("fk_ledger_entries_refund_id_refunds"), "refunds", ["refund_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_ledger_entries_refund_id_refunds"), type_="foreignkey")
        batch_op.drop_index(
            "uq_ledger_entries_topup_order_id",
            sqlite_where=sa.text("kind = 'topup'"),
            postgresql_where=sa.text("kind = 'topup'"),
        )
        batch_op.drop_constraint(batch_op.f("uq_ledger_entries_refund_id"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_ledger_entries_order_id_kind"), ["order_id", "kind"])
        batch_op.drop_column("refund_id")

    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_order_id")

    op.drop_table("refunds")
    with op.batch_alter_table("gateway_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_gateway_checks_order_id_checked_at")

    op.drop_table("gateway_checks")
    op.drop_table("sync_cursors")
    with op.batch_alter_table("settlement_imports", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_imports_sha256")

    op.drop_table("settlement_imports")
