"""Deep checks of the bills: each run's who, when, progress and findings (billing_core.invoices.deep_check).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 11:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STATUS = sa.Enum("running", "finished", "failed", name="checkstatus", native_enum=False, length=10)


def upgrade() -> None:
    op.create_table(
        "invoice_checks",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(length=320), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("done", BIGINT, nullable=False),
        sa.Column("total", BIGINT, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_checks")),
    )


def downgrade() -> None:
    op.drop_table("invoice_checks")
