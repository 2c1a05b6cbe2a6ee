"""End to end: the Revenue page in headless Chromium on a small seeded database, opened from a shared link."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from billing_core.access.roles import Actor, Role
from billing_core.core.db import Database
from billing_core.demo import seeding as demo
from tests.e2e_support import local_mode_env, metric, start_streamlit

pytestmark = pytest.mark.e2e
_TEXT_AND_ROOM = """e => {
    const text = document.createRange();
    text.selectNodeContents(e.querySelector("p") || e);
    const lines = text.getClientRects();
    const width = Array.from(lines).reduce((sum, r) => sum + r.width, 0);
    return [width, e.clientWidth];
}"""


@pytest.fixture
def viewport() -> dict[str, int]:
    """A tall page, so the whole Revenue page is in the screenshot."""
    return {"width": 1400, "height": 2600}


@pytest.fixture
def revenue_server(tmp_path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    database = Database(url)
    database.migrate()
    demo.seed(database, orders=3000, seed=5, actor=Actor("ada@company.test", Role.ADMIN))  # with its rollup
    database.dispose()
    env = local_mode_env(url, "analyst", tmp_path)
    with start_streamlit(env, tmp_path) as server:
        yield server.base


@pytest.fixture
def large_revenue_server(tmp_path) -> Iterator[str]:
    """Enough orders for all-time figures of tens of millions of dollars, which the tiles cut off."""
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    database = Database(url)
    database.migrate()
    demo.seed(database, orders=60_000, seed=5, actor=Actor("ada@company.test", Role.ADMIN))
    database.dispose()
    with start_streamlit(local_mode_env(url, "analyst", tmp_path), tmp_path) as server:
        yield server.base


def test_a_shared_link_opens_the_revenue_page_with_its_filters(revenue_server, page, output_dir):
    page.goto(f"{revenue_server}/revenue?range=last_90&bucket=week")
    expect(page.get_by_role("heading", name="Revenue")).to_be_visible()
    expect(metric(page, "Top-up revenue")).to_have_text(
        re.compile(r"^\$([\d,]+\.\d\d|\d+(\.\d\d?)?[KMB])$")
    )  # $612.35K
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    expect(page.get_by_text("Top-up revenue by plan, per week")).to_be_visible()
    assert "range=last_90" in page.url and "bucket=week" in page.url

    page.get_by_role("combobox", name="Period").click()
    page.get_by_role("option", name="Last 12 months").click()
    page.wait_for_url(lambda u: "range=last_12_months" in u)
    # While a rerun draws, the old chart can still stand beside the new one: any copy will do.
    expect(page.get_by_text("Top-up revenue by plan, per week").first).to_be_visible()
    page.wait_for_timeout(1000)  # let plotly finish drawing
    page.screenshot(path=str(output_dir / "revenue.png"), full_page=True)


def test_headline_figures_are_whole_at_1366_px_and_a_bad_country_is_an_error(large_revenue_server, page, output_dir):
    page.set_viewport_size({"width": 1366, "height": 1800})
    page.goto(f"{large_revenue_server}/revenue?range=all")
    # The first view of 60,000 orders' figures, on a machine that may be busy, takes a while.
    expect(metric(page, "Top-up revenue")).to_have_text(re.compile(r"^\$\d+(\.\d\d?)?M$"), timeout=90_000)
    values = page.get_by_test_id("stMetricValue")
    expect(values).to_have_count(10)  # eight headline tiles, new and returning customers
    for value in values.all():
        # The tile clips its text with an ellipsis: compare the text's own width with the room it has.
        needed, room = value.evaluate(_TEXT_AND_ROOM)
        assert needed <= room, f"{value.inner_text()!r} is cut off ({needed:.0f} px in {room} px)"
    assert not page.get_by_text("compared with").count()  # all time has no earlier period
    page.screenshot(path=str(output_dir / "revenue-1366.png"))

    box = page.get_by_role("textbox", name="Countries")
    box.fill("Narnia")
    box.press("Enter")
    expect(page.get_by_text("Not a country: “Narnia”")).to_be_visible()
    expect(page.get_by_test_id("stMetric")).to_have_count(0)
