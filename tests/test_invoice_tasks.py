"""Regeneration jobs on procrastinate workers: PostgreSQL's queue, the moto bucket, worker processes with
working folders of their own (two machines, in effect). Every document exactly once, a killed worker's
chunk retried by the other, cancel and resume, the same progress and ZIP seen from any app instance."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from billing_core.bench.workers import WorkerProcesses, empty_queue
from billing_core.core.config import Settings
from billing_core.core.db import transaction
from billing_core.core.models import Invoice, InvoiceFile, RegenerationJob, RegenerationStatus
from billing_core.demo import seeding as demo
from billing_core.invoices import batch, storage, tasks
from billing_core.invoices import review as bills
from tests.bucket_support import new_bucket
from tests.helpers import FINANCE

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


def team_settings(db, bucket) -> Settings:
    return Settings(
        database_url=db.url,
        invoice_bucket=bucket.bucket,
        invoice_bucket_prefix=bucket.prefix,
        invoice_bucket_endpoint=bucket.endpoint_url,
        invoice_bucket_region=bucket.region,
        task_engine="procrastinate",
    )


@pytest.fixture
def queue(db):
    """procrastinate's tables in the test database, emptied."""
    tasks._ensure_schema(db.url)
    empty_queue(db)
    return db


@pytest.fixture
def workers(queue, moto_endpoint, tmp_path):
    bucket = new_bucket(moto_endpoint)
    pool = WorkerProcesses(team_settings(queue, bucket), tmp_path / "machines")
    yield pool
    pool.stop_all()


def start(db, settings, finance, reason: str, **selection) -> int:
    with db.session() as session:
        chosen = batch.select_invoices(session, FINANCE, **selection)
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, reason).id
    assert bills.launch_job(settings, finance, job_id) is None  # queued, no process of this server
    return job_id


def wait_for(db, job_id: int, until, workers: WorkerProcesses, seconds: float = 600) -> RegenerationJob:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with db.session() as session:
            job = session.get(RegenerationJob, job_id)
            if until(job):
                session.expunge(job)
                return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not get there in {seconds:.0f} s; workers said:\n{workers.logs()}")


def ended(job: RegenerationJob) -> bool:
    return job.status != RegenerationStatus.RUNNING and (job.zip_path is not None or job.done == 0)


def assert_each_document_once(db, job_id: int, count: int, store) -> list[InvoiceFile]:
    with db.session() as session:
        files = batch.job_files(session, FINANCE, job_id)
        versions = session.execute(
            select(InvoiceFile.invoice_id, func.count()).group_by(InvoiceFile.invoice_id).having(func.count() > 1)
        ).all()
        assert batch.verify(session, FINANCE, root=store).ok
    assert len(files) == len({f.invoice_id for f in files}) == count and versions == []
    return files


def test_a_job_queued_from_one_instance_is_done_by_a_worker_and_zipped_for_any(queue, admin, finance, workers):
    demo.seed(queue, orders=80, seed=5, actor=admin)
    settings = workers.settings
    workers.start("machine-a")
    job_id = start(queue, settings, finance, "team run")
    job = wait_for(queue, job_id, ended, workers, seconds=180)
    assert job.status == RegenerationStatus.FINISHED and job.done == job.total > 0
    store = storage.store_for(settings)
    files = assert_each_document_once(queue, job_id, job.total, store)
    with zipfile.ZipFile(io.BytesIO(store.get(job.zip_path))) as archive:
        assert sorted(archive.namelist()) == sorted(f.path for f in files)
    assert not (workers.base / "machine-a" / "files").exists()  # nothing went to the worker's own disk


def doing(db) -> int:
    with db.engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"))


def both_rendering(db, job_id: int, workers: WorkerProcesses, seconds: float = 300) -> None:
    """Wait until a chunk has been counted and both workers hold a chunk, with no chunk counted for a second.
    Read on the moment ``done`` grows, two 'doing' tasks may include the chunk that has just committed, which
    its worker marks succeeded a moment later: killed in that gap, the worker holds no task and nothing is
    left to retry."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = wait_for(db, job_id, lambda job: job.done >= batch.CHUNK and doing(db) >= 2, workers, seconds)
        time.sleep(1.0)
        with db.session() as session:
            if session.get(RegenerationJob, job_id).done == job.done and doing(db) >= 2:
                return
    raise AssertionError(f"job {job_id}: the two workers never rendered side by side; they said:\n{workers.logs()}")


def test_two_workers_share_5000_documents_and_a_killed_workers_chunk_is_retried(queue, admin, finance, workers):
    """5,000 documents (5 chunks) on two workers; one is SIGKILLed while both render a chunk. Its chunk is
    retried by the other once its heartbeats stop, and the job ends with each document exactly once."""
    demo.seed(queue, orders=5_700, seed=21, actor=admin)
    with queue.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        ids = batch._ids(chosen.selection).limit(5_000).subquery()
        numbers = list(session.scalars(select(Invoice.number).where(Invoice.id.in_(select(ids.c.id)))))
    assert len(numbers) == 5_000
    settings = workers.settings
    workers.start("machine-a")
    workers.start("machine-b")
    job_id = start(queue, settings, finance, "two machines", numbers=numbers)
    both_rendering(queue, job_id, workers)
    workers.kill("machine-a")
    with queue.session() as session:
        at_kill = session.get(RegenerationJob, job_id).done
    job = wait_for(queue, job_id, ended, workers, seconds=600)
    assert at_kill < 5_000 and job.status == RegenerationStatus.FINISHED and job.done == job.total == 5_000
    store = storage.store_for(settings)
    files = assert_each_document_once(queue, job_id, 5_000, store)
    assert {f.version for f in files} == {1}
    assert "retrying stalled task" in (workers.base / "machine-b" / "worker.log").read_text()
    with zipfile.ZipFile(io.BytesIO(store.get(job.zip_path))) as archive:
        assert len(archive.namelist()) == 5_000


def test_cancel_on_workers_zips_what_was_done_and_resume_finishes_it(queue, admin, finance, workers, monkeypatch):
    demo.seed(queue, orders=400, seed=9, actor=admin)
    settings = workers.settings
    monkeypatch.setattr(batch, "CHUNK", 50)  # queued from here: chunks of 50
    job_id = start(queue, settings, finance, "cancel on workers")
    with queue.session() as session:
        bills.cancel_job(session, finance, job_id)
    bills.close_cancelled(settings, finance, job_id)
    workers.start("machine-a")
    job = wait_for(queue, job_id, lambda job: job.finished_at is not None, workers, seconds=180)
    assert job.status == RegenerationStatus.CANCELLED and job.done == 0 and job.zip_path is None
    with queue.session() as session:
        bills.resume_job(session, finance, job_id)
    assert bills.launch_job(settings, finance, job_id) is None
    job = wait_for(queue, job_id, ended, workers, seconds=300)
    assert job.status == RegenerationStatus.FINISHED and job.done == job.total
    assert_each_document_once(queue, job_id, job.total, storage.store_for(settings))


def test_a_second_app_instance_shows_the_same_progress_and_offers_the_same_zip(
    queue, admin, finance, workers, tmp_path, monkeypatch
):
    from streamlit.testing.v1 import AppTest

    from tests.test_app_invoices import APP, open_invoices

    demo.seed(queue, orders=120, seed=4, actor=admin)
    settings = workers.settings
    monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("DATABASE_URL", queue.url)
    monkeypatch.setenv("BILLING_LOCAL_MODE", "1")
    monkeypatch.setenv("BILLING_LOCAL_ROLE", "finance")
    monkeypatch.setenv("BILLING_INVOICE_DIR", str(tmp_path / "instance-files"))
    monkeypatch.setenv("BILLING_INVOICE_BUCKET", settings.invoice_bucket)
    monkeypatch.setenv("BILLING_INVOICE_BUCKET_PREFIX", settings.invoice_bucket_prefix)
    monkeypatch.setenv("BILLING_INVOICE_BUCKET_ENDPOINT", settings.invoice_bucket_endpoint)
    monkeypatch.setenv("BILLING_INVOICE_BUCKET_REGION", settings.invoice_bucket_region)
    monkeypatch.setenv("BILLING_TASK_ENGINE", "procrastinate")
    first = open_invoices()
    first.multiselect(key="regen_plans").set_value(["max"]).run()
    first.button(key="regen_dry").click().run()
    first.text_input(key="regen_reason").input("new logo").run()
    first.button(key="regen_start").click().run()
    assert not first.exception, first.exception
    with queue.session() as session:
        job_id = session.scalar(select(RegenerationJob.id))
    second = open_invoices(AppTest.from_file(APP, default_timeout=60).run())
    [progress] = [p.proto.text for p in second.get("progress")]
    assert progress.startswith("0 of ") and "interrupted" not in progress  # queued for the workers
    assert second.button(key=f"job_cancel_{job_id}")  # cancel is offered on any instance
    workers.start("machine-a")
    job = wait_for(queue, job_id, ended, workers, seconds=180)
    assert job.status == RegenerationStatus.FINISHED
    links = []
    for instance in (first, second):
        instance.run()
        links.append([b for b in instance.get("link_button") if b.proto.label.startswith("Download ZIP")])
    assert all(len(found) == 1 for found in links)
    import httpx

    url = links[1][0].proto.url
    assert "X-Amz-Signature=" in url and os.environ["AWS_SECRET_ACCESS_KEY"] not in url  # signed, no secret
    archive = zipfile.ZipFile(io.BytesIO(httpx.get(url, timeout=30).raise_for_status().content))
    assert len(archive.namelist()) == job.done


def test_the_deep_check_runs_on_a_worker_and_reads_the_bucket(queue, admin, finance, workers):
    from billing_core.core.models import CheckStatus, InvoiceCheck
    from billing_core.invoices import deep_check as bills_check

    demo.seed(queue, orders=60, seed=5, actor=admin)
    settings = workers.settings
    with queue.session() as session:
        invoice_id = session.scalar(select(Invoice.id).order_by(Invoice.id).limit(1))
    stored, _ = storage.issued_pdf(queue, finance, invoice_id, settings=settings)
    store = storage.store_for(settings)
    store.delete(stored.path)
    with queue.session() as session:
        check_id = bills_check.start(session, finance)
    assert bills_check.launch(settings, finance, check_id) is None  # queued, no process here
    workers.start("machine-a")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with queue.session() as session:
            check = session.get(InvoiceCheck, check_id)
            if check.status != CheckStatus.RUNNING:
                break
        time.sleep(0.3)
    assert check.status == CheckStatus.FINISHED, workers.logs()
    [files] = [c for c in check.result if c["name"] == "Stored file altered or missing"]
    assert files["count"] == 1 and files["examples"] == [f"missing {stored.path}"]
