"""Invoice files in each store, the local folder and an S3-compatible bucket (moto's server on loopback):
upload, read back, tamper, delete, verify, write-once keys, a job's files and a streamed ZIP."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from billing_core.core.config import Settings
from billing_core.core.db import transaction
from billing_core.core.models import Invoice, RegenerationStatus
from billing_core.demo import seeding as demo
from billing_core.invoices import batch, storage
from billing_core.invoices.object_store import PART_SIZE, Bucket, LocalFolder
from tests.bucket_support import new_bucket, overwrite, remove
from tests.helpers import FINANCE


@pytest.fixture
def seeded(db, admin):
    demo.seed(db, orders=60, seed=5, actor=admin)
    return db


def settings_for(store, db) -> Settings:
    if isinstance(store, LocalFolder):
        return Settings(database_url=db.url, invoice_dir=store.root)
    return Settings(
        database_url=db.url,
        invoice_bucket=store.bucket,
        invoice_bucket_prefix=store.prefix,
        invoice_bucket_endpoint=store.endpoint_url,
        invoice_bucket_region=store.region,
    )


def first_invoice(session) -> Invoice:
    return session.scalars(select(Invoice).order_by(Invoice.id).limit(1)).one()


def test_each_version_is_uploaded_and_read_back_with_its_hash(seeded, finance, store):
    with seeded.session() as session, transaction(session):
        invoice = first_invoice(session)
        one = storage.store_version(session, finance, invoice, b"%PDF-one", "test", root=store)
        two = storage.store_version(session, finance, invoice, b"%PDF-two", "test", root=store)
    assert (one.version, two.version) == (1, 2) and one.path != two.path
    assert storage.read_file(one, store) == b"%PDF-one" and storage.read_file(two, store) == b"%PDF-two"
    assert one.sha256 == hashlib.sha256(b"%PDF-one").hexdigest()


def test_bucket_keys_sit_under_the_prefix_and_name_their_bytes(seeded, finance, moto_endpoint):
    bucket = new_bucket(moto_endpoint, prefix="acme/docs")
    with seeded.session() as session, transaction(session):
        file = storage.store_version(session, finance, first_invoice(session), b"%PDF-one", "test", root=bucket)
    listed = bucket.client.list_objects_v2(Bucket=bucket.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"acme/docs/{file.path}"]
    assert file.path.endswith(f"/v1-{file.sha256[:16]}.pdf")


def test_tampered_or_deleted_files_are_refused_and_verify_lists_them(seeded, finance, store):
    settings = settings_for(store, seeded)
    with seeded.session() as session:
        ids = list(session.scalars(select(Invoice.id).order_by(Invoice.id).limit(3)))
    altered, _ = storage.issued_pdf(seeded, finance, ids[0], settings=settings)
    missing, _ = storage.issued_pdf(seeded, finance, ids[1], settings=settings)
    intact, data = storage.issued_pdf(seeded, finance, ids[2], settings=settings)
    overwrite(store, altered.path, b"%PDF-forged")
    remove(store, missing.path)
    with pytest.raises(storage.FileAltered, match="altered"):
        storage.issued_pdf(seeded, finance, ids[0], settings=settings)
    with pytest.raises(storage.FileMissing, match="missing"):
        storage.read_file(missing, store)
    assert storage.read_file(intact, store) == data
    with seeded.session() as session:
        report = batch.verify(session, FINANCE, root=store)
    assert (report.checked, report.altered, report.missing) == (3, [altered.path], [missing.path])


def test_a_version_key_is_written_once(moto_endpoint):
    bucket = new_bucket(moto_endpoint)
    data = b"%PDF-once"
    sha = hashlib.sha256(data).hexdigest()
    key = bucket.version_key("INV/INV-1/v1.pdf", sha)
    bucket.put(key, data, sha)
    bucket.put(key, data, sha)  # the same bytes again (a retried chunk): harmless
    with pytest.raises(storage.FileAltered, match="never overwritten"):
        bucket.put(key, b"%PDF-other", hashlib.sha256(b"%PDF-other").hexdigest())
    assert bucket.get(key) == data


def test_a_job_stores_every_invoice_once_and_its_zip_holds_them(seeded, finance, store):
    settings = settings_for(store, seeded)
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE, plans=["pro", "max"])
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "new template").id
    job = batch.run_job(seeded, FINANCE, job_id, workers=2, settings=settings)
    assert job.status == RegenerationStatus.FINISHED and job.done == chosen.count
    with seeded.session() as session:
        files = batch.job_files(session, FINANCE, job_id)
        assert len({f.invoice_id for f in files}) == len(files) == chosen.count
        assert batch.verify(session, FINANCE, chosen, root=store).ok
    archive = zipfile.ZipFile(io.BytesIO(store.get(job.zip_path)))
    assert sorted(archive.namelist()) == sorted(f.path for f in files)
    assert all(hashlib.sha256(archive.read(f.path)).hexdigest() == f.sha256 for f in files)


def test_a_zip_never_takes_in_an_altered_file(seeded, finance, store):
    settings = settings_for(store, seeded)
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE, plans=["max"])
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "tamper test").id
    batch.run_job(seeded, FINANCE, job_id, workers=1, settings=settings)
    with seeded.session() as session:
        file = batch.job_files(session, FINANCE, job_id)[0]
    overwrite(store, file.path, b"%PDF-forged")
    with pytest.raises(storage.FileAltered):
        batch.write_zip(seeded, FINANCE, job_id, store)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_zip_of_2000_documents_is_streamed_without_the_archive_in_memory(db, admin, finance, store):
    """2,000 stored documents of 16 KiB (31 MiB of archive): the ZIP is written with a peak of Python memory
    bounded by one upload part (8 MiB in the bucket; one document in the folder), not by the archive."""
    demo.seed(db, orders=2_300, seed=11, actor=admin)  # about nine in ten orders are paid
    with db.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "zip size").id
            invoices = list(session.scalars(select(Invoice).order_by(Invoice.id).limit(2_000)))
            for invoice in invoices:
                data = b"%PDF-" + os.urandom(16 * 1024)
                storage.store_version(session, finance, invoice, data, "zip test", root=store, job_id=job_id)
    assert len(invoices) == 2_000
    tracemalloc.start()
    try:
        relative = batch.write_zip(db, FINANCE, job_id, store)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = store.size(relative)
    assert size > 2_000 * 16 * 1024
    assert peak < min(size / 2, 2 * PART_SIZE), f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB archive"
    with zipfile.ZipFile(io.BytesIO(store.get(relative))) as archive:
        assert len(archive.namelist()) == 2_000 and archive.testzip() is None


def test_bucket_settings_choose_the_bucket_and_name_no_credential(tmp_path):
    settings = Settings(invoice_dir=tmp_path, invoice_bucket="acme-invoices", invoice_bucket_prefix="prod")
    chosen = storage.store_for(settings)
    assert isinstance(chosen, Bucket) and chosen.describe() == "s3://acme-invoices/prod"
    assert isinstance(storage.store_for(replace(settings, invoice_bucket=None)), LocalFolder)
    assert storage.store_for(Settings(invoice_dir=tmp_path)).describe() == str(Path(tmp_path))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BILLING_INVOICE_BUCKET": "Not A Bucket!"}, "invoice_bucket"),
        ({"BILLING_INVOICE_BUCKET_ENDPOINT": "https://key:secret@s3.example.com"}, "invoice_bucket_endpoint"),
        ({"BILLING_TASK_ENGINE": "procrastinate"}, "task_engine"),  # on the SQLite default
        ({"BILLING_TASK_ENGINE": "celery"}, "task_engine"),
    ],
)
def test_a_bad_team_setting_stops_start_up_naming_it(env, named, tmp_path):
    from billing_core.core.config import load_settings
    from billing_core.core.errors import ConfigError

    with pytest.raises(ConfigError, match=f"Setting {named} "):
        load_settings(env=env, secrets_file=tmp_path / "none.toml")
