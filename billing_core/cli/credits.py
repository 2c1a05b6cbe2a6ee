"""``usage import`` and ``credits expire``: the router's usage files, and credit expiry with its dry run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import load_settings
from billing_core.core.db import Database
from billing_core.core.errors import BillingError
from billing_core.core.models import CreditPool
from billing_core.credits.expiry import book, plan
from billing_core.credits.usage import UsageFileError, Verdict, apply, parse_usage, preview


def cli_usage(args, actor: Actor, out: Callable[[str], None] = print) -> int:
    """``usage import FILE [--apply] [--csv OUT]``: preview, or book with --apply. Exit 1 when a line
    was malformed or named no customer, or a balance went below zero."""
    require(actor, Action.IMPORT_USAGE)
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageFileError(f"{path} cannot be read: {exc.strerror}.") from None
    parsed = parse_usage(data, path.name)
    settings = load_settings()
    database = Database(getattr(args, "database_url", None) or settings.database_url)
    try:
        if args.apply:
            result = apply(database, actor, parsed, policy=settings.credits)
            shown = result.preview
        else:
            with database.session() as session:
                shown = preview(session, actor, parsed, settings.credits)
    finally:
        database.dispose()
    if shown.previously_imported:
        out(shown.previously_imported)
    out(", ".join(f"{n} {verdict.value}" for verdict, n in shown.counts.items() if n) or "no rows")
    for line in shown.lines:
        if line.verdict in (Verdict.MALFORMED, Verdict.UNKNOWN):
            out(f"  line {line.line}: {line.verdict.value}: {line.reason}")
        elif line.overdraws:
            out(f"  line {line.line}: takes {line.customer}'s balance below zero")
    if args.apply:
        out(result.summary())
    else:
        out(f"preview only: run again with --apply to book {len(shown.to_book)} lines")
    if getattr(args, "csv", None):
        Path(args.csv).write_bytes(shown.to_csv())
        out(f"preview written to {args.csv}")
    problems = shown.counts[Verdict.MALFORMED] + shown.counts[Verdict.UNKNOWN] + len(shown.overdrawn)
    return 1 if problems else 0


def cli_expire(args, actor: Actor, out: Callable[[str], None] = print) -> int:
    """``credits expire [--dry-run] [--as-of YYYY-MM-DD]``: list what would expire and whose, or book it."""
    require(actor, Action.EXPIRE_CREDITS)
    as_of = None
    if args.as_of:
        try:
            day = date.fromisoformat(args.as_of[:10])
        except ValueError:
            raise BillingError("--as-of must be a day, YYYY-MM-DD.") from None
        as_of = datetime(day.year, day.month, day.day, tzinfo=UTC)
    settings = load_settings()
    database = Database(getattr(args, "database_url", None) or settings.database_url)
    try:
        with database.session() as session:
            lines = plan(session, actor, settings.credits, as_of=as_of)
        for x in lines:
            out(
                f"  {x.public_id}  {x.email}  {x.pool.value}  {money.format_credits(x.credits)} "
                f"(since {x.oldest:%Y-%m-%d})"
            )
        total = {pool: sum(x.credits for x in lines if x.pool is pool) for pool in CreditPool}
        out(
            f"{len(lines)} lines: {money.format_credits(total[CreditPool.PAID])} paid and "
            f"{money.format_credits(total[CreditPool.PROMOTIONAL])} promotional credits would expire"
        )
        if args.dry_run:
            out("dry run: nothing was booked; run again without --dry-run to book it")
            return 0
        out(book(database, actor, settings.credits, as_of=as_of).summary())
    finally:
        database.dispose()
    return 0
