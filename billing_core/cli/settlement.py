"""``settlement import``: preview a provider's settlement file, or apply it."""

from __future__ import annotations

from collections.abc import Callable

from billing_core.access.roles import Actor
from billing_core.core.db import Database
from billing_core.reconcile.settlement import (
    SettlementError,
    Verdict,
    apply,
    parse_settlement,
    preview,
)


def cli_settlement(args, actor: Actor, out: Callable[[str], None] = print) -> int:
    """``settlement import FILE [--provider P] [--apply] [--csv OUT]``: preview, or apply with --apply."""
    from pathlib import Path

    from billing_core.core.config import load_settings

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettlementError(f"{path} cannot be read: {exc.strerror}.") from None
    parsed = parse_settlement(data, path.name, args.provider)
    settings = load_settings()
    database = Database(getattr(args, "database_url", None) or settings.database_url)
    try:
        if args.apply:
            result = apply(database, actor, settings, parsed)
            shown = result.preview
        else:
            with database.session() as session:
                shown = preview(session, actor, parsed)
    finally:
        database.dispose()
    if shown.previously_imported:
        out(shown.previously_imported)
    out(", ".join(f"{n} {verdict.value}" for verdict, n in shown.counts.items() if n) or "no rows")
    for line in shown.lines:
        if line.verdict in (Verdict.MISMATCH, Verdict.MALFORMED, Verdict.NOT_FOUND):
            out(f"  line {line.line}: {line.verdict.value}: {line.reason}")
    if args.apply:
        out(result.summary())
        for line, message in result.errors:
            out(f"  line {line}: {message}")
    else:
        out(f"preview only: run again with --apply to complete {len(shown.to_complete)} orders")
    if args.csv:
        Path(args.csv).write_bytes(shown.to_csv())
        out(f"preview written to {args.csv}")
    return 1 if args.apply and result.errors else 0
