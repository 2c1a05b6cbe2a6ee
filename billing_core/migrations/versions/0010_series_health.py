"""Series health: per number series how many numbers were issued, the first and the last, filled here
from the stored documents and kept by every allocation after that (billing_core.invoices.numbering).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("invoice_series", sa.Column("issued", BIGINT, server_default=sa.text("0"), nullable=False))
    op.add_column("invoice_series", sa.Column("first_number", BIGINT, nullable=True))
    op.add_column("invoice_series", sa.Column("last_number", BIGINT, nullable=True))
    # Each probe is a range of the (series, sequence) unique index.
    op.execute(
        "UPDATE invoice_series SET "
        "issued = (SELECT count(*) FROM invoices i WHERE i.series = invoice_series.series), "
        "first_number = (SELECT min(sequence) FROM invoices i WHERE i.series = invoice_series.series), "
        "last_number = (SELECT max(sequence) FROM invoices i WHERE i.series = invoice_series.series)"
    )


def downgrade() -> None:
    with op.batch_alter_table("invoice_series") as batch:
        batch.drop_column("last_number")
        batch.drop_column("first_number")
        batch.drop_column("issued")
