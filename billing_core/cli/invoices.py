"""``invoices {regenerate,verify,check,run-job,run-check}``: regeneration jobs, stored files, the deep check."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from billing_core.access.roles import Action, Actor, Role, require
from billing_core.core.config import Settings, load_settings
from billing_core.core.db import Database, transaction
from billing_core.core.models import (
    RegenerationJob,
    RegenerationStatus,
)
from billing_core.invoices import deep_check, render, storage
from billing_core.invoices.batch import (
    dry_run,
    run_job,
    select_invoices,
    start_job,
    verify,
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m billing_core invoices {regenerate,verify,check,run-job,run-check}``."""
    sub = parser.add_subparsers(dest="invoices_command", required=True)
    sub.add_parser("check", help="deep check of the bills (every order and document read); stores its result")
    launched = {
        "run-job": ("run or resume a regeneration job the Invoices page launched, as its starter", "job_id"),
        "run-check": ("do a deep check the Invoices page started, as its starter", "check_id"),
    }
    for name, (text, key) in launched.items():
        p = sub.add_parser(name, help=text)
        p.add_argument(key, type=int)
        if name == "run-job":
            p.add_argument("--workers", type=int, default=2)
        p.add_argument("--actor", required=True, help="email of the person it runs for")
        p.add_argument("--role", required=True, choices=[role.value for role in Role])
        p.add_argument("--name", default="")
    chosen = {
        "regenerate": "regenerate the chosen invoices' PDFs as new versions (--dry-run first, --resume JOB)",
        "verify": "check the chosen invoices' stored files against their recorded hashes",
    }
    for name, text in chosen.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("--since", help="issued on or after YYYY-MM-DD")
        p.add_argument("--until", help="issued on or before YYYY-MM-DD")
        p.add_argument("--plan", action="append", dest="plans", help="study|standard|pro|max|custom (repeatable)")
        p.add_argument("--customer", help="customer public id or email")
        p.add_argument("--number-from")
        p.add_argument("--number-to")
        p.add_argument("--numbers", help="comma-separated invoice numbers, or @file with one per line")
        if name == "regenerate":
            p.add_argument("--reason", help="why (required unless --dry-run or --resume)")
            p.add_argument("--paper", choices=render.PAPERS, default=None)
            p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
            p.add_argument("--dry-run", action="store_true")
            p.add_argument("--resume", type=int, metavar="JOB_ID", help="continue an interrupted job")


def _numbers(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    if raw.startswith("@"):
        return Path(raw[1:]).read_text(encoding="utf-8").split()
    return [n for n in raw.replace("\n", ",").split(",") if n.strip()]


def cli_invoices(
    args: argparse.Namespace,
    actor: Actor,
    *,
    database: Database | None = None,
    settings: Settings | None = None,
    out: Callable[[str], None] = print,
) -> int:
    reads_only = args.invoices_command == "verify" or args.dry_run
    require(actor, Action.READ_BILLS if reads_only else Action.REGENERATE_INVOICES)  # before migrating
    settings = settings or Settings()
    database = database or Database(settings.database_url)
    database.migrate()
    root = storage.storage_root(settings)
    with database.session() as session:
        chosen = None
        if args.invoices_command == "verify" or not getattr(args, "resume", None):
            chosen = select_invoices(
                session,
                actor,
                since=args.since,
                until=args.until,
                plans=args.plans,
                customer=args.customer,
                number_from=args.number_from,
                number_to=args.number_to,
                numbers=_numbers(args.numbers),
            )
            for number in chosen.invalid_numbers:
                out(f"not an invoice number: {number}")
        if args.invoices_command == "verify":
            report = verify(session, actor, chosen, root=root)
            for path in report.missing:
                out(f"MISSING {path}")
            for path in report.altered:
                out(f"ALTERED {path}")
            out(f"checked {report.checked} files: {len(report.missing)} missing, {len(report.altered)} altered")
            return 0 if report.ok else 1
        if args.dry_run:
            result = dry_run(session, actor, chosen, workers=args.workers, settings=settings)
            out(
                f"{result.count} invoices; {result.changed_in_sample} of {result.sampled} sampled would change "
                f"(about {result.estimated_changed}); about {result.estimated_seconds:.1f} s"
            )
            return 0
        if args.resume:
            job_id = args.resume
        else:
            with transaction(session):
                job_id = start_job(
                    session, actor, chosen, args.reason or "", paper=args.paper or settings.invoice_paper
                ).id
            out(f"job {job_id}: {chosen.count} invoices")

    def show(done: int, total: int) -> None:
        out(f"job {job_id}: {done}/{total}")

    job = run_job(database, actor, job_id, workers=args.workers, progress=show, settings=settings)
    out(f"job {job_id} {job.status.value}: {job.done}/{job.total}; zip {root / job.zip_path if job.zip_path else '-'}")
    return 0


def cli_check(database: Database, actor: Actor, settings: Settings, out=print) -> int:
    """``python -m billing_core invoices check``: one run in the foreground; exit 1 when it finds trouble."""
    require(actor, Action.CHECK_BILLS)  # before migrating
    database.migrate()
    with database.session() as session:
        check_id = deep_check.start(session, actor)
    result = deep_check.run(database, actor, check_id, root=storage.storage_root(settings))
    for check in result.checks:
        out(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.message}")
        for example in check.examples:
            out(f"     {example}")
    return 0 if all(c.ok for c in result.checks) else 1


def _launched_actor(args: argparse.Namespace) -> Actor:
    """The person a page launched the process for (``--actor EMAIL --role ROLE``); the role is checked again."""
    return Actor(args.actor, Role(args.role), args.name)


def run_check(args: argparse.Namespace) -> int:
    """``invoices run-check CHECK_ID --actor EMAIL --role ROLE``: do a run the page started, as the person who
    started it (``deep_check.launch`` passes the signed-in actor)."""
    settings = load_settings()
    database = Database(settings.database_url)
    try:
        deep_check.run(database, _launched_actor(args), args.check_id, root=storage.storage_root(settings))
    finally:
        database.dispose()
    return 0


def run_launched_job(args: argparse.Namespace) -> int:
    """``invoices run-job JOB_ID --actor EMAIL --role ROLE [--workers N]``: run or resume one regeneration job
    as that person (``review.launch_job`` passes its signed-in actor); it stops when the job is cancelled."""
    settings = load_settings()
    database = Database(settings.database_url)
    job_id = args.job_id

    def cancelled() -> bool:
        with database.session() as session:
            return session.scalar(select(RegenerationJob.status).where(RegenerationJob.id == job_id)) != (
                RegenerationStatus.RUNNING
            )

    try:
        job = run_job(
            database, _launched_actor(args), job_id, workers=args.workers, should_stop=cancelled, settings=settings
        )
        print(f"job {job_id} {job.status.value}: {job.done}/{job.total}", flush=True)
    finally:
        database.dispose()
    return 0
