"""Support proposes a grant on the customer page, finance approves it in the Approvals queue (AppTest):
the sidebar counts it while it waits, the balance and the liability roll-forward move by the grant."""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from billing_core.access.roles import Actor, Role
from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.core.models import CreditPool, OrderStatus
from billing_core.credits import ledger, liability
from billing_core.orders import lifecycle
from billing_core.payments.simulated import SimulatedGateway
from tests import test_app_orders as orders_app
from tests.test_app_credits import APP, holder, seeded  # noqa: F401 - the fixture

FAY = Actor("fay@company.test", Role.FINANCE)


def open_page(name: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    [page] = [h for h, info in at._registered_pages.items() if info.get("url_pathname") == name]
    at._page_hash = page
    at.run()
    assert not at.exception, at.exception
    return at


def sidebar_says(at: AppTest, text: str) -> bool:
    return any(text in str(getattr(el, "proto", "")) for el in at.sidebar)


def promotional_grants(db) -> int:
    with db.session() as s:
        lines = liability.roll_forward(s, FAY)
    return sum(line.credits.grants for line in lines if line.pool is CreditPool.PROMOTIONAL)


def test_support_proposes_finance_approves_and_balance_and_liability_move_by_it(seeded, monkeypatch):  # noqa: F811
    customer = holder(seeded)
    with seeded.session() as s:
        before = ledger._balance(s, customer.id)
    grants_before = promotional_grants(seeded)

    monkeypatch.setenv("BILLING_LOCAL_ROLE", "support")
    monkeypatch.setenv("BILLING_LOCAL_EMAIL", "sam@company.test")
    at = open_page("customers", {"customer": customer.public_id})
    at.text_input(key="adj_credits").input("12.50")
    at.text_input(key="adj_reason").input("model outage on 3 Nov")
    at.text_input(key="adj_note").input("Sorry for the outage")
    at.button[[b.label for b in at.button].index("Propose adjustment")].click().run()
    assert not at.exception, at.exception
    assert "waits for an approval from finance" in at.success[0].value
    with seeded.session() as s:
        assert ledger._balance(s, customer.id) == before

    monkeypatch.setenv("BILLING_LOCAL_ROLE", "finance")
    monkeypatch.setenv("BILLING_LOCAL_EMAIL", "fay@company.test")
    at = open_page("approvals")
    assert sidebar_says(at, "Approvals waiting: 1")
    at.button(key="appr_approve").click().run()
    assert not at.exception, at.exception
    assert "approved and booked" in at.success[0].value
    with seeded.session() as s:
        after = ledger._balance(s, customer.id)
    assert (after.promotional - before.promotional, after.paid - before.paid) == (12_50, 0)
    assert promotional_grants(seeded) - grants_before == 12_50
    at.run()  # the sidebar is drawn before the page acts: the next run counts what is left
    assert sidebar_says(at, "Approvals waiting: 0")


# --- refunds and manual completions sent for approval from the Orders page ---------------------------

FOUR_EYES = """
[credits]
refund_approval_above_cents = 5000
manual_completion_approval = true
"""


@pytest.fixture
def sqlite_db(sqlite_template, tmp_path) -> Database:
    """An empty migrated SQLite database for the Orders page's own seeds."""
    path = tmp_path / "orders.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def as_person(monkeypatch, tmp_path, db, role: str, email: str) -> None:
    """The app in local mode as ``email`` with ``role``, under the four-eyes credits policy above."""
    secrets = tmp_path / "four-eyes.toml"
    secrets.write_text(FOUR_EYES)
    for var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "BILLING_PRICING_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BILLING_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("BILLING_LOCAL_MODE", "1")
    monkeypatch.setenv("BILLING_LOCAL_ROLE", role)
    monkeypatch.setenv("BILLING_LOCAL_EMAIL", email)


def test_a_large_refund_is_sent_for_approval_on_the_order_and_refunded_when_approved(sqlite_db, monkeypatch, tmp_path):
    order = orders_app.seed(sqlite_db, amount="100")
    with sqlite_db.session() as s:
        payment = SimulatedGateway(sqlite_db).fetch_status(lifecycle._get_order(s, order.public_id).provider_ref)
        lifecycle.complete_order(
            s, orders_app.ADMIN, order.public_id, settings=Settings(database_url=sqlite_db.url), reason="seed",
            payment=payment,
        )  # fmt: skip
    as_person(monkeypatch, tmp_path, sqlite_db, "finance", "fay@company.test")
    at = open_page("orders", {"order": order.public_id})
    at.selectbox(key="order_action").set_value("Refund").run()
    at.text_input(key="refund_amount").input("60").run()
    assert any("go to the Approvals page" in c.value for c in at.caption)
    orders_app.run_action(at, "Refund", reason="service never worked")
    assert not at.error, [e.value for e in at.error]
    assert any("was sent for approval" in i.value for i in at.info), [i.value for i in at.info]
    shown = [i.value.replace("\\", "").replace("\u2060", "") for i in at.info]
    assert any("A refund of $60.00 was sent for approval by fay@company.test" in text for text in shown), shown
    assert orders_app.metrics(at)["Status"] == "paid"

    as_person(monkeypatch, tmp_path, sqlite_db, "finance", "fred@company.test")
    at = open_page("approvals")
    shown = at.dataframe[0].value
    assert list(shown["What"]) == ["refund"] and list(shown["Order"]) == [order.public_id]
    assert (shown["Amount"][0], shown["Proposed by"][0], shown["Reason"][0]) == (
        "$60.00",
        "fay@company.test",
        "service never worked",
    )
    at.button(key="appr_approve").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"$60.00 refunded on order {order.public_id}" in at.success[0].value
    with sqlite_db.session() as s:
        assert lifecycle._get_order(s, order.public_id).status is OrderStatus.PARTIALLY_REFUNDED


def test_a_manual_completion_is_sent_for_approval_and_completed_when_approved(sqlite_db, monkeypatch, tmp_path):
    order = orders_app.seed(sqlite_db, method="airwallex", paid_at_gateway=False)
    as_person(monkeypatch, tmp_path, sqlite_db, "finance", "fay@company.test")
    at = open_page("orders", {"order": order.public_id})
    orders_app.run_action(
        at, "Complete manually with provider reference", reason="bank statement", manual_reference="AWX-778812"
    )
    assert not at.error, [e.value for e in at.error]
    assert any("The manual completion of order" in i.value for i in at.info), [i.value for i in at.info]
    assert orders_app.metrics(at)["Status"] == "pending"

    as_person(monkeypatch, tmp_path, sqlite_db, "finance", "fay@company.test")
    at = open_page("approvals")
    at.selectbox(key="appr_kind").set_value("completion").run()
    assert list(at.dataframe[0].value["What"]) == ["manual completion, reference AWX-778812"]
    at.button(key="appr_approve").click().run()
    assert "Nobody approves their own proposal" in at.error[0].value

    as_person(monkeypatch, tmp_path, sqlite_db, "admin", "ada@company.test")
    at = open_page("approvals")
    at.button(key="appr_approve").click().run()
    assert not at.error, [e.value for e in at.error]
    assert f"order {order.public_id} is completed" in at.success[0].value
    with sqlite_db.session() as s:
        paid = lifecycle._get_order(s, order.public_id)
    assert (paid.status, paid.provider_ref, paid.completed_by) == (OrderStatus.PAID, "AWX-778812", "ada@company.test")
