"""Sandbox customers, newest first, by an index of them alone: the top-up simulator's list read every customer
(0.15 s a run at 10,000,000 orders on PostgreSQL, 1,250,000 customers).

The predicate is the one the query compiles to on each database (``Customer.sandbox.is_(True)``), so each
planner can use the index.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 17:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_customers_sandbox_created_at",
        "customers",
        ["created_at"],
        sqlite_where=sa.text("sandbox IS 1"),
        postgresql_where=sa.text("sandbox IS true"),
    )


def downgrade() -> None:
    op.drop_index("ix_customers_sandbox_created_at", table_name="customers")
