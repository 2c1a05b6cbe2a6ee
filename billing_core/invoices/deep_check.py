"""The bills deep check run in the background: started from the page or cron, stored with who and when.

``start`` records a run; ``run`` does it (``bills.checks``: every order and document read) and stores
what it found, step by step, so a page follows its progress through the row; ``latest`` is what the
Invoices page shows. ``python -m billing_core invoices check`` starts and runs one in the foreground;
the page's button runs ``python -m billing_core invoices run-check CHECK_ID`` in its own process.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError, shown_to_people
from billing_core.core.models import CheckStatus, InvoiceCheck, InvoiceSeries, utcnow
from billing_core.invoices import background, numbering, storage
from billing_core.invoices import review as bills

STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class CheckRun:
    id: int
    status: CheckStatus
    started_at: datetime
    started_by: str
    finished_at: datetime | None
    done: int
    total: int
    checks: list[bills.Check]
    error: str | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0


def _view(row: InvoiceCheck) -> CheckRun:
    found = [bills.Check(**c) for c in row.result or []]
    return CheckRun(
        row.id, row.status, row.started_at, row.started_by, row.finished_at, row.done, row.total, found, row.error
    )


def start(session: Session, actor: Actor) -> int:
    """Record a new run (its steps not done yet), audited; returns its id. Refused while another runs."""
    require(actor, Action.CHECK_BILLS)
    with transaction(session):
        now = utcnow()
        running = select(InvoiceCheck.id).where(InvoiceCheck.status == CheckStatus.RUNNING)
        # A run that has said nothing for this long lost its process (a restart, a kill): it ends as failed.
        session.execute(
            update(InvoiceCheck)
            .where(InvoiceCheck.id.in_(running.where(InvoiceCheck.started_at < now - STALE_AFTER)))
            .values(status=CheckStatus.FAILED, finished_at=now, error="interrupted: its process is gone")
            .execution_options(synchronize_session=False)
        )
        busy = session.scalar(running)
        if busy is not None:
            raise BillingError(f"Deep check {busy} is still running; its result will show here when it ends.")
        row = InvoiceCheck(started_at=utcnow(), started_by=actor.email, total=len(bills.CHECKS))
        session.add(row)
        session.flush()
        audit.record(session, actor, Action.CHECK_BILLS.value, "invoice_check", row.id, after={"status": "running"})
        return row.id


def run(database: Database, actor: Actor, check_id: int, *, root: Path | storage.Store) -> CheckRun:
    """Do the run ``start`` recorded, as ``actor``: progress after each step, the findings at the end (or the
    error: its type and a sentence; the message goes to the server log)."""
    require(actor, Action.CHECK_BILLS)

    def progress(done: int, total: int) -> None:
        with database.session() as session, transaction(session):
            session.execute(update(InvoiceCheck).where(InvoiceCheck.id == check_id).values(done=done, total=total))

    values: dict = {"status": CheckStatus.FAILED, "error": "interrupted: its process was stopped"}
    try:
        with database.session() as session:
            found = bills.checks(session, actor, root=root, progress=progress)
        values = {"status": CheckStatus.FINISHED, "result": [asdict(c) for c in found]}
    except Exception as exc:
        values = {"status": CheckStatus.FAILED, "error": shown_to_people(exc, f"running deep check {check_id}")}
        raise
    finally:
        with database.session() as session, transaction(session):
            session.execute(
                update(InvoiceCheck).where(InvoiceCheck.id == check_id).values(finished_at=utcnow(), **values)
            )
    with database.session() as session:
        return _view(session.get(InvoiceCheck, check_id))


def latest(session: Session, actor: Actor) -> CheckRun | None:
    """The newest run, running or ended; None before the first."""
    require(actor, Action.READ_BILLS)
    row = session.scalar(select(InvoiceCheck).order_by(InvoiceCheck.id.desc()).limit(1))
    return None if row is None else _view(row)


def last_finished(session: Session, actor: Actor) -> CheckRun | None:
    """The newest run that ended with findings: what the page shows while another one runs."""
    require(actor, Action.READ_BILLS)
    stmt = select(InvoiceCheck).where(InvoiceCheck.status == CheckStatus.FINISHED)
    row = session.scalar(stmt.order_by(InvoiceCheck.id.desc()).limit(1))
    return None if row is None else _view(row)


def series_check(session: Session, actor: Actor) -> bills.Check:
    """Every series' health as its allocator kept it: one row per series, so it is shown on every page run."""
    problems = [h.problem for h in numbering.series_health(session, actor) if h.problem]
    series = session.scalar(select(func.count()).select_from(InvoiceSeries)) or 0
    message = (
        f"All {series} number series are gapless as allocated."
        if not problems
        else f"{len(problems)} series have gaps."
    )
    return bills.Check("Number series health", len(problems), problems, message)


def launch(settings: Settings, actor: Actor, check_id: int) -> subprocess.Popen | None:
    """Run a started check in its own process, so it outlives the page run that started it; with the
    procrastinate engine, queue it for the team's workers instead (None: no process here)."""
    require(actor, Action.CHECK_BILLS)
    if bills.runs_on_workers(settings):
        from billing_core.invoices import tasks

        tasks.queue_check(settings, actor, check_id)
        return None
    return background.start_process(
        settings, actor, ["billing_core", "invoices", "run-check", str(check_id)], f"checks/check-{check_id}.log"
    )
