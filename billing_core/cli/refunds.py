"""``refunds reconcile``: finish pending refunds at the gateway."""

from __future__ import annotations

from collections.abc import Callable

from billing_core.access.roles import Actor
from billing_core.core import money
from billing_core.core.db import Database
from billing_core.orders.refunds import (
    reconcile_refunds,
)


def cli_refunds(args, actor: Actor, out: Callable[[str], None] = print) -> int:
    """``refunds reconcile [--order ID]``: finish pending refunds; exit 1 if any is still open or erred."""
    from billing_core.core.config import load_settings

    settings = load_settings()
    database = Database(getattr(args, "database_url", None) or settings.database_url)
    try:
        report = reconcile_refunds(database, actor, settings, order_id=args.order)
    finally:
        database.dispose()
    out(report.summary())
    for row in report.rows:
        if row.outcome not in ("succeeded", "already finished"):
            out(f"  {row.order} {money.format_cents(row.amount_cents)}: {row.outcome}: {row.message}")
    return 1 if any(r.outcome in ("still pending", "error") for r in report.rows) else 0
