"""Order search: prefix indexes on customers' name and email.

On PostgreSQL both use ``text_pattern_ops``, so a prefix range (``~>=~`` / ``~<~``) compares
code points byte by byte whatever the database's collation is, and can use the index. On SQLite
the same definitions are plain indexes (its BINARY collation already orders by code point); the
email one duplicates the unique constraint's index there, a small price for one schema.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 09:00:00.000000
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customers_name_prefix", ["name"], unique=False, postgresql_ops={"name": "text_pattern_ops"}
        )
        batch_op.create_index(
            "ix_customers_email_prefix", ["email"], unique=False, postgresql_ops={"email": "text_pattern_ops"}
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_email_prefix", postgresql_ops={"email": "text_pattern_ops"})
        batch_op.drop_index("ix_customers_name_prefix", postgresql_ops={"name": "text_pattern_ops"})
