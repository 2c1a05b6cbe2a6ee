"""End to end in Chromium, as support works: links to a page open it for every role whichever page is
its home, and a customer found by last name has an order completed and the balance seen to change."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing_core.core.db import Database
from billing_core.core.models import Customer, Order, OrderStatus
from tests.e2e_support import BANNER, StreamlitServer, local_mode_env, metric, settle, start_streamlit
from tests.test_e2e_orders import EMAIL, seed_stuck_order

pytestmark = pytest.mark.e2e

NOT_FOUND = "Page not found"


@pytest.fixture
def server(tmp_path) -> Iterator[Callable[[str], tuple[str, Database, str]]]:
    """A `streamlit run app.py` on a SQLite file holding Ana Pereira's paid-but-pending order, as ``role``."""
    started: list[StreamlitServer] = []
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    database = Database(url)
    database.migrate()
    public_id = seed_stuck_order(database)

    def start(role: str) -> tuple[str, Database, str]:
        running = start_streamlit(local_mode_env(url, role, tmp_path), tmp_path, name=f"streamlit-{role}")
        started.append(running)
        return running.base, database, public_id

    yield start
    for running in started:
        running.stop()
    database.dispose()


def customer_id(database: Database) -> str:
    with database.session() as s:
        return s.scalar(select(Customer.public_id).where(Customer.email == EMAIL))


@pytest.mark.parametrize("role", ["support", "finance", "admin"])
def test_an_order_link_and_a_customer_link_open_for_every_role_that_may_see_them(server, page: Page, role):
    base, database, public_id = server(role)

    page.goto(f"{base}/orders?order={public_id}")
    expect(page.get_by_role("heading", name=f"Order {public_id}")).to_be_visible(timeout=20_000)
    settle(page)
    expect(page.get_by_text(NOT_FOUND)).to_have_count(0)
    assert f"/orders?order={public_id}" in page.url

    page.goto(f"{base}/customers?customer={customer_id(database)}")
    expect(page.get_by_role("heading", name="Ana Pereira")).to_be_visible(timeout=20_000)
    settle(page)
    expect(page.get_by_text(NOT_FOUND)).to_have_count(0)


def test_a_link_with_the_payment_reference_opens_its_order(server, page: Page):
    base, database, public_id = server("support")
    with database.session() as s:
        ref = s.scalar(select(Order.provider_ref).where(Order.public_id == public_id))
    page.goto(f"{base}/orders?order={ref}")
    expect(page.get_by_role("heading", name=f"Order {public_id}")).to_be_visible(timeout=20_000)
    settle(page)
    expect(page.get_by_text("No such order")).to_have_count(0)


def _click_first_link_cell(page: Page, grid_index: int, column_x: float = 22) -> Page:
    """Open the link in the first row of a table's first column: the first click selects the cell, the
    second follows the link, which opens in a new tab."""
    grid = page.locator("[data-testid=stDataFrame]:visible").nth(grid_index)  # of the open tab
    expect(grid).to_be_visible()
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    x, y = box["x"] + column_x, box["y"] + 35 + 17  # the header row, then the middle of row one
    page.mouse.click(x, y)
    page.wait_for_timeout(300)
    with page.context.expect_page() as opened:
        page.mouse.click(x, y)
    new = opened.value
    new.wait_for_load_state()
    return new


def test_support_finds_a_customer_by_last_name_completes_an_order_and_sees_the_balance_change(
    server, page: Page, output_dir
):
    base, database, public_id = server("support")
    page.goto(f"{base}/customers")
    expect(page.get_by_text(BANNER)).to_be_visible()
    box = page.get_by_role("textbox", name="Find a customer")
    box.fill("Pereira")
    box.press("Enter")
    expect(page.get_by_role("heading", name="Customers (1)")).to_be_visible()
    settle(page)

    customer = _click_first_link_cell(page, 0)  # the "open" link of Ana Pereira
    expect(customer.get_by_role("heading", name="Ana Pereira")).to_be_visible(timeout=20_000)
    expect(metric(customer, "Credits balance")).to_have_text("0")
    settle(customer)
    customer.get_by_role("tab", name="Orders").click()
    settle(customer)

    order = _click_first_link_cell(customer, 0)  # newest first: the paid-at-the-gateway Pro order
    expect(order.get_by_role("heading", name=f"Order {public_id}")).to_be_visible(timeout=20_000)
    settle(order)
    order.get_by_role("textbox", name="Reason (kept in the audit log)").fill("Customer wrote: paid, no credits")
    order.get_by_role("textbox", name="Reason (kept in the audit log)").press("Enter")
    settle(order)
    order.get_by_text(f"I confirm: complete from gateway for order {public_id}").click()
    order.get_by_role("button", name="Complete from gateway", exact=True).click()
    expect(order.get_by_text("Completed: 500 credits added")).to_be_visible()

    customer.reload()
    expect(metric(customer, "Credits balance")).to_have_text("500", timeout=20_000)
    settle(customer)
    customer.set_viewport_size({"width": 1400, "height": 1400})
    settle(customer)
    customer.screenshot(path=str(output_dir / "support-desk-customer.png"))
    with database.session() as s:
        assert s.scalar(select(Order.status).where(Order.public_id == public_id)) is OrderStatus.PAID
