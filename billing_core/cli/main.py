"""``python -m billing_core``: the same functions the pages use, for ops to run and cron."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import date

from billing_core.access.roles import Actor, Role
from billing_core.bench import run as bench
from billing_core.core import money
from billing_core.core.config import EINVOICE_FORMATS, load_settings
from billing_core.core.errors import BillingError
from billing_core.pricing.catalog import load_pricing, quote


def cli_actor(email: str | None) -> Actor:
    """Who ran the command, as the audit log will name them: ``--actor EMAIL`` or cli:<OS user>."""
    who = (email or "").strip() or f"cli:{getpass.getuser()}"
    if len(who) > 320 or any(ord(ch) < 32 or ch == "\x7f" for ch in who):
        raise BillingError("--actor must be an email address of at most 320 printable characters.")
    return Actor(who, Role.ADMIN, "command line")


def cmd_quote(args: argparse.Namespace) -> int:
    pricing = load_pricing(args.pricing) if args.pricing else load_settings().pricing()
    print(json.dumps(quote(args.amount, args.method, pricing).as_json(), indent=2, ensure_ascii=False))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from billing_core.core.db import Database

    settings = load_settings()
    database = Database(args.database_url or settings.database_url)
    database.migrate()
    print(f"migrated {database.describe()}")
    return 0


def _progress_printer(label: str):
    step = {"next": 0.0}

    def report(done: int, total: int) -> None:
        if total and (done >= step["next"] or done == total):
            print(f"{label}: {done:,} / {total:,} rows written", file=sys.stderr, flush=True)
            step["next"] = done + total / 10

    return report


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD.") from None


def cmd_seed(args: argparse.Namespace) -> int:
    from billing_core.core.db import Database
    from billing_core.demo import seeding as demo

    settings = load_settings()
    database = Database(args.database_url or settings.database_url)
    database.migrate()
    report = demo.seed(
        database,
        orders=args.orders,
        seed=args.seed,
        actor=cli_actor(args.actor),
        replace=args.replace,
        settings=settings,
        progress=_progress_printer("seeding"),
        end=args.end_date,
    )
    print(f"{demo.describe(report)} into {database.describe()}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """The search box's answer: customers (best first), then a page of their orders, newest first."""
    from billing_core.core.db import Database
    from billing_core.orders.customers import find_customers
    from billing_core.orders.search import OrderQuery, count_matches, search_orders

    database = Database(args.database_url or load_settings().database_url)
    actor = Actor(cli_actor(args.actor).email, Role.SUPPORT, "command line")
    with database.reading() as session:
        found = find_customers(session, actor, args.text, limit=args.limit)
        page = search_orders(session, actor, OrderQuery(text=args.text), page_size=args.limit)
        matches = count_matches(session, actor, OrderQuery(text=args.text))
    customers = [
        {"id": h.public_id, "name": h.name, "email": h.email, "company": h.company, "match": h.match.label}
        for h in found.hits
    ]
    orders = [
        {
            "id": r.public_id,
            "created_at": r.created_at.isoformat(),
            "customer": r.customer_public_id,
            "email": r.customer_email,
            "status": r.status.value,
            "amount_cents": r.amount_cents,
            "total_cents": r.total_cents,
        }
        for r in page.rows
    ]
    if args.json:
        out = {"read_as": page.understood_as, "customers": customers, "orders": orders, "order_count": matches.label}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(f"read as: {page.understood_as}")
    print(f"customers ({len(customers)}{'+' if found.more else ''}):")
    for c in customers:
        print(f"  {c['id']}  {c['name']}  <{c['email']}>  ({c['match']})")
    print(f"orders ({matches.label}, newest first):")
    for o in orders:
        total = money.format_plain(o["total_cents"])
        print(f"  {o['id']}  {o['created_at'][:16]}  {o['email']}  {o['status']}  {total}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from billing_core.core.db import Database
    from billing_core.demo import seeding as demo

    settings = load_settings()
    database = Database(args.database_url or settings.database_url)
    report = demo.setup(
        database,
        actor=cli_actor(args.actor),
        settings=settings,
        progress=_progress_printer("first run"),
        end=args.end_date,
    )
    if report is None:
        print(f"{database.describe()} is up to date and already has data")
    else:
        print(f"{demo.describe(report)} into {database.describe()}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.large_database_url and not args.postgres_url:
        raise BillingError("--large-database-url needs --postgres-url: the large rows sit beside its 100,000 rows.")
    options = bench.Options(
        seed_orders=args.orders,
        postgres_url=args.postgres_url,
        large=args.large or args.large_database_url is not None,
        large_url=args.large_database_url,
    )
    bench.run(options, only=args.only or None)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from billing_core.cli.reconcile import cli_reconcile

    return cli_reconcile(args, cli_actor(args.actor))


def cmd_refunds(args: argparse.Namespace) -> int:
    from billing_core.cli.refunds import cli_refunds

    return cli_refunds(args, cli_actor(args.actor))


def cmd_settlement(args: argparse.Namespace) -> int:
    from billing_core.cli.settlement import cli_settlement

    return cli_settlement(args, cli_actor(args.actor))


def cmd_usage(args: argparse.Namespace) -> int:
    from billing_core.cli.credits import cli_usage

    return cli_usage(args, cli_actor(args.actor))


def cmd_credits(args: argparse.Namespace) -> int:
    from billing_core.cli.credits import cli_expire

    return cli_expire(args, cli_actor(args.actor))


def cmd_rollup(args: argparse.Namespace) -> int:
    from billing_core.core.db import Database
    from billing_core.revenue import rollup

    settings = load_settings()
    database = Database(args.database_url or settings.database_url)
    zones = [z.strip() for z in args.timezones.split(",") if z.strip()] if args.timezones else None
    try:
        database.migrate()
        rebuilt = rollup.rebuild(database, cli_actor(args.actor), zones, reason=args.reason)
    finally:
        database.dispose()
    print(
        f"rebuilt the revenue rollup from the orders of {database.describe()} for {', '.join(rebuilt.timezones)}: "
        f"{rebuilt.daily_rows:,} daily rows, and the bills totals from the documents: {rebuilt.bills_rows:,} rows, "
        f"in {rebuilt.seconds:.1f} s"
    )
    return 0


def cmd_invoices(args: argparse.Namespace) -> int:
    from billing_core.cli import invoices
    from billing_core.core.db import Database

    if args.invoices_command == "run-job":
        return invoices.run_launched_job(args)
    if args.invoices_command == "run-check":
        return invoices.run_check(args)
    settings = load_settings()
    database = Database(args.database_url or settings.database_url)
    try:
        if args.invoices_command == "check":
            return invoices.cli_check(database, cli_actor(args.actor), settings)
        return invoices.cli_invoices(args, cli_actor(args.actor), database=database, settings=settings)
    finally:
        database.dispose()


def cmd_worker(args: argparse.Namespace) -> int:
    """Take tasks (invoice regeneration chunks, their closing) from the procrastinate queue until stopped."""
    import logging
    import os

    from sqlalchemy.engine import make_url

    from billing_core.invoices import storage, tasks

    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url  # the tasks read their settings as the app does
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()
    files = storage.store_for(settings).describe()
    print(f"worker on {make_url(settings.database_url).render_as_string()}; files in {files}", flush=True)
    tasks.run_worker(settings.database_url, concurrency=args.concurrency, name=args.name)
    return 0


def cmd_bench_job(args: argparse.Namespace) -> int:
    from billing_core.bench.invoices import run_measured_job

    return run_measured_job(
        args.database_url, args.storage_dir, args.job_id, measure=args.measure, einvoice_format=args.format
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m billing_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("quote", help="price a top-up and print the quote as JSON")
    p.add_argument("--amount", required=True, help='amount in USD, e.g. 100 or "1,500.00"')
    p.add_argument("--method", required=True, help="stripe, airwallex or alipay")
    p.add_argument("--pricing", help="pricing TOML file (default: the configured one)")
    p.set_defaults(func=cmd_quote)

    p = sub.add_parser("migrate", help="bring the database schema up to date")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("seed", help="migrate and fill the database with deterministic demo data")
    p.add_argument("--orders", type=int, default=1_000_000, help="orders to generate (default 1,000,000)")
    p.add_argument("--seed", type=int, default=7, help="random seed: the same seed and size give the same rows")
    p.add_argument("--replace", action="store_true", help="delete all existing data first")
    p.add_argument("--end-date", type=_day, help="last day of the data, YYYY-MM-DD (default: yesterday, UTC)")
    p.add_argument("--actor", help="who runs this, for the audit log (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("search", help="find customers and their orders as the search box reads TEXT")
    p.add_argument("text", help="an id, reference, email or part of one, words of a name or company, tax id, amount")
    p.add_argument("--json", action="store_true", help="print JSON: read_as, customers, orders (with emails)")
    p.add_argument("--limit", type=int, default=20, help="customers and orders to show (default 20)")
    p.add_argument("--actor", help="who runs this (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("setup", help="first run: migrate, and seed demo data if the database has no orders")
    p.add_argument("--end-date", type=_day, help="last day of the demo data, YYYY-MM-DD (default: yesterday, UTC)")
    p.add_argument("--actor", help="who runs this, for the audit log (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("reconcile", help="check stuck orders with their gateway and complete the paid ones")
    p.add_argument("--since", help="orders created from this date (YYYY-MM-DD[THH:MM], UTC)")
    p.add_argument("--until", help="orders created before this date (default: now)")
    p.add_argument("--method", action="append", choices=["stripe", "airwallex", "alipay"], help="repeatable")
    p.add_argument("--events", action="store_true", help="start from Stripe events since the last run instead")
    p.add_argument("--dry-run", action="store_true", help="ask the gateway and list what each order would become")
    p.add_argument("--csv", help="write the result table to this CSV file")
    p.add_argument("--actor", help="who runs this, for the audit log (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("refunds", help="refunds")
    refund_commands = p.add_subparsers(dest="refunds_command", required=True)
    p = refund_commands.add_parser(
        "reconcile", help="finish pending refunds: ask the gateway about each one's key and record its answer"
    )
    p.add_argument("--order", help="only this order's pending refunds (public id)")
    p.add_argument("--actor", help="who runs this, for the audit log (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_refunds)

    p = sub.add_parser("settlement", help="provider settlement files")
    settlement = p.add_subparsers(dest="settlement_command", required=True)
    p = settlement.add_parser(
        "import", help="preview a settlement report (CSV, zip or xlsx); --apply completes the matched orders"
    )
    p.add_argument("file", help="the provider's settlement report: CSV, zip or xlsx")
    p.add_argument("--provider", choices=["airwallex", "alipay"], help="default: detected from the columns")
    p.add_argument(
        "--kind",
        choices=["payment", "refund"],
        help="for a report with no type column: what its rows are (without it such a file completes nothing)",
    )
    p.add_argument("--apply", action="store_true", help="complete the orders the preview matched")
    p.add_argument("--csv", help="write the preview table to this CSV file")
    p.add_argument("--actor", help="who runs this, for the audit log (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_settlement)

    p = sub.add_parser("usage", help="the router's metered usage")
    usage = p.add_subparsers(dest="usage_command", required=True)
    p = usage.add_parser("import", help="preview a usage CSV; --apply books it (each customer, day, model once)")
    p.add_argument("file", help="CSV with customer, day, model, credits (see billing_core/credits/usage.py)")
    p.add_argument("--apply", action="store_true", help="book the new and corrected lines the preview shows")
    p.add_argument("--csv", help="write the preview table to this CSV file")
    p.add_argument("--actor", help="who runs this, for the audit log (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_usage)

    p = sub.add_parser("credits", help="credits: expiry")
    credit_commands = p.add_subparsers(dest="credits_command", required=True)
    p = credit_commands.add_parser("expire", help="expire credits past their term (first in, first out)")
    p.add_argument("--dry-run", action="store_true", help="list what would expire and whose; book nothing")
    p.add_argument("--as-of", help="the day to expire at (YYYY-MM-DD, UTC midnight; default now)")
    p.add_argument("--actor", help="who runs this, for the audit log (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_credits)

    p = sub.add_parser("rollup", help="the Revenue page's rollup")
    rollup_commands = p.add_subparsers(dest="rollup_command", required=True)
    p = rollup_commands.add_parser(
        "rebuild", help="recompute the revenue rollup and the bills totals (one transaction)"
    )
    p.add_argument("--timezones", help="comma-separated IANA zones to keep it for (default: the ones it has)")
    p.add_argument("--reason", default="command line", help="why, for the audit log")
    p.add_argument("--actor", help="who runs this, for the audit log (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    p.set_defaults(func=cmd_rollup)

    from billing_core.cli.invoices import configure_parser

    p = sub.add_parser("invoices", help="regenerate invoice PDFs, verify stored files, deep-check the bills")
    p.add_argument("--actor", help="who runs this, for the audit log (default: cli:<user>)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL")
    configure_parser(p)
    p.set_defaults(func=cmd_invoices)

    p = sub.add_parser("worker", help="run a task worker (team setup: procrastinate queue in PostgreSQL)")
    p.add_argument("--database-url", help="default: the configured DATABASE_URL (PostgreSQL)")
    p.add_argument("--concurrency", type=int, default=1, help="tasks at once (start one worker per core instead)")
    p.add_argument("--name", help="worker name shown in procrastinate's tables (default: procrastinate's)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("bench", help="print benchmark figures beside same-run baselines")
    p.add_argument("--orders", type=int, default=1_000_000, help="orders to seed for the seeding figure")
    p.add_argument("--postgres-url", help="also measure on this PostgreSQL database (it is overwritten)")
    p.add_argument("--only", action="append", choices=sorted(bench.SUITES), help="run only these suites")
    p.add_argument(
        "--large",
        action="store_true",
        help="add the sizes that seed for many minutes (revenue at 10,000,000 orders on PostgreSQL)",
    )
    p.add_argument(
        "--large-database-url",
        help="the --large rows measure on this PostgreSQL database, already seeded with 10,000,000 orders "
        "ending 2026-11-26 (seed --orders 10000000 --end-date 2026-11-26), instead of seeding their own; "
        "implies --large; the pages suite adds its audit history to it once",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-job", help="the invoices benchmark's helper: run one regeneration job in a fresh process")
    p.add_argument("database_url")
    p.add_argument("storage_dir")
    p.add_argument("job_id", type=int)
    p.add_argument("--measure", action="store_true", help="print invoices, invoices/s and peak worker RSS as JSON")
    p.add_argument("--format", choices=EINVOICE_FORMATS, default="pdf", help="every buyer's e-invoice format")
    p.set_defaults(func=cmd_bench_job)
    _actor_anywhere(parser)
    parser.set_defaults(actor=None)
    return parser


def _actor_anywhere(parser: argparse.ArgumentParser) -> None:
    """``--actor EMAIL`` on every command and command group, so it may stand before or after a
    subcommand (``invoices --actor X regenerate`` and ``invoices regenerate --actor X``). Each one
    defaults to "not given", so a subcommand's parser never overwrites what its group was given."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found = next((a for a in sub._actions if a.dest == "actor"), None)
                if found is None:
                    sub.add_argument("--actor", default=argparse.SUPPRESS, help="who runs this, for the audit log")
                else:
                    found.default = argparse.SUPPRESS
                _actor_anywhere(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BillingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
