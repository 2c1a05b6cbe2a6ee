"""End to end: the Revenue page in headless Chromium on a small seeded database, opened from a shared link."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from billing_core import demo, rollup
from billing_core.access import Actor, Role
from billing_core.db import Database
from tests.test_e2e_app import CHROMIUM_ARGS, ROOT, _free_port, _wait_healthy

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser(chromium_path) -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 2600})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def revenue_server(tmp_path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    database = Database(url)
    database.migrate()
    demo.seed(database, orders=3000, seed=5, actor=Actor("ada@company.test", Role.ADMIN))
    rollup.rebuild(database)
    database.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_", "STRIPE_", "DATABASE_URL"))}
    env |= {
        "DATABASE_URL": url,
        "BILLING_LOCAL_MODE": "1",
        "BILLING_LOCAL_ROLE": "analyst",
        "BILLING_SECRETS_FILE": str(tmp_path / "no-secrets.toml"),
    }
    port = _free_port()
    log = tmp_path / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    command += ["--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def test_a_shared_link_opens_the_revenue_page_with_its_filters(revenue_server, page, output_dir):
    page.goto(f"{revenue_server}/revenue?range=last_90&bucket=week")
    expect(page.get_by_role("heading", name="Revenue")).to_be_visible()
    expect(_metric(page, "Top-up revenue")).to_have_text(re.compile(r"^\$[\d,]+\.\d\d$"))
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    expect(page.get_by_text("Top-up revenue by plan, per week")).to_be_visible()
    assert "range=last_90" in page.url and "bucket=week" in page.url

    page.get_by_role("combobox", name="Period").click()
    page.get_by_role("option", name="Last 12 months").click()
    expect(page.get_by_text("Top-up revenue by plan, per week")).to_be_visible()
    page.wait_for_url(lambda u: "range=last_12_months" in u)
    page.wait_for_timeout(1000)  # let plotly finish drawing
    page.screenshot(path=str(output_dir / "revenue.png"), full_page=True)
