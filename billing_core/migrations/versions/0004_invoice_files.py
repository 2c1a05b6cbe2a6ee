"""Invoice files: every stored PDF version with its hash, and batch regeneration jobs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "regeneration_jobs",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("paper", sa.String(length=10), nullable=False),
        sa.Column("total", BIGINT, nullable=False),
        sa.Column("done", BIGINT, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "running", "cancelled", "finished", "failed", native_enum=False, length=24, create_constraint=False
            ),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("zip_path", sa.String(length=500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regeneration_jobs")),
    )
    op.create_table(
        "invoice_files",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("invoice_id", BIGINT, nullable=False),
        sa.Column("version", BIGINT, nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", BIGINT, nullable=False),
        sa.Column("template_version", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("job_id", BIGINT, nullable=True),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_files_invoice_id_invoices")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["regeneration_jobs.id"], name=op.f("fk_invoice_files_job_id_regeneration_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_files")),
        sa.UniqueConstraint("invoice_id", "version", name="uq_invoice_files_invoice_id_version"),
        sa.UniqueConstraint("job_id", "invoice_id", name="uq_invoice_files_job_id_invoice_id"),
    )


def downgrade() -> None:
    op.drop_table("invoice_files")
    op.drop_table("regeneration_jobs")
