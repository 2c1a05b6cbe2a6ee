"""Refund intents: a refund is a row with its idempotency key before it is money, then the gateway's answer.
The simulated gateway keeps its refunds and idempotency keys as a provider does. Regeneration jobs keep
their starter's role.

Refunds recorded before this revision all succeeded (they were written after the gateway answered):
they become succeeded, refunded when they were created, with a key of their own.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _enum(*values: str, length: int) -> sa.Enum:  # as models._enum makes them
    return sa.Enum(*values, native_enum=False, length=length, create_constraint=False)


def _add_required(table: str, column: sa.Column, fill: str | None) -> None:
    """Add a NOT NULL column to a table with rows, without rebuilding the table.

    SQLite changes a column only by rebuilding its table, which the foreign keys pointing at these
    tables forbid while they hold rows; there the column is added NOT NULL with ``fill`` as its
    server default (the code always sets it). PostgreSQL gets it nullable, filled, then NOT NULL.
    """
    if op.get_bind().dialect.name == "sqlite":
        column.server_default = sa.DefaultClause(fill if fill is not None else "")
        op.add_column(table, column)
        return
    column.nullable = True
    op.add_column(table, column)
    if fill is not None:
        op.execute(sa.text(f"UPDATE {table} SET {column.name} = :fill").bindparams(fill=fill))  # noqa: S608


def _require(table: str, column: str, type_) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(table, column, existing_type=type_, nullable=False)


STATUS = _enum("requested", "succeeded", "failed", length=16)
ROLE = _enum("support", "finance", "analyst", "admin", length=16)


def upgrade() -> None:
    _add_required("refunds", sa.Column("status", STATUS, nullable=False), "succeeded")
    _add_required("refunds", sa.Column("idempotency_key", sa.String(length=200), nullable=False), None)
    op.add_column("refunds", sa.Column("gateway_refund_id", sa.String(length=255), nullable=True))
    op.add_column("refunds", sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("refunds", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("refunds", sa.Column("finished_by", sa.String(length=320), nullable=True))
    op.add_column("refunds", sa.Column("failure_reason", sa.Text(), nullable=True))
    op.execute(
        "UPDATE refunds SET idempotency_key = 'billing-ops-refund-legacy-' || id, "
        "refunded_at = created_at, finished_at = created_at, finished_by = created_by"
    )
    _require("refunds", "status", STATUS)
    _require("refunds", "idempotency_key", sa.String(length=200))
    op.create_index("uq_refunds_idempotency_key", "refunds", ["idempotency_key"], unique=True)
    op.create_index(
        "ix_refunds_requested",
        "refunds",
        ["created_at"],
        unique=False,
        sqlite_where=sa.text("status = 'requested'"),
        postgresql_where=sa.text("status = 'requested'"),
    )

    op.create_table(
        "simulated_refunds",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("payment_ref", sa.String(length=64), nullable=False),
        sa.Column("amount_cents", BIGINT, nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_ref"],
            ["simulated_payments.ref"],
            name=op.f("fk_simulated_refunds_payment_ref_simulated_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulated_refunds")),
    )
    op.create_index("ix_simulated_refunds_payment_ref", "simulated_refunds", ["payment_ref"])
    op.create_table(
        "simulated_requests",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_simulated_requests")),
    )

    # Jobs started before this revision were audited as finance; that is all that is known of them.
    _add_required("regeneration_jobs", sa.Column("created_role", ROLE, nullable=False), "finance")
    _require("regeneration_jobs", "created_role", ROLE)


def downgrade() -> None:
    op.drop_column("regeneration_jobs", "created_role")
    op.drop_table("simulated_requests")
    op.drop_index("ix_simulated_refunds_payment_ref", table_name="simulated_refunds")
    op.drop_table("simulated_refunds")
    # Only what succeeded was a refund before this revision.
    op.execute("DELETE FROM refunds WHERE status <> 'succeeded'")
    op.drop_index("ix_refunds_requested", table_name="refunds")
    op.drop_index("uq_refunds_idempotency_key", table_name="refunds")
    for column in (
        "failure_reason",
        "finished_by",
        "finished_at",
        "refunded_at",
        "gateway_refund_id",
        "idempotency_key",
        "status",
    ):
        op.drop_column("refunds", column)
