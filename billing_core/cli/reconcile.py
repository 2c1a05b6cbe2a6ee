"""``reconcile``: check stuck orders (or Stripe events) with their gateway and complete the paid ones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from billing_core.access.roles import Actor
from billing_core.core.db import Database
from billing_core.core.errors import BillingError
from billing_core.core.models import utcnow
from billing_core.pricing.catalog import Method
from billing_core.reconcile.stuck import (
    Outcome,
    reconcile,
    reconcile_from_events,
)


def parse_when(text: str) -> datetime:
    """'2026-11-20' or '2026-11-20T08:00' (UTC unless an offset is given) for the command line."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BillingError(f"{text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM.") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cli_reconcile(args, actor: Actor, out: Callable[[str], None] = print) -> int:
    """``reconcile --since D [--until D] [--method M ...] [--events] [--csv FILE]``; exit 1 if any order erred."""
    from pathlib import Path

    from billing_core.core.config import load_settings
    from billing_core.payments.stripe_gateway import StripeGateway

    settings = load_settings()
    database = Database(getattr(args, "database_url", None) or settings.database_url)

    def show(done: int, total: int) -> None:
        if done and (done % 100 == 0 or done == total):
            out(f"  {done}/{total}")

    try:
        if args.events:
            if not settings.stripe_api_key:
                raise BillingError("--events needs a Stripe API key (STRIPE_API_KEY).")
            gateway = StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
            report = reconcile_from_events(database, actor, settings, gateway, progress=show)
        else:
            if not args.since:
                raise BillingError("Give --since (and optionally --until), or --events.")
            until = parse_when(args.until) if args.until else utcnow()
            methods = [Method(m) for m in args.method] if args.method else None
            report = reconcile(
                database, actor, settings, since=parse_when(args.since), until=until, methods=methods, progress=show
            )
    finally:
        database.dispose()
    out(report.summary())
    if args.csv:
        Path(args.csv).write_bytes(report.to_csv())
        out(f"report written to {args.csv}")
    return 1 if report.counts[Outcome.ERROR] else 0
