"""End to end: a real `streamlit run app.py` server driven by headless Chromium.

Each server is fresh (its own process and SQLite file), because the page-routing trap these tests
guard against only shows on a process's very first request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from billing_core.core.db import Database
from tests.e2e_support import BANNER, StreamlitServer, local_mode_env, metric, settle, start_streamlit

pytestmark = pytest.mark.e2e


@pytest.fixture
def start_server(tmp_path) -> Iterator[Callable[[str], str]]:
    """Start a fresh server acting as ``role`` in local mode; returns its base URL."""
    started: list[StreamlitServer] = []

    def start(role: str) -> str:
        n = len(started)
        url = f"sqlite:///{tmp_path / f'billing{n}.db'}"
        database = Database(url)
        database.migrate()
        database.dispose()
        env = local_mode_env(url, role, tmp_path)
        server = start_streamlit(env, tmp_path, f"streamlit{n}")
        started.append(server)
        return server.base

    yield start
    for server in started:
        server.stop()


def _total(page: Page):
    return metric(page, "Total charged")


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


def test_first_request_to_simulator_url_as_support_shows_no_simulator(start_server, page):
    base = start_server("support")
    page.goto(f"{base}/simulator")  # the very first request this server sees
    expect(page.get_by_role("heading", name="Not for your role")).to_be_visible()  # why, not the simulator
    expect(page.get_by_text("The support role may not open the Top-up simulator page.")).to_be_visible()
    settle(page)

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
    settle(page)  # a click that lands during a rerun can be lost

    page.get_by_role("button", name="Get Credits").click()
    balance = metric(page, "Credits balance")
    expect(balance).to_have_text("100")
    invoice = metric(page, "Invoice")
    expect(invoice).to_have_text(re.compile(r"^SBX-\d{4}-000001$"))
    settle(page)  # the run that shows the result may still be redrawing the tables below
    audit = page.get_by_text("Audit events")
    expect(audit).to_be_visible()
    audit.scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "simulator-sandbox.png"))
