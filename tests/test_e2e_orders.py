"""End to end: support finds a stuck order by email in a real browser, checks it, and completes it once."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from billing_core.access.roles import Actor, Role
from billing_core.core.db import Database
from billing_core.core.models import LedgerEntry, Order, OrderStatus
from billing_core.orders import lifecycle as orders
from billing_core.payments.simulated import Outcome, SimulatedGateway
from billing_core.pricing.catalog import load_pricing
from tests.e2e_support import BANNER, StreamlitServer, local_mode_env, metric, settle, start_streamlit
from tests.helpers import make_customer, make_order

pytestmark = pytest.mark.e2e

ADMIN = Actor("ada@company.test", Role.ADMIN, "Ada Admin")
EMAIL = "ana.pereira@example.com"


def seed_stuck_order(database: Database) -> str:
    """A Pro top-up the customer paid at the (simulated) gateway, still pending here."""
    with database.session() as s:
        customer = make_customer(
            s, ADMIN, email=EMAIL, name="Ana Pereira", country="PT", company="Lisboa Labs Lda", tax_id="PT509876543"
        )
        make_order(s, ADMIN, customer, load_pricing(), amount="100", method="stripe")  # an older, unpaid one
        order = make_order(s, ADMIN, customer, load_pricing(), amount="500", method="stripe")
        gateway = SimulatedGateway(database)
        payment = gateway.create_payment(orders._payment_request(s, order))
        orders.attach_payment(s, ADMIN, order.public_id, payment)
        gateway.settle(payment.ref, Outcome.SUCCEED)
        return order.public_id


@pytest.fixture
def server(tmp_path) -> Iterator[Callable[[str], tuple[str, Database, str]]]:
    """A fresh `streamlit run app.py` on a seeded SQLite file, acting as ``role`` in local mode."""
    started: list[StreamlitServer] = []
    databases: list[Database] = []

    def start(role: str) -> tuple[str, Database, str]:
        url = f"sqlite:///{tmp_path / 'orders.db'}"
        database = Database(url)
        database.migrate()
        databases.append(database)
        public_id = seed_stuck_order(database)
        env = local_mode_env(url, role, tmp_path)
        server = start_streamlit(env, tmp_path)
        started.append(server)
        return server.base, database, public_id

    yield start
    for server in started:
        server.stop()
    for database in databases:
        database.dispose()


def _select_first_row(page: Page) -> None:
    """Tick the first result row (the row-selection column is left of the first column)."""
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid).to_be_visible()
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)  # header row, then the middle of row one


def test_support_finds_checks_and_completes_a_stuck_order(server, page, output_dir):
    base, database, public_id = server("support")
    page.goto(base)
    expect(page.get_by_text(BANNER)).to_be_visible()

    search = page.get_by_role("textbox", name="Search orders")
    search.fill(EMAIL)
    search.press("Enter")
    expect(page.get_by_text("2 matching orders")).to_be_visible()
    settle(page)
    _select_first_row(page)  # newest first: the paid-at-the-gateway Pro order
    expect(page.get_by_role("heading", name=f"Order {public_id}")).to_be_visible()
    assert f"order={public_id}" in page.url  # the link to paste into the ticket
    expect(metric(page, "Status")).to_have_text("pending")

    page.get_by_role("button", name="Check with gateway").click()
    expect(page.get_by_text("The gateway says succeeded")).to_be_visible()
    expect(page.get_by_text("Paid at the gateway but pending here: complete the order.")).to_be_visible()
    settle(page)

    page.get_by_role("textbox", name="Reason (kept in the audit log)").fill("Customer wrote: paid but no credits")
    page.get_by_role("textbox", name="Reason (kept in the audit log)").press("Enter")
    settle(page)
    page.get_by_text(f"I confirm: complete from gateway for order {public_id}").click()
    run = page.get_by_role("button", name="Complete from gateway", exact=True)
    expect(run).to_be_enabled()
    run.click()

    expect(page.get_by_text("Completed: 500 credits added")).to_be_visible()
    expect(metric(page, "Status")).to_have_text("paid")
    expect(metric(page, "Credits balance")).to_have_text("500")
    settle(page)
    page.set_viewport_size({"width": 1400, "height": 2400})  # the app scrolls inside; show all of it
    settle(page)
    page.screenshot(path=str(output_dir / "orders.png"))

    with database.session() as s:
        order = s.scalar(select(Order).where(Order.public_id == public_id))
        assert order.status is OrderStatus.PAID
        assert s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.order_id == order.id)) == 1
