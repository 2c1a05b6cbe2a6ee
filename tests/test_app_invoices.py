"""The Invoices page through Streamlit's AppTest: bills review, checks, batch regeneration, verify, access."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from billing_core.access.roles import Actor, Role
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.models import (
    CheckStatus,
    Customer,
    Invoice,
    InvoiceCheck,
    Order,
    RegenerationJob,
    RegenerationStatus,
)
from billing_core.core.money import format_cents, format_compact
from billing_core.demo import seeding as demo
from billing_core.invoices import batch, storage
from billing_core.invoices import deep_check as bills_check
from billing_core.invoices import review as bills
from pages._guard import REFUSED_TITLE
from pages._text import plain

APP = Path(__file__).resolve().parent.parent / "app.py"
ADMIN = Actor("ada@company.test", Role.ADMIN, "Ada Admin")
FINANCE = Actor("fay@company.test", Role.FINANCE, "Fay Finance")


@pytest.fixture
def files(tmp_path) -> Path:
    return tmp_path / "invoice-files"


@pytest.fixture
def seeded(sqlite_template, tmp_path, files, monkeypatch) -> Database:
    """A small demo database, and the app's environment pointing at it (local mode, finance)."""
    path = tmp_path / "app.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    demo.seed(database, orders=150, seed=4, actor=ADMIN)
    for var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "BILLING_PRICING_FILE", "BILLING_LOCAL_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setenv("BILLING_LOCAL_MODE", "1")
    monkeypatch.setenv("BILLING_LOCAL_ROLE", "finance")
    monkeypatch.setenv("BILLING_INVOICE_DIR", str(files))
    yield database
    database.dispose()


def open_invoices(at: AppTest | None = None) -> AppTest:
    """Run the app and go to the Invoices page (the finance role lands on Orders)."""
    at = at or AppTest.from_file(APP, default_timeout=60).run()
    # Callable pages have no file for AppTest.switch_page to match: select the registered page by its URL.
    [page] = [h for h, info in at._registered_pages.items() if info.get("url_pathname") == "invoices"]
    at._page_hash = page
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


TABLES = {"bills_table": "Number", "bills_totals": "Month", "bills_versions": "Version", "verify_problems": "Problem"}


def table(at: AppTest, name: str):
    """A table of the page, told apart by its first column."""
    [frame] = [d.value for d in at.dataframe if d.value.columns[0] == TABLES[name]]
    return frame


def count(database: Database, *where) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Invoice).where(*where))


def test_the_list_shows_the_newest_invoices_with_totals(seeded):
    at = open_invoices()
    assert at.title[0].value == "Invoices"
    assert metrics(at)["Documents"] == f"{count(seeded, Invoice.sandbox.is_(False)):,}"
    listed = table(at, "bills_table")
    with seeded.session() as session:
        newest = session.scalars(select(Invoice.number).order_by(Invoice.issued_at.desc(), Invoice.id.desc())).first()
    assert len(listed) == 50 and listed["Number"].iloc[0] == newest
    totals = table(at, "bills_totals")
    assert totals["Documents"].sum() == count(seeded, Invoice.sandbox.is_(False))


def test_next_page_continues_the_list(seeded):
    at = open_invoices()
    first = list(table(at, "bills_table")["Number"])
    at.button(key="bills_next").click().run()
    second = list(table(at, "bills_table")["Number"])
    assert len(second) == 50 and not set(first) & set(second)
    assert any(c.value.startswith("Showing 51–100 of") for c in at.caption)
    at.button(key="bills_prev").click().run()
    assert list(table(at, "bills_table")["Number"]) == first


def test_a_filter_narrows_the_list_and_totals(seeded):
    at = open_invoices()
    at.multiselect(key="bills_plans").set_value(["max"]).run()
    assert set(table(at, "bills_table")["Plan"]) == {"max"}
    assert set(table(at, "bills_totals")["Plan"]) == {"max"}


def test_a_bad_number_range_is_explained(seeded):
    at = open_invoices()
    at.text_input(key="bills_from").input("INV-2026-000001").run()
    at.text_input(key="bills_to").input("CN-2026-000009").run()
    assert any("within one series" in e.value for e in at.error)
    assert not at.exception


def deep_check(database: Database, files: Path) -> None:
    with database.session() as session:
        check_id = bills_check.start(session, FINANCE)
    bills_check.run(database, FINANCE, check_id, root=files)


def test_before_any_deep_check_the_panel_shows_series_health_and_how_to_run_one(seeded):
    at = open_invoices()
    assert at.info[0].value == "The number series are gapless; no deep check has run yet."
    assert any("Run deep check" in c.value for c in at.caption)


def test_checks_panel_is_green_on_clean_data(seeded, files):
    deep_check(seeded, files)
    at = open_invoices()
    assert at.success[0].value == "All 6 checks pass."
    assert any("deep check of" in c.value and "fay" in c.value for c in at.caption)
    assert not at.error


def test_checks_panel_turns_red_when_an_invoice_total_is_altered(seeded, files):
    with seeded.session() as session, session.begin():
        session.execute(update(Invoice).where(Invoice.id == 1).values(total_cents=Invoice.total_cents + 100))
    deep_check(seeded, files)
    at = open_invoices()
    assert at.error[0].value == "2 of 6 checks found trouble."  # the invoice, and the bills totals it no longer matches


def test_run_deep_check_runs_it_apart_and_shows_its_result(seeded):
    at = open_invoices()
    at.button(key="bills_checks_run").click().run()
    assert not at.exception
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with seeded.session() as session:
            if session.scalar(select(InvoiceCheck.status).order_by(InvoiceCheck.id.desc())) != CheckStatus.RUNNING:
                break
        time.sleep(0.5)
    at.run()
    assert at.success[0].value == "All 6 checks pass.", [e.value for e in at.error]


def test_a_documents_stored_versions_are_listed(seeded, files):
    with seeded.session() as session:
        newest = session.scalars(select(Invoice).order_by(Invoice.issued_at.desc(), Invoice.id.desc())).first()
    storage.issued_pdf(seeded, FINANCE, newest.id, settings=Settings(database_url=seeded.url, invoice_dir=files))
    at = open_invoices()
    versions = table(at, "bills_versions")
    assert list(versions["Version"]) == ["v1"] and list(versions["Reason"]) == [storage.ISSUED_REASON]
    assert table(at, "bills_table")["File"].iloc[0] == "v1"


def test_versions_from_issue_and_from_a_job_are_shown_without_any_warning_logged(seeded, files):
    settings = Settings(database_url=seeded.url, invoice_dir=files)
    with seeded.session() as session:
        newest = session.scalars(select(Invoice).order_by(Invoice.issued_at.desc(), Invoice.id.desc())).first()
    storage.issued_pdf(seeded, FINANCE, newest.id, settings=settings)
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE, numbers=[newest.number])
        with transaction(session):
            job_id = batch.start_job(session, FINANCE, chosen, "new logo").id
    batch.run_job(seeded, FINANCE, job_id, workers=1, settings=settings)
    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = logged.append
    watched = logging.getLogger("streamlit.dataframe_util")
    level = watched.level
    watched.addHandler(handler)
    watched.setLevel(logging.INFO)
    try:
        at = open_invoices()
    finally:
        watched.removeHandler(handler)
        watched.setLevel(level)
    assert list(table(at, "bills_versions")["Job"]) == ["", str(job_id)]
    assert not [r.getMessage() for r in logged]


def test_headline_amounts_fit_their_tiles_and_give_the_exact_amount_on_hover(seeded):
    at = open_invoices()
    with seeded.session() as session:
        net = session.scalar(select(func.sum(Invoice.total_cents)).where(Invoice.sandbox.is_(False)))
    [tile] = [m for m in at.metric if m.label == "Net total"]
    assert net >= 1_000_000 and tile.value == format_compact(net)  # "$27K" (and "$1.23M"), never "$1,234,5…"
    assert plain(f"Exactly {format_cents(net)}.") in tile.proto.help


def test_dry_run_shows_how_many_and_start_needs_a_reason(seeded):
    at = open_invoices()
    at.multiselect(key="regen_plans").set_value(["pro"]).run()
    with seeded.session() as session:
        expected = batch.select_invoices(session, FINANCE, plans=["pro"]).count
    assert at.button(key="regen_start").disabled
    at.button(key="regen_dry").click().run()
    shown = metrics(at)
    assert shown["Would regenerate"] == f"{expected:,}"
    assert shown["Would change (estimate)"] == f"{expected:,}"  # nothing stored yet: every one is new
    assert "Estimated time" in shown
    assert at.button(key="regen_start").disabled  # no reason yet
    at.text_input(key="regen_reason").input("new company address").run()
    assert not at.button(key="regen_start").disabled


def test_pasted_numbers_that_are_not_invoices_are_reported(seeded):
    with seeded.session() as session:
        real = session.scalars(select(Invoice.number).order_by(Invoice.id)).first()
    at = open_invoices()
    at.text_area(key="regen_numbers").input(f"{real}\nINV-1999-000001").run()
    assert any("INV\\-1999\\-000001" in w.value for w in at.warning)
    assert any(m.value == "**1 invoices selected**" for m in at.markdown)


def a_customer_with_invoices(database: Database) -> Customer:
    with database.session() as session:
        return session.scalars(
            select(Customer).join(Order, Order.customer_id == Customer.id).join(Invoice, Invoice.order_id == Order.id)
        ).first()


def test_the_batch_customer_filter_finds_a_customer_by_name_as_the_customers_page_does(seeded):
    customer = a_customer_with_invoices(seeded)
    with seeded.session() as session:
        expected = batch.select_invoices(session, FINANCE, customer=customer.public_id).count
    at = open_invoices()
    at.text_input(key="regen_customer").input(customer.name).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    picks = [s for s in at.selectbox if s.key == "regen_customer_pick"]
    if picks:  # several customers share a word of the name: pick ours
        picks[0].set_value(customer.public_id).run()
    assert any(m.value == f"**{expected:,} invoices selected**" for m in at.markdown)


def test_the_batch_customer_filter_takes_an_email_domain(seeded):
    customer = a_customer_with_invoices(seeded)
    at = open_invoices()
    with seeded.session() as session:
        expected = batch.select_invoices(session, FINANCE, customer=customer.public_id).count
    at.text_input(key="regen_customer").input(customer.email.split("@")[1]).run()
    assert not at.error, [e.value for e in at.error]
    picks = [s for s in at.selectbox if s.key == "regen_customer_pick"]
    if picks:
        assert any(o.endswith(customer.public_id) for o in picks[0].options)
        picks[0].set_value(customer.public_id).run()
    assert any(m.value == f"**{expected:,} invoices selected**" for m in at.markdown)


def test_the_bills_review_customer_filter_takes_the_same_search(seeded):
    customer = a_customer_with_invoices(seeded)
    with seeded.session() as session:
        theirs = session.scalar(
            select(func.count())
            .select_from(Invoice)
            .join(Order, Order.id == Invoice.order_id)
            .where(Order.customer_id == customer.id, Invoice.sandbox.is_(False))
        )
    at = open_invoices()
    at.text_input(key="bills_customer").input(customer.name).run()
    picks = [s for s in at.selectbox if s.key == "bills_customer_pick"]
    if picks:
        picks[0].set_value(customer.public_id).run()
    assert not at.error, [e.value for e in at.error]
    assert metrics(at)["Documents"] == f"{theirs:,}"


def test_a_customer_nobody_matches_is_explained_without_echoing_a_long_paste(seeded):
    at = open_invoices()
    at.text_input(key="regen_customer").input("zq" * 160).run()  # as much as the box takes
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert len(error) < 200 and "zq" * 25 not in error
    assert not any(m.value.endswith("invoices selected**") for m in at.markdown)


def test_a_started_job_runs_apart_and_offers_its_zip(seeded, files):
    at = open_invoices()
    at.multiselect(key="regen_plans").set_value(["max"]).run()
    at.button(key="regen_dry").click().run()
    at.text_input(key="regen_reason").input("new logo").run()
    at.button(key="regen_start").click().run()
    assert not at.exception, at.exception
    with seeded.session() as session:
        job_id = session.scalar(select(RegenerationJob.id))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with seeded.session() as session:
            if session.get(RegenerationJob, job_id).status != RegenerationStatus.RUNNING:
                break
        time.sleep(0.5)
    at.run()
    with seeded.session() as session:
        job = session.get(RegenerationJob, job_id)
    assert job.status == RegenerationStatus.FINISHED and job.done == job.total > 0
    assert any(b.proto.label.startswith("Download ZIP") for b in at.get("download_button"))


def test_a_started_job_shows_at_once_and_no_estimate_before_there_is_one(seeded, monkeypatch):
    at = open_invoices()
    at.multiselect(key="regen_plans").set_value(["max"]).run()
    at.button(key="regen_dry").click().run()
    at.text_input(key="regen_reason").input("new logo").run()
    reviews = []
    summary = bills.summary
    monkeypatch.setattr(bills, "summary", lambda *a, **k: reviews.append(1) or summary(*a, **k))
    # The job row as its process has not moved it yet: nothing done, so no estimate.
    idle = []
    monkeypatch.setattr(bills, "launch_job", lambda *a, **k: idle.append(subprocess.Popen(["sleep", "30"])) or idle[-1])
    at.button(key="regen_start").click().run()
    assert not at.exception, at.exception
    with seeded.session() as session:
        job_id = session.scalar(select(RegenerationJob.id))
    assert any(m.value.startswith(f"**Job {job_id}** :blue-badge[running]") for m in at.markdown)
    [progress] = [p.proto.text for p in at.get("progress")]
    assert progress.startswith("0 of ") and "estimating" not in progress and "about" not in progress
    assert len(reviews) <= 1, "Start reran the whole app (the bills review too), not the batch tab alone"
    for process in idle:
        process.kill()


def test_a_cancelled_job_offers_resume_and_a_zip_of_what_it_did(seeded, files, monkeypatch):
    settings = Settings(database_url=seeded.url, invoice_dir=files)
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        with transaction(session):
            job_id = batch.start_job(session, FINANCE, chosen, "cancelled half way").id
    monkeypatch.setattr(batch, "CHUNK", 5)
    asked = []

    def cancel_after_the_first_chunk() -> bool:
        asked.append(1)
        if len(asked) == 1:
            return False
        with seeded.session() as session:
            bills.cancel_job(session, FINANCE, job_id)
        return True

    job = batch.run_job(seeded, FINANCE, job_id, should_stop=cancel_after_the_first_chunk, settings=settings)
    assert job.status == RegenerationStatus.CANCELLED and job.done == 5
    at = open_invoices()
    assert any(m.value.startswith(f"**Job {job_id}** :gray-badge[cancelled] · 5/") for m in at.markdown)
    assert any(
        b.proto.label.startswith("Download ZIP") and "5 PDFs" in b.proto.label for b in at.get("download_button")
    )
    at.button(key=f"job_resume_{job_id}").click().run()
    assert not at.exception, at.exception
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with seeded.session() as session:
            if session.get(RegenerationJob, job_id).status != RegenerationStatus.RUNNING:
                break
        time.sleep(0.5)
    with seeded.session() as session:
        job = session.get(RegenerationJob, job_id)
    assert job.status == RegenerationStatus.FINISHED and job.done == job.total == chosen.count


def test_verify_lists_an_altered_file(seeded, files):
    with seeded.session() as session:
        first = session.scalars(select(Invoice).order_by(Invoice.id)).first()
    stored, _ = storage.issued_pdf(
        seeded, FINANCE, first.id, settings=Settings(database_url=seeded.url, invoice_dir=files)
    )
    (files / stored.path).write_bytes(b"%PDF-forged")
    at = open_invoices()
    at.button(key="verify_run").click().run()
    shown = metrics(at)
    assert (shown["Files checked"], shown["Altered"], shown["Missing"]) == ("1", "1", "0")
    assert list(table(at, "verify_problems")["File"]) == [stored.path]


@pytest.mark.parametrize("role", ["support", "analyst"])
def test_support_and_analyst_do_not_get_the_page(seeded, monkeypatch, role):
    monkeypatch.setenv("BILLING_LOCAL_ROLE", role)
    at = AppTest.from_file(APP, default_timeout=60).run()
    [(page_hash, info)] = [(h, i) for h, i in at._registered_pages.items() if i.get("url_pathname") == "invoices"]
    assert info["page_name"] == REFUSED_TITLE  # the address answers with a refusal, not the page
    at._page_hash = page_hash
    at.run()
    assert [t.value for t in at.title] == [REFUSED_TITLE]
    assert all(t.value != "Invoices" for t in at.title)


def test_switching_away_from_finance_leaves_the_page(seeded):
    at = open_invoices()
    at.selectbox(key="local_role_picker").set_value("analyst").run()
    assert all(t.value != "Invoices" for t in at.title)
    assert not [b for b in at.button if b.key == "regen_dry"]
