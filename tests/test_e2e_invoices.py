"""End to end: the Invoices page in a real browser, as finance, on a small seeded database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from billing_core.access.roles import Actor, Role
from billing_core.core.db import Database
from billing_core.demo import seeding as demo
from tests.e2e_support import local_mode_env, metric, settle, start_streamlit

pytestmark = pytest.mark.e2e


@pytest.fixture
def finance_server(tmp_path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    database = Database(url)
    database.migrate()
    demo.seed(database, orders=400, seed=9, actor=Actor("ada@company.test", Role.ADMIN))
    database.dispose()
    env = local_mode_env(url, "finance", tmp_path, {"BILLING_INVOICE_DIR": str(tmp_path / "files")})
    with start_streamlit(env, tmp_path) as server:
        yield server.base


def test_finance_reviews_bills_and_dry_runs_a_regeneration(finance_server, page: Page, output_dir: Path):
    page.goto(finance_server)
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()  # finance lands on Orders
    page.get_by_role("link", name="Invoices", exact=True).click()
    expect(page.get_by_role("heading", name="Invoices")).to_be_visible()
    # Series health on every view; the rest waits for a deep check.
    expect(page.get_by_text("no deep check has run yet")).to_be_visible()
    page.get_by_role("button", name="Run deep check").click()
    expect(page.get_by_text("All 6 checks pass.")).to_be_visible(timeout=60_000)  # run apart, then shown
    expect(metric(page, "Documents")).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    expect(page.get_by_text("Showing 1–50 of")).to_be_visible()
    expect(page.get_by_role("heading", name="Totals by month and plan")).to_be_visible()
    settle(page)
    page.set_viewport_size({"width": 1440, "height": 1900})  # Streamlit scrolls inside the page: show it all
    page.screenshot(path=str(output_dir / "invoices.png"))

    page.get_by_role("tab", name="Batch regeneration").click()
    page.get_by_role("button", name="Dry run").click()
    expect(metric(page, "Would regenerate")).to_be_visible(timeout=60_000)
    expect(metric(page, "Estimated time")).to_be_visible()
    page.get_by_role("textbox", name="Reason (stored with every new version)").fill("new company address")
    page.get_by_role("textbox", name="Reason (stored with every new version)").press("Enter")
    expect(page.get_by_role("button", name="Start regeneration")).to_be_enabled()
    settle(page)
    page.screenshot(path=str(output_dir / "invoices-dry-run.png"))

    page.get_by_role("button", name="Start regeneration").click()
    # At once, not after a rerun of the whole app: the job's row, with no estimate before there is one.
    expect(page.get_by_text(re.compile(r"^Job \d+$"))).to_be_visible(timeout=2_000)
    assert page.get_by_text("No regeneration jobs yet.").count() == 0
    assert page.get_by_text(re.compile("estimating")).count() == 0  # looked at once, not waited for
    expect(page.get_by_test_id("stProgress")).to_be_visible()  # the job row, polled while the job runs apart
    expect(page.get_by_role("button", name=re.compile(r"^Download ZIP"))).to_be_visible(timeout=120_000)
    settle(page)
    page.screenshot(path=str(output_dir / "invoices-job.png"))
