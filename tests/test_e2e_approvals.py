"""End to end in Chromium, the four eyes on a goodwill grant: support proposes it on the customer page,
finance approves it on the Approvals page, the customer's balance grows by it and the liability on the
Credits page moves by the same amount, in credits and in USD at the price paid."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from billing_core.access.roles import Actor, Role
from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.core.models import ApprovalStatus
from billing_core.credits import approvals
from billing_core.orders import lifecycle as orders
from billing_core.pricing.catalog import load_pricing
from tests.e2e_support import BANNER, StreamlitServer, local_mode_env, metric, settle, start_streamlit
from tests.helpers import make_customer, make_order, paid

pytestmark = pytest.mark.e2e

ADMIN = Actor("ada@company.test", Role.ADMIN)
GRANT = "12.50"


@pytest.fixture
def server(tmp_path) -> Iterator[Callable[[str, str], tuple[str, Database, str]]]:
    """A SQLite file with one customer who bought 100 credits, and `streamlit run app.py` as a person."""
    url = f"sqlite:///{tmp_path / 'approvals.db'}"
    database = Database(url)
    database.migrate()
    with database.session() as s:
        customer = make_customer(s, ADMIN, email="lena@example.com", name="Lena Okafor")
        order = make_order(s, ADMIN, customer, load_pricing(), amount="100")
        settings = Settings(database_url=url)
        orders.complete_order(s, ADMIN, order.id, settings=settings, reason="paid", payment=paid(order))
        public_id = customer.public_id
    running: list[StreamlitServer] = []

    def start(role: str, email: str) -> tuple[str, Database, str]:
        for earlier in running:  # one server at a time: the machine is small
            earlier.stop()
        running.clear()
        env = local_mode_env(url, role, tmp_path, {"BILLING_LOCAL_EMAIL": email})
        running.append(start_streamlit(env, tmp_path, name=f"streamlit-{role}"))
        return running[0].base, database, public_id

    yield start
    for server in running:
        server.stop()
    database.dispose()


def owed(page: Page, base: str) -> tuple[str, str]:
    """What the Credits page says is owed in paid credits and in USD at the price paid."""
    page.goto(f"{base}/credits")
    expect(page.get_by_role("heading", name="Credits")).to_be_visible(timeout=20_000)
    settle(page)
    credits = metric(page, "Owed in paid credits").inner_text()
    usd = metric(page, "Owed in USD at the price paid").inner_text()
    return credits, usd


def test_support_proposes_a_grant_finance_approves_it_and_balance_and_liability_move_by_it(
    server, page: Page, output_dir
):
    base, database, customer = server("finance", "fay@company.test")
    before = owed(page, base)
    assert before == ("100", "$100.00")

    base, database, customer = server("support", "sam@company.test")
    page.goto(f"{base}/customers?customer={customer}")
    expect(page.get_by_text(BANNER)).to_be_visible()
    expect(page.get_by_role("heading", name="Lena Okafor")).to_be_visible(timeout=20_000)
    expect(metric(page, "Credits balance")).to_have_text("100")
    settle(page)
    page.get_by_role("tab", name="Adjustments").click()
    settle(page)
    page.get_by_role("textbox", name="Credits (e.g. 25 or -25)").fill(GRANT)
    page.get_by_text("paid", exact=True).click()
    page.get_by_role("textbox", name="Reason (kept in the audit log)").fill("model outage on 3 Nov")
    page.get_by_role("textbox", name="Note the customer sees").fill("Sorry for the outage")
    page.get_by_role("button", name="Propose adjustment").click()
    expect(page.get_by_text("waits for an approval from finance")).to_be_visible()
    settle(page)
    page.get_by_text("waits for an approval from finance").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "approvals-support-proposes.png"), full_page=True)
    with database.session() as s:
        [waiting] = approvals.queue(s, ADMIN)
    assert (waiting.credits, waiting.pool.value, waiting.proposed_by) == (12_50, "paid", "sam@company.test")

    base, database, customer = server("finance", "fay@company.test")
    page.goto(f"{base}/approvals")
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Approvals waiting: 1")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text(f"Proposal {waiting.id} approved and booked.")).to_be_visible()
    expect(page.get_by_text("Approvals waiting: 0")).to_be_visible()  # the decision is counted at once
    settle(page)
    page.screenshot(path=str(output_dir / "approvals-finance-approves.png"), full_page=True)
    with database.session() as s:
        assert approvals.proposal(s, ADMIN, waiting.id).status is ApprovalStatus.APPROVED

    page.goto(f"{base}/customers?customer={customer}")
    expect(page.get_by_role("heading", name="Lena Okafor")).to_be_visible(timeout=20_000)
    expect(metric(page, "Credits balance")).to_have_text("112.50")
    settle(page)
    page.screenshot(path=str(output_dir / "approvals-customer-balance.png"), full_page=True)

    after = owed(page, base)
    assert after == ("112.50", "$112.50")  # the grant's 12.50 paid credits, worth $12.50 at 1 credit per USD
    page.screenshot(path=str(output_dir / "approvals-credits-liability.png"), full_page=True)
