"""End to end: what leaves through the browser. A link anybody can write (`?order=<URL>`,
`?tz=<URL>`) is never shown back as a live link, and tables offer no export of their own beside the
app's formula-safe CSV buttons (client.disableDataExport)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from billing_core.core.db import Database
from tests.e2e_support import BANNER, StreamlitServer, local_mode_env, settle, start_streamlit
from tests.test_e2e_orders import seed_stuck_order

pytestmark = pytest.mark.e2e

EVIL = "https://sso-company.evil.example/reset"


@pytest.fixture
def server(tmp_path) -> Iterator[StreamlitServer]:
    url = f"sqlite:///{tmp_path / 'links.db'}"
    database = Database(url)
    database.migrate()
    seed_stuck_order(database)  # a table with rows: an empty one offers no download anyway
    database.dispose()
    with start_streamlit(local_mode_env(url, "admin", tmp_path), tmp_path) as running:
        yield running


def live_links_to_evil(page: Page) -> list[str]:
    return page.locator("a[href*='evil.example']").evaluate_all("links => links.map(a => a.outerHTML)")


def test_an_order_link_carrying_a_url_shows_no_live_link(server, page: Page):
    page.goto(f"{server.base}/orders?order={EVIL}")
    expect(page.get_by_text(BANNER)).to_be_visible()
    expect(page.get_by_text("No such order: the order id in this link matches no order.")).to_be_visible()
    settle(page)
    assert live_links_to_evil(page) == []


def test_a_revenue_link_carrying_a_url_shows_it_as_text_only(server, page: Page):
    page.goto(f"{server.base}/revenue?tz={EVIL}&country=www.evil.example/login")
    expect(page.get_by_text("is not one the reports keep").first).to_be_visible()
    settle(page)
    assert live_links_to_evil(page) == []


def test_tables_offer_no_download_of_their_own(server, page: Page):
    page.goto(f"{server.base}/orders")
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid).to_be_visible()
    settle(page)
    grid.hover()
    expect(page.get_by_role("button", name="Fullscreen").first).to_be_visible()  # the table's toolbar is up
    expect(page.get_by_role("button", name="Download as CSV")).to_have_count(0)
