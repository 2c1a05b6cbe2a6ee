"""Regeneration jobs as tasks of procrastinate, for a team: the queue lives in the PostgreSQL the app already
uses (no broker), and workers on any machine (``python -m billing_core worker``) take chunks of any job.

A job becomes one task per chunk (an id range of its selection) and a closing task. A chunk task renders
and stores the invoices of its range that the job has not done, and records their versions in one
transaction, exactly as the local pool does (``batch._run_chunk``): the (job, invoice) key makes a chunk
run twice harmless. A worker killed mid-chunk stops sending heartbeats; every worker looks for such
stalled tasks (procrastinate's ``get_stalled_jobs``) and puts them back in the queue for another. The
chunk that brings the job to its total defers the closing task, which writes the ZIP (into the store,
streamed) and ends the job. Cancel leaves the chunks still queued to
find the job cancelled and do nothing; the closing task waits for the chunks in flight, then zips what
was done. The deep check of the bills runs as a task too. The local process pool stays the default
(``Settings.task_engine == "local"``).
"""

from __future__ import annotations

import asyncio
import functools
import logging

import procrastinate
from sqlalchemy import exists, select
from sqlalchemy.engine import make_url

from billing_core.access.roles import Action, Actor, Role, require
from billing_core.core.config import Settings, load_settings
from billing_core.core.db import Database
from billing_core.core.errors import StateConflict
from billing_core.core.models import Invoice, InvoiceFile, RegenerationJob, RegenerationStatus
from billing_core.invoices import batch, storage

QUEUE = "invoices"
CHUNK_TASK = "billing.invoices.regenerate_chunk"
HEARTBEAT_SECONDS = 5.0  # how often a worker says it is alive
STALLED_AFTER_SECONDS = 20.0  # a worker silent this long is taken for dead: its tasks go to another
log = logging.getLogger(__name__)

app = procrastinate.App(connector=procrastinate.PsycopgConnector(), import_paths=[__name__])


def conninfo(database_url: str) -> str:
    """The libpq form of the app's SQLAlchemy URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise StateConflict("The procrastinate task engine needs PostgreSQL; the local engine serves SQLite.")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _queue(database_url: str) -> procrastinate.App:
    """An app on a synchronous connector to the database, for queueing tasks by name (pages, CLI): the
    tasks themselves are this module's ``app``'s, which only workers open."""
    return procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=conninfo(database_url)))


def _ensure_schema(database_url: str) -> None:
    """Create procrastinate's tables in the app's database when they are not there yet."""
    database = Database(database_url)
    try:
        with database.session() as session:
            present = session.scalar(select(_regclass("procrastinate_jobs")))
    finally:
        database.dispose()
    if present is None:
        with _queue(database_url).open() as opened:
            opened.schema_manager.apply_schema()


def _regclass(name: str):
    from sqlalchemy import func, literal

    return func.to_regclass(literal(name))


def _actor_args(actor: Actor) -> dict:
    return {"actor": actor.email, "role": actor.role.value, "name": actor.name}


def _actor(args: dict) -> Actor:
    return Actor(args["actor"], Role(args["role"]), args["name"])


# --- what the app (or the CLI) calls ----------------------------------------------------------------


def enqueue_job(settings: Settings, actor: Actor, job_id: int) -> int:
    """Queue the chunks of a running job that it has not done (all of a new job, the rest of a resumed one);
    with none left, queue its closing. Returns how many chunk tasks were queued."""
    require(actor, Action.REGENERATE_INVOICES)
    _ensure_schema(settings.database_url)  # an app instance may queue before any worker has started
    database = Database(settings.database_url)
    try:
        selection, _, _ = batch._running(database, job_id)
        ranges = []
        with database.session() as reader:
            for ids in batch._chunks(reader, selection, job_id):
                ranges.append((ids[0], ids[-1]))
    finally:
        database.dispose()
    with _queue(settings.database_url).open() as opened:
        for first, last in ranges:
            lock = f"regen-{job_id}-{first}"
            _defer(opened, CHUNK_TASK, lock, job_id=job_id, first_id=first, last_id=last, **_actor_args(actor))
        if not ranges:
            _defer(opened, CLOSE_TASK, f"close-{job_id}", job_id=job_id, **_actor_args(actor))
    return len(ranges)


def close_after_cancel(settings: Settings, actor: Actor, job_id: int) -> None:
    """After Cancel: queue the closing task, which waits for the chunks in flight and zips what was done."""
    require(actor, Action.REGENERATE_INVOICES)
    with _queue(settings.database_url).open() as opened:
        _defer(opened, CLOSE_TASK, f"close-{job_id}", job_id=job_id, **_actor_args(actor))


def _defer(on: procrastinate.App, task: str, queueing_lock: str, **kwargs) -> None:
    """Queue a task once: the same chunk (or closing) already waiting in the queue is not queued again."""
    try:
        on.configure_task(task, queue=QUEUE, queueing_lock=queueing_lock).defer(**kwargs)
    except procrastinate.exceptions.AlreadyEnqueued:
        log.info("%s is queued already", queueing_lock)


# --- the tasks, run by workers ------------------------------------------------------------------------


@functools.cache
def _worker_database(url: str) -> Database:
    return Database(url)


class ChunksInFlight(Exception):
    """A cancelled job still has chunks running: its ZIP waits for them (the task is retried)."""


@app.task(name=CHUNK_TASK, queue=QUEUE, retry=procrastinate.RetryStrategy(max_attempts=5, wait=5), pass_context=True)
def regenerate_chunk(context, job_id: int, first_id: int, last_id: int, actor: str, role: str, name: str) -> int:
    """Render, store and record the invoices of the job's selection in [first_id, last_id] not yet done."""
    who = _actor({"actor": actor, "role": role, "name": name})
    require(who, Action.REGENERATE_INVOICES)
    settings = load_settings()
    database = _worker_database(settings.database_url)
    try:
        selection, paper, reason = batch._running(database, job_id)
    except StateConflict:
        return 0  # cancelled (or ended) meanwhile: this chunk waits for a resume
    store = storage.store_for(settings)
    batch._warm(store, paper, str(settings.invoice_logo) if settings.invoice_logo else None)
    with database.session() as reader:
        done_by_job = exists().where(InvoiceFile.job_id == job_id, InvoiceFile.invoice_id == Invoice.id)
        ids = list(reader.scalars(batch._ids(selection).where(Invoice.id.between(first_id, last_id), ~done_by_job)))
        items = batch._items(reader, ids)
        reader.rollback()
        done, total, _, _ = batch._run_chunk(
            database, reader, job_id, ids, items, iter(()), _Inline(), reason, store, settings
        )
    if done >= total:
        _defer(context.app, CLOSE_TASK, f"close-{job_id}", job_id=job_id, actor=actor, role=role, name=name)
    return len(ids)


CLOSE_TASK = "billing.invoices.close_job"


@app.task(name=CLOSE_TASK, queue=QUEUE, retry=procrastinate.RetryStrategy(max_attempts=120, wait=2), pass_context=True)
def close_job(context, job_id: int, actor: str, role: str, name: str) -> str:
    """End a job whose chunks are all done (finished), or a cancelled one once no chunk of it runs."""
    who = _actor({"actor": actor, "role": role, "name": name})
    require(who, Action.REGENERATE_INVOICES)
    settings = load_settings()
    database = _worker_database(settings.database_url)
    with database.session() as session:
        job = session.get(RegenerationJob, job_id)
        status, done, total, zipped = job.status, job.done, job.total, job.zip_path
    store = storage.store_for(settings)
    if status == RegenerationStatus.RUNNING and done >= total:
        return batch._close(database, job_id, RegenerationStatus.FINISHED, who, store).status.value
    if status == RegenerationStatus.CANCELLED and zipped is None:
        running = [
            j
            for j in context.app.job_manager.list_jobs(task=CHUNK_TASK, status="doing")
            if j.task_kwargs["job_id"] == job_id
        ]
        if running:
            raise ChunksInFlight(f"job {job_id}: {len(running)} chunks still running")
        return batch._close(database, job_id, RegenerationStatus.CANCELLED, who, store).status.value
    return status.value  # ended already, or resumed: nothing to close


CHECK_TASK = "billing.invoices.deep_check"


def queue_check(settings: Settings, actor: Actor, check_id: int) -> None:
    """Queue a deep check of the bills that ``bills_check.start`` recorded, for any worker to run."""
    require(actor, Action.CHECK_BILLS)
    _ensure_schema(settings.database_url)
    with _queue(settings.database_url).open() as opened:
        _defer(opened, CHECK_TASK, f"check-{check_id}", check_id=check_id, **_actor_args(actor))


@app.task(name=CHECK_TASK, queue=QUEUE, pass_context=True)
def deep_check(context, check_id: int, actor: str, role: str, name: str) -> str:
    """The deep check on a worker: every order and document read, the stored files in the team's store."""
    from billing_core.invoices import deep_check as bills_check

    who = _actor({"actor": actor, "role": role, "name": name})
    require(who, Action.CHECK_BILLS)
    settings = load_settings()
    database = _worker_database(settings.database_url)
    return bills_check.run(database, who, check_id, root=storage.store_for(settings)).status.value


async def _retry_stalled(worker_app: procrastinate.App) -> None:
    """Beside the worker's tasks, forever: send the tasks of workers that stopped sending heartbeats (killed,
    machine gone) back to the queue for the others. It runs in the worker's event loop, so a worker busy
    rendering a chunk (in its thread) still does it."""
    manager = worker_app.job_manager
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        try:
            for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS):
                log.warning("retrying stalled task %s (%s)", job.id, job.task_name)
                await manager.retry_job(job)
        except Exception:  # another worker retried it first, or the database blinked: next round
            log.exception("retrying stalled tasks failed; trying again")


class _Inline:
    """``batch._run_chunk`` hands its parts to a pool; a worker renders them itself (run more workers for
    more cores)."""

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future: Future = Future()
        future.set_result(fn(*args))
        return future


def run_worker(database_url: str, *, concurrency: int = 1, name: str | None = None) -> None:
    """Take tasks until stopped (SIGTERM/SIGINT end it after the task in flight)."""
    _ensure_schema(database_url)
    asyncio.run(_run_worker(database_url, concurrency, name))


async def _run_worker(database_url: str, concurrency: int, name: str | None) -> None:
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(database_url))
    with app.replace_connector(connector) as worker_app:
        async with worker_app.open_async():
            retrying = asyncio.create_task(_retry_stalled(worker_app))
            try:
                await worker_app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=concurrency,
                    name=name,
                    update_heartbeat_interval=HEARTBEAT_SECONDS,
                    stalled_worker_timeout=STALLED_AFTER_SECONDS,
                    delete_jobs="successful",
                )
            finally:
                retrying.cancel()
