"""The character index also holds each word's first Han, kana or Hangul character after a space (" 娜"):
the start of a word is one index range, not a check of the folded text of every customer with the
character (thousands for 娜 at 1,000,000 orders).

The rows are refilled from the same function the app and the demo loader write them with
(billing_core.orders.customer_index.short_grams), in batches.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 14:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from billing_core.orders.customer_index import short_grams

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BATCH = 10_000


def _refill(grams_of) -> None:
    bind = op.get_bind()
    customers = sa.table("customers", sa.column("id"), sa.column("name"), sa.column("company"))
    grams = sa.table("customer_grams", sa.column("gram"), sa.column("customer_id"))
    bind.execute(grams.delete())
    after = 0
    while True:
        rows = bind.execute(
            sa.select(customers.c.id, customers.c.name, customers.c.company)
            .where(customers.c.id > after)
            .order_by(customers.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        found = [{"gram": g, "customer_id": r.id} for r in rows for g in sorted(grams_of(r.name, r.company))]
        if found:
            bind.execute(grams.insert(), found)
        after = rows[-1].id


def upgrade() -> None:
    _refill(short_grams)


def downgrade() -> None:
    _refill(lambda name, company: {g for g in short_grams(name, company) if not g.startswith(" ")})
