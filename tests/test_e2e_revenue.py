"""End to end: the Revenue page in headless Chromium on a small seeded database, opened from a shared link."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from billing_core import demo
from billing_core.access import Actor, Role
from billing_core.db import Database
from tests.e2e_support import local_mode_env, metric, start_streamlit

pytestmark = pytest.mark.e2e


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


def test_a_shared_link_opens_the_revenue_page_with_its_filters(revenue_server, page, output_dir):
    page.goto(f"{revenue_server}/revenue?range=last_90&bucket=week")
    expect(page.get_by_role("heading", name="Revenue")).to_be_visible()
    expect(metric(page, "Top-up revenue")).to_have_text(re.compile(r"^\$[\d,]+\.\d\d$"))
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
