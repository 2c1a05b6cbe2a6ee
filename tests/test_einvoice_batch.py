"""E-invoice formats per buyer in batch regeneration: Factur-X PDFs for configured countries, a UBL file
beside them for "facturx+ubl", both in the job's ZIP; verify checks the embedded XML against the totals."""

from __future__ import annotations

import zipfile
from pathlib import Path

import facturx
import pytest
from sqlalchemy import select

from billing_core.core.config import Settings, load_settings
from billing_core.core.db import transaction
from billing_core.core.errors import ConfigError
from billing_core.core.models import Invoice
from billing_core.demo import seeding as demo
from billing_core.invoices import batch, einvoice, storage
from tests.helpers import FINANCE


@pytest.fixture
def seeded(db, admin):
    demo.seed(db, orders=60, seed=5, actor=admin)
    return db


def run(db, finance, settings: Settings):
    with db.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "e-invoices").id
    job = batch.run_job(db, FINANCE, job_id, workers=2, settings=settings)
    with db.session() as session:
        files = batch.job_files(session, FINANCE, job_id)
        buyers = {i.id: i.buyer for i in session.scalars(select(Invoice))}
    return job, files, buyers


def test_each_buyer_gets_its_configured_format_and_the_zip_carries_the_ubl_files(seeded, finance, tmp_path):
    with seeded.session() as session:
        countries = sorted({i.buyer["country"] for i in session.scalars(select(Invoice))})
    facturx_country, ubl_country = countries[0], countries[1]
    settings = Settings(
        database_url=seeded.url, invoice_dir=tmp_path / "files",
        einvoice_countries=((facturx_country, "facturx"), (ubl_country, "facturx+ubl")),
    )  # fmt: skip
    job, files, buyers = run(seeded, finance, settings)
    root = Path(settings.invoice_dir)
    seen = set()
    for file in files:
        fmt = settings.einvoice_format(buyers[file.invoice_id])
        seen.add(fmt)
        data = storage.read_file(file, root)
        xml = einvoice.embedded_xml(data)
        ubl = root / einvoice.ubl_path(file.path)
        if fmt == "pdf":
            assert xml is None and not ubl.exists() and not file.template_version.endswith("facturx")
        else:
            assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
            assert file.template_version.endswith(f"/{fmt}")
            assert ubl.exists() == (fmt == "facturx+ubl")
            if ubl.exists():
                assert facturx.xml_check_xsd(ubl.read_bytes(), flavor="ubl-2.1", level="en16931")
    assert seen == {"pdf", "facturx", "facturx+ubl"}
    with zipfile.ZipFile(root / job.zip_path) as archive:
        names = set(archive.namelist())
    expected = {f.path for f in files}
    expected |= {
        einvoice.ubl_path(f.path) for f in files if settings.einvoice_format(buyers[f.invoice_id]) == "facturx+ubl"
    }
    assert names == expected


def test_verify_reports_a_facturx_file_whose_xml_totals_differ_from_the_invoice(seeded, finance, tmp_path):
    with seeded.session() as session:
        countries = sorted({i.buyer["country"] for i in session.scalars(select(Invoice))})
    settings = Settings(
        database_url=seeded.url,
        invoice_dir=tmp_path / "files",
        einvoice_countries=tuple((c, "facturx") for c in countries),
    )
    _, files, _ = run(seeded, finance, settings)
    root = Path(settings.invoice_dir)
    with seeded.session() as session:
        assert batch.verify(session, FINANCE, root=root).ok
        victim = files[0]
        with transaction(session):
            invoice = session.get(Invoice, victim.invoice_id)
            invoice.total_cents += 100  # the books now say another total than the file's XML
        report = batch.verify(session, FINANCE, root=root)
    assert report.mismatched == [victim.path] and not report.ok
    assert not report.altered and not report.missing


def test_einvoice_formats_are_read_from_the_environment_and_a_bad_one_is_refused():
    settings = load_settings({"BILLING_EINVOICE_COUNTRIES": "fr=facturx, BE=facturx+ubl",
                              "BILLING_EINVOICE_CUSTOMERS": "cus_1=pdf"}, secrets_file="/nonexistent")  # fmt: skip
    assert settings.einvoice_format({"country": "FR"}) == "facturx"
    assert settings.einvoice_format({"country": "BE"}) == "facturx+ubl"
    assert settings.einvoice_format({"country": "BE", "customer": "cus_1"}) == "pdf"
    assert settings.einvoice_format({"country": "US"}) == "pdf"
    with pytest.raises(ConfigError, match="einvoice_countries"):
        load_settings({"BILLING_EINVOICE_COUNTRIES": "FR=xrechnung"}, secrets_file="/nonexistent")
    with pytest.raises(ConfigError, match="einvoice_default"):
        load_settings({"BILLING_EINVOICE_DEFAULT": "paper"}, secrets_file="/nonexistent")
