"""The demo's credits: written by the seed in its own transaction, after the orders and the ledger."""

from __future__ import annotations

from sqlalchemy import Connection

from billing_core.credits import ledger

# Children of customers, emptied before them when the seed replaces everything.
TABLES = ("approvals", "usage_lines", "usage_imports", *ledger.TABLES)


def _load(conn: Connection, offsets: dict[str, int]) -> None:
    """The paid credits' worth of the orders just written, then the balances and roll-forward from the ledger."""
    ledger._value_from_orders(conn, offsets.get("orders", 0))
    ledger._rebuild(conn)
