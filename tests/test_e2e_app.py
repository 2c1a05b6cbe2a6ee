"""End to end: a real `streamlit run app.py` server driven by headless Chromium.

Each server is fresh (its own process and SQLite file), because the page-routing trap these tests
guard against only shows on a process's very first request.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from billing_core.db import Database

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
BANNER = "Local mode — identity chosen here, not signed in"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"streamlit did not become healthy in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def start_server(tmp_path) -> Iterator[Callable[[str], str]]:
    """Start a fresh server acting as ``role`` in local mode; returns its base URL."""
    started: list[subprocess.Popen] = []

    def start(role: str) -> str:
        n = len(started)
        url = f"sqlite:///{tmp_path / f'billing{n}.db'}"
        database = Database(url)
        database.migrate()
        database.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_", "STRIPE_", "DATABASE_URL"))}
        env |= {
            "DATABASE_URL": url,
            "BILLING_LOCAL_MODE": "1",
            "BILLING_LOCAL_ROLE": role,
            "BILLING_SECRETS_FILE": str(tmp_path / "no-secrets.toml"),
        }
        port = _free_port()
        log = tmp_path / f"streamlit{n}.log"
        command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
        command += ["--server.headless", "true", "--server.fileWatcherType", "none"]
        command += ["--browser.gatherUsageStats", "false"]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, proc, log)
        return base

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(chromium_path) -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def _total(page: Page):
    return page.get_by_test_id("stMetric").filter(has_text="Total charged").get_by_test_id("stMetricValue")


def test_choosing_a_plan_and_typing_an_amount_updates_the_quote(start_server, page, output_dir):
    base = start_server("analyst")
    page.goto(base)
    expect(page.get_by_text(BANNER)).to_be_visible()

    page.get_by_role("button", name="Choose Study").click()
    expect(_total(page)).to_have_text("$21.10")
    page.get_by_role("button", name="Choose Pro").click()
    expect(_total(page)).to_have_text("$527.50")  # $500 + 5.5% Stripe fee
    expect(page.get_by_text("5.5% of $500.00 rounded half-up to the cent")).to_be_visible()

    amount = page.get_by_role("textbox", name="Or a custom amount (USD)")
    amount.fill("250")
    amount.press("Enter")
    expect(_total(page)).to_have_text("$263.75")

    amount.fill("3")
    amount.press("Enter")
    expect(page.get_by_text("The smallest custom top-up is $5.00.")).to_be_visible()
    expect(_total(page)).to_have_count(0)

    amount.fill("1,234.56")
    amount.press("Enter")
    expect(_total(page)).to_have_text("$1,302.46")  # 1,234.56 + 67.90
    page.screenshot(path=str(output_dir / "simulator.png"), full_page=True)


def _settle(page: Page) -> None:
    """Wait until the script run has finished (the running indicator is gone)."""
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=20_000)
    page.wait_for_timeout(500)


def test_first_request_to_simulator_url_as_support_shows_no_simulator(start_server, page):
    base = start_server("support")
    page.goto(f"{base}/simulator")  # the very first request this server sees
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()  # support's own page instead
    _settle(page)

    expect(page.get_by_role("button", name="Get Credits")).to_have_count(0)
    expect(page.get_by_text("Total charged")).to_have_count(0)
    expect(page.get_by_text(BANNER)).to_be_visible()


def test_first_request_to_simulator_url_as_analyst_runs_the_router_first(start_server, page):
    base = start_server("analyst")
    page.goto(f"{base}/simulator")  # the very first request this server sees
    expect(page.get_by_text(BANNER)).to_be_visible()
    expect(page.get_by_role("button", name="Get Credits")).to_be_visible()
    expect(_total(page)).to_have_text("$527.50")


def test_a_sandbox_run_in_the_browser_shows_balance_and_invoice(start_server, page, output_dir):
    base = start_server("analyst")
    page.goto(base)
    page.get_by_role("button", name="Choose Standard").click()
    expect(_total(page)).to_have_text("$105.50")

    page.get_by_text("New sandbox customer").click()
    page.get_by_role("textbox", name="Name").fill("Zoë Sandbox")
    page.get_by_role("textbox", name="Email").fill("zoe@sandbox.test")
    page.get_by_role("textbox", name="Country (two letters)").fill("FR")
    page.get_by_role("button", name="Create sandbox customer").click()
    customer = page.get_by_role("combobox", name="Sandbox customer")
    expect(customer).to_have_value("Zoë Sandbox <zoe@sandbox.test>")
    expect(page.get_by_role("textbox", name="Email")).to_have_value("")  # the form is cleared
    _settle(page)  # a click that lands during a rerun can be lost

    page.get_by_role("button", name="Get Credits").click()
    balance = page.get_by_test_id("stMetric").filter(has_text="Credits balance").get_by_test_id("stMetricValue")
    expect(balance).to_have_text("100")
    invoice = page.get_by_test_id("stMetric").filter(has_text="Invoice").get_by_test_id("stMetricValue")
    expect(invoice).to_have_text(re.compile(r"^SBX-\d{4}-000001$"))
    page.get_by_text("Audit events").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "simulator-sandbox.png"))
