"""Stored invoice versions and batch regeneration: atomic files, resumable jobs, verified hashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing_core.core.config import Settings
from billing_core.core.db import transaction
from billing_core.core.errors import BillingError, PermissionDenied
from billing_core.core.models import AuditEvent, Invoice, InvoiceFile, RegenerationJob, RegenerationStatus
from billing_core.demo import seeding as demo
from billing_core.invoices import batch, storage
from billing_core.invoices import review as bills
from tests.helpers import FINANCE

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def seeded(db, admin):
    demo.seed(db, orders=60, seed=5, actor=admin)
    return db


@pytest.fixture
def files_settings(db, tmp_path) -> Settings:
    return Settings(database_url=db.url, invoice_dir=tmp_path / "files")


def first_invoice(session) -> Invoice:
    return session.scalars(select(Invoice).order_by(Invoice.id).limit(1)).one()


def test_each_stored_version_is_a_new_file_with_its_hash(seeded, finance, tmp_path):
    with seeded.session() as session, transaction(session):
        invoice = first_invoice(session)
        one = storage.store_version(session, finance, invoice, b"%PDF-one", "test", root=tmp_path)
        two = storage.store_version(session, finance, invoice, b"%PDF-two", "test", root=tmp_path)
    assert (one.version, two.version) == (1, 2)
    assert storage.read_file(one, tmp_path) == b"%PDF-one"
    assert storage.read_file(two, tmp_path) == b"%PDF-two"
    with seeded.session() as session:
        assert [f.version for f in storage.files_for(session, FINANCE, invoice.id)] == [1, 2]
        assert storage._latest_file(session, invoice.id).version == 2


def test_crash_mid_write_leaves_old_version_intact_and_no_partial_file(seeded, finance, tmp_path, monkeypatch):
    with seeded.session() as session, transaction(session):
        invoice = first_invoice(session)
        one = storage.store_version(session, finance, invoice, b"%PDF-one", "test", root=tmp_path)
    folder = (tmp_path / one.path).parent

    def crash(*_args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError), seeded.session() as session, transaction(session):
        storage.store_version(
            session, finance, session.get(Invoice, invoice.id), b"%PDF-two" * 1000, "x", root=tmp_path
        )
    assert sorted(p.name for p in folder.iterdir()) == ["v1.pdf"]
    assert storage.read_file(one, tmp_path) == b"%PDF-one"
    with seeded.session() as session:
        assert len(storage.files_for(session, FINANCE, invoice.id)) == 1


def test_issued_pdf_is_rendered_and_stored_once_then_served(seeded, finance, files_settings):
    with seeded.session() as session:
        invoice_id = first_invoice(session).id
    first, data = storage.issued_pdf(seeded, finance, invoice_id, settings=files_settings)
    again, same = storage.issued_pdf(seeded, finance, invoice_id, settings=files_settings)
    assert first.version == again.version == 1 and data == same and data.startswith(b"%PDF")


def test_tampered_or_missing_file_is_refused_and_reported(seeded, finance, files_settings):
    root = Path(files_settings.invoice_dir)
    with seeded.session() as session:
        ids = list(session.scalars(select(Invoice.id).order_by(Invoice.id).limit(2)))
    altered, _ = storage.issued_pdf(seeded, finance, ids[0], settings=files_settings)
    missing, _ = storage.issued_pdf(seeded, finance, ids[1], settings=files_settings)
    (root / altered.path).write_bytes(b"%PDF-forged")
    (root / missing.path).unlink()
    with pytest.raises(storage.FileIntegrityError, match="altered"):
        storage.read_file(altered, root)
    with seeded.session() as session:
        report = batch.verify(session, FINANCE, root=root)
    assert report.altered == [altered.path] and report.missing == [missing.path]


def test_selection_reports_numbers_that_are_not_invoices(seeded):
    with seeded.session() as session:
        number = first_invoice(session).number
        chosen = batch.select_invoices(session, FINANCE, numbers=[number, "INV-1999-000001", " "])
    assert chosen.count == 1 and chosen.invalid_numbers == ["INV-1999-000001"]


def test_a_customer_longer_than_any_id_or_email_is_refused_without_being_echoed(seeded):
    with seeded.session() as session, pytest.raises(BillingError) as refused:
        batch.select_invoices(session, FINANCE, customer="y" * 5_000)
    assert "yyyy" not in str(refused.value)


def test_regeneration_needs_a_reason_and_finance_or_admin(seeded, support, finance):
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        with pytest.raises(PermissionDenied):
            batch.start_job(session, support, chosen, "new logo")
        with pytest.raises(BillingError, match="reason"):
            batch.start_job(session, finance, chosen, "  ")


def test_job_gives_every_selected_invoice_one_new_version_and_a_zip(seeded, finance, files_settings):
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE, plans=["pro", "max"])
        dry = batch.dry_run(session, FINANCE, chosen, sample=3, settings=files_settings)
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "new template").id
    assert dry.count == chosen.count > 0 and dry.changed_in_sample == dry.sampled == 3
    job = batch.run_job(seeded, FINANCE, job_id, workers=2, settings=files_settings)
    assert job.status == RegenerationStatus.FINISHED and job.done == job.total == chosen.count
    with seeded.session() as session:
        files = batch.job_files(session, FINANCE, job_id)
        assert len({f.invoice_id for f in files}) == len(files) == chosen.count
        assert batch.verify(session, FINANCE, chosen, root=Path(files_settings.invoice_dir)).ok
    import zipfile

    with zipfile.ZipFile(Path(files_settings.invoice_dir) / job.zip_path) as archive:
        assert sorted(archive.namelist()) == sorted(f.path for f in files)


def test_two_jobs_over_the_same_invoices_number_versions_without_gaps(seeded, finance, files_settings):
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE, plans=["max"])
        with transaction(session):
            jobs = [batch.start_job(session, finance, chosen, f"run {i}").id for i in range(2)]
    for job_id in jobs:
        batch.run_job(seeded, FINANCE, job_id, workers=2, settings=files_settings)
    with seeded.session() as session:
        rows = session.execute(
            select(InvoiceFile.invoice_id, func.count(), func.max(InvoiceFile.version)).group_by(InvoiceFile.invoice_id)
        ).all()
    assert rows and all(count == 2 and top == 2 for _, count, top in rows)


def test_file_left_by_a_crashed_chunk_is_no_version_and_is_replaced(seeded, finance, files_settings):
    """Files are synced once per chunk, before its rows commit: a crash in between leaves files without rows."""
    root = Path(files_settings.invoice_dir)
    with seeded.session() as session:
        invoice = first_invoice(session)
        leftover = root / storage.relative_path(invoice, 1)
        chosen = batch.select_invoices(session, FINANCE, numbers=[invoice.number])
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "after a crash").id
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"%PDF-half-done chunk")
    with seeded.session() as session:
        assert batch.verify(session, FINANCE, chosen, root=root).checked == 0
    job = batch.run_job(seeded, FINANCE, job_id, workers=1, settings=files_settings)
    assert job.status == RegenerationStatus.FINISHED and job.done == 1
    with seeded.session() as session:
        (file,) = batch.job_files(session, FINANCE, job_id)
        assert file.version == 1 and storage.read_file(file, root).startswith(b"%PDF-1")
        assert batch.verify(session, FINANCE, chosen, root=root).ok


def test_cancelled_job_stops_and_says_so(seeded, finance, files_settings):
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "cancel me").id
    job = batch.run_job(seeded, FINANCE, job_id, should_stop=lambda: True, settings=files_settings)
    assert job.status == RegenerationStatus.CANCELLED and job.done == 0


def cancel_during_first_chunk(database, job_id: int):
    """A should_stop that lets the first chunk start and then cancels the job, as if Cancel were clicked
    while that chunk was in flight; later it answers as the app's process does (from the job's row)."""
    asked = []

    def should_stop() -> bool:
        with database.session() as session:
            if not asked:
                asked.append(True)
                bills.cancel_job(session, FINANCE, job_id)
                return False
            return session.get(RegenerationJob, job_id).status != RegenerationStatus.RUNNING

    return should_stop


def test_cancel_during_the_last_chunk_ends_cancelled_with_a_zip_of_what_was_done(seeded, finance, files_settings):
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE, plans=["pro", "max"])
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "cancel in flight").id
    stop = cancel_during_first_chunk(seeded, job_id)
    job = batch.run_job(seeded, FINANCE, job_id, should_stop=stop, settings=files_settings)
    assert job.status == RegenerationStatus.CANCELLED and job.done == chosen.count  # one chunk: all done
    with seeded.session() as session:
        events = session.scalars(
            select(AuditEvent.action).where(AuditEvent.entity_id == str(job_id)).order_by(AuditEvent.id)
        ).all()
    ends = [e for e in events if e.startswith("invoices.regenerate")][-2:]
    assert ends == ["invoices.regenerate.cancel", "invoices.regenerate.cancelled"]
    with zipfile.ZipFile(Path(files_settings.invoice_dir) / job.zip_path) as archive:
        assert len(archive.namelist()) == chosen.count


def test_cancel_is_honoured_after_the_chunk_in_flight_and_resume_finishes_the_rest(
    seeded, finance, files_settings, monkeypatch
):
    monkeypatch.setattr(batch, "CHUNK", 5)
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "cancel then resume").id
    stop = cancel_during_first_chunk(seeded, job_id)
    job = batch.run_job(seeded, FINANCE, job_id, should_stop=stop, settings=files_settings)
    assert job.status == RegenerationStatus.CANCELLED and job.done == 5 < chosen.count
    with zipfile.ZipFile(Path(files_settings.invoice_dir) / job.zip_path) as archive:
        assert len(archive.namelist()) == 5
    with seeded.session() as session:
        bills.resume_job(session, FINANCE, job_id)
    job = batch.run_job(seeded, FINANCE, job_id, settings=files_settings)
    assert job.status == RegenerationStatus.FINISHED and job.done == chosen.count
    with seeded.session() as session:
        files = batch.job_files(session, FINANCE, job_id)
    assert len(files) == len({f.invoice_id for f in files}) == chosen.count


def test_only_a_cancelled_job_can_be_resumed(seeded, finance):
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE, plans=["max"])
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "still running").id
        with pytest.raises(BillingError, match="only a cancelled job"):
            bills.resume_job(session, FINANCE, job_id)


def test_job_killed_half_way_resumes_without_duplicating_a_version(db, admin, finance, tmp_path):
    demo.seed(db, orders=400, seed=9, actor=admin)
    settings = Settings(database_url=db.url, invoice_dir=tmp_path / "files")
    with db.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "kill test").id
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\nfrom billing_core.cli.main import main\nfrom billing_core.invoices import batch\n"
        "batch.CHUNK = 20\n"
        "raise SystemExit(main(['bench-job', *sys.argv[1:]]))\n"
    )
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), db.url, str(settings.invoice_dir), str(job_id)], env=env, start_new_session=True
    )
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        with db.session() as session:
            done = session.get(RegenerationJob, job_id).done
        if done >= 40:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < done < chosen.count, "the run was not caught half-way"
    job = batch.run_job(db, FINANCE, job_id, workers=2, settings=settings)
    assert job.status == RegenerationStatus.FINISHED and job.done == chosen.count
    with db.session() as session:
        files = batch.job_files(session, FINANCE, job_id)
        assert len(files) == len({f.invoice_id for f in files}) == chosen.count
        assert all(f.version == 1 for f in files)
        assert batch.verify(session, FINANCE, root=Path(settings.invoice_dir)).ok


def test_a_job_that_fails_unexpectedly_shows_the_type_not_the_message(seeded, finance, files_settings, monkeypatch):
    secret = "postgresql://billing:hunter2@db.internal/billing"

    def broken(*args, **kwargs):
        raise RuntimeError(f"could not write through {secret}")

    monkeypatch.setattr(batch, "_run_chunk", broken)
    with seeded.session() as session:
        chosen = batch.select_invoices(session, finance, plans=["max"])
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "new address").id
    with pytest.raises(RuntimeError):
        batch.run_job(seeded, finance, job_id, workers=1, settings=files_settings)
    with seeded.session() as session:
        job = session.get(RegenerationJob, job_id)
        assert job.status is RegenerationStatus.FAILED
        assert job.error == (
            f"Unexpected error (RuntimeError) while regenerating the invoices of job {job_id}; "
            "the details are in the server log."
        )
