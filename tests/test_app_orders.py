"""The Orders page through Streamlit's AppTest: find, open, check, complete, and the bulk tabs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from billing_core.access.roles import Actor, Role
from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.core.errors import PermissionDenied
from billing_core.core.models import LedgerEntry, Order, OrderStatus
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.payments.simulated import Outcome, SimulatedGateway
from billing_core.pricing.catalog import load_pricing
from tests.helpers import make_customer, make_order

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
SETTLEMENTS = Path(__file__).resolve().parent / "fixtures" / "settlements"
PRICING = load_pricing()
ADMIN = Actor("ada@company.test", Role.ADMIN, "Ada Admin")


@pytest.fixture
def app_env(monkeypatch, tmp_path):
    def configure(database_url: str, role: str = "support") -> None:
        for var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "BILLING_PRICING_FILE", "BILLING_LOCAL_EMAIL"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("BILLING_LOCAL_MODE", "1")
        monkeypatch.setenv("BILLING_LOCAL_ROLE", role)

    return configure


@pytest.fixture
def sqlite_db(sqlite_template, tmp_path):
    path = tmp_path / "app.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def seed(db: Database, email="ana@example.com", amount="500", method="stripe", paid_at_gateway=True) -> Order:
    """A real (non-sandbox) order; with ``paid_at_gateway`` the customer paid but we never heard."""
    with db.session() as s:
        order = make_order(s, ADMIN, make_customer(s, ADMIN, email=email), PRICING, amount=amount, method=method)
        if paid_at_gateway:
            gateway = SimulatedGateway(db)
            payment = gateway.create_payment(orders._payment_request(s, order))
            orders.attach_payment(s, ADMIN, order.public_id, payment)
            gateway.settle(payment.ref, Outcome.SUCCEED)
        return order


def start(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def actions_offered(at: AppTest) -> list[str]:
    found = [s for s in at.selectbox if s.key == "order_action"]
    return list(found[0].options) if found else []


def run_action(at: AppTest, name: str, reason: str = "customer wrote in", **fields) -> AppTest:
    at.selectbox(key="order_action").set_value(name).run()
    for key, value in fields.items():
        at.text_input(key=key).input(value)
    if reason:
        at.text_input(key="action_reason").input(reason)
    at.checkbox(key="action_confirm").check().run()
    return at.button(key="run_action").click().run()


def ledger_entries(db: Database, order: Order) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.order_id == order.id))


def status_of(db: Database, order: Order) -> Order:
    with db.session() as s:
        return orders._get_order(s, order.public_id)


# --- lookup ------------------------------------------------------------------------------------------


def test_search_by_email_finds_the_order(app_env, sqlite_db):
    order = seed(sqlite_db)
    seed(sqlite_db, email="bob@example.com")
    app_env(sqlite_db.url)
    at = start()
    at.text_input(key="q").input("ANA@example.com").run()

    table = at.dataframe[0].value
    assert list(table["Order"]) == [order.public_id]
    assert list(table["Total"]) == ["$527.50"]
    assert list(table["Status"]) == ["pending"]
    assert any("Searched as: **email**" in c.value and "1 matching" in c.value for c in at.caption)
    assert not at.error


def test_a_name_search_shows_the_customers_first_then_their_orders(app_env, sqlite_db):
    order = seed(sqlite_db)
    app_env(sqlite_db.url)
    at = start()
    at.text_input(key="q").input("müller").run()
    assert not at.exception and not at.error
    [first] = [c.value for c in at.caption if "matched on" in c.value]
    assert "/customers?customer=cus_" in first and "Zoë Müller" in first and "whole word" in first
    assert list(at.dataframe[0].value["Order"]) == [order.public_id]


@pytest.mark.parametrize(
    "hostile",
    [
        "'; DROP TABLE orders; --",
        "<script>alert(1)</script>",
        "**bold** [link](javascript:alert(1)) $x^2$ :red[alarm]",
        "%_\\\x00\u202e",
    ],
)
def test_a_hostile_search_is_only_text(app_env, sqlite_db, hostile):
    seed(sqlite_db)
    app_env(sqlite_db.url)
    at = start()
    at.text_input(key="q").input(hostile).run()
    assert not at.exception, at.exception
    assert not at.error
    assert at.dataframe[0].value.empty


def test_an_overlong_search_is_cut_to_the_box_and_a_bad_amount_is_explained(app_env, sqlite_db):
    app_env(sqlite_db.url)
    at = start()
    at.text_input(key="f_min").input("abc").run()
    [error] = at.error
    assert "is not an amount" in error.value
    at.text_input(key="f_min").input("").run()
    at.text_input(key="q").set_value("x" * 400).run()  # past max_chars, as a client other than the browser can
    assert at.text_input(key="q").value == "x" * 320  # Streamlit cuts it to max_chars on the server too
    assert not at.exception


def test_an_order_link_opens_its_detail(app_env, sqlite_db):
    order = seed(sqlite_db)
    app_env(sqlite_db.url)
    at = start({"order": order.public_id})

    assert f"Order {order.public_id}" in [h.value for h in at.subheader]
    shown = metrics(at)
    assert (shown["Status"], shown["Total charged"], shown["Credits"], shown["Invoice"]) == (
        "pending",
        "$527.50",
        "500",
        "—",
    )
    assert list(at.dataframe[0].value["Order"]) == [order.public_id]  # the search box took the id
    assert at.query_params["order"] == order.public_id


def test_an_unknown_order_link_says_no_such_order(app_env, sqlite_db):
    app_env(sqlite_db.url)
    at = start({"order": "ord_0000000000000000"})
    assert any(e.value.startswith("No such order") for e in at.error)
    at.button(key="close_order").click().run()
    assert "order" not in at.query_params
    assert not at.error


# --- the stuck order -----------------------------------------------------------------------------


def test_support_checks_with_the_gateway_and_completes_once(app_env, db):
    order = seed(db)
    app_env(db.url, role="support")
    at = start({"order": order.public_id})

    at.button(key="check_gateway").click().run()
    assert any("The gateway says succeeded" in s.value for s in at.success)
    assert [w.value for w in at.warning if "gateway" in w.value] == [
        "Paid at the gateway but pending here\\: complete the order\\."
    ]
    [truth] = [d.value.set_index("") for d in at.dataframe if "At the gateway" in d.value.columns]
    assert truth.loc["Status", "At the gateway"] == "succeeded"
    assert truth.loc["Status", "Here"] == "pending"

    assert at.button(key="run_action").disabled  # not before the confirmation
    run_action(at, "Complete from gateway", reason="customer paid, no credits")

    assert not at.error, [e.value for e in at.error]
    shown = metrics(at)
    assert (shown["Status"], shown["Credits balance"]) == ("paid", "500")
    assert shown["Invoice"].endswith("000001")
    assert ledger_entries(db, order) == 1
    assert status_of(db, order).status is OrderStatus.PAID
    assert "Complete from gateway" not in actions_offered(at)  # nothing left to complete
    timeline = at.dataframe[-1].value
    assert list(timeline["What"])[-2:] == ["Completed", "Invoice issued"]
    assert "customer paid, no credits" in list(timeline["Reason"])


def test_manual_completion_is_for_finance_not_support(app_env, sqlite_db):
    order = seed(sqlite_db, method="airwallex", paid_at_gateway=False)
    app_env(sqlite_db.url, role="support")
    at = start({"order": order.public_id})
    assert "Complete manually with provider reference" not in actions_offered(at)
    assert any("complete manually with provider reference" in c.value for c in at.caption)

    app_env(sqlite_db.url, role="finance")
    at = start({"order": order.public_id})
    assert "Complete manually with provider reference" in actions_offered(at)
    run_action(at, "Complete manually with provider reference", reason="bank statement", manual_reference="AWX-778812")

    assert not at.error, [e.value for e in at.error]
    assert metrics(at)["Status"] == "paid"
    paid = status_of(sqlite_db, order)
    assert (paid.status, paid.provider_ref, paid.completed_by) == (OrderStatus.PAID, "AWX-778812", "local@localhost")
    assert ledger_entries(sqlite_db, order) == 1


def test_refund_is_not_offered_to_support_and_billing_core_refuses_it(app_env, sqlite_db):
    order = seed(sqlite_db)
    settings = Settings(database_url=sqlite_db.url)
    with sqlite_db.session() as s:
        orders.complete_order(s, ADMIN, order.public_id, settings=settings, reason="seed", manual_reference="x1")
    app_env(sqlite_db.url, role="support")
    at = start({"order": order.public_id})
    assert "Refund" not in actions_offered(at)
    assert any("refund" in c.value for c in at.caption if c.value.startswith("Not for the support role"))
    with sqlite_db.session() as s, pytest.raises(PermissionDenied):
        refunds.refund_order(
            s, Actor("local@localhost", Role.SUPPORT), order.public_id, SimulatedGateway(sqlite_db),
            settings=settings, reason="asked",
        )  # fmt: skip


def test_finance_sees_the_refund_plan_and_refunds_part(app_env, sqlite_db):
    order = seed(sqlite_db, amount="100")
    with sqlite_db.session() as s:
        payment = SimulatedGateway(sqlite_db).fetch_status(orders._get_order(s, order.public_id).provider_ref)
        orders.complete_order(
            s, ADMIN, order.public_id, settings=Settings(database_url=sqlite_db.url), reason="seed", payment=payment
        )
    app_env(sqlite_db.url, role="finance")
    at = start({"order": order.public_id})
    at.selectbox(key="order_action").set_value("Refund").run()
    at.text_input(key="refund_amount").input("21.10").run()
    assert any("takes back 20 credits" in i.value for i in at.info)
    run_action(at, "Refund", reason="goodwill")
    assert not at.error, [e.value for e in at.error]
    shown = metrics(at)
    assert (shown["Status"], shown["Credits balance"]) == ("partially_refunded", "80")


def test_the_refund_form_remembers_what_it_showed_per_order(app_env, sqlite_db):
    """The view a refund is keyed on belongs to one order: what another order's form showed never stands
    for it (else a new refund reads as "already done", or a repeat of one as new)."""
    settings = Settings(database_url=sqlite_db.url)
    finance = Actor("fay@company.test", Role.FINANCE)
    first, second = seed(sqlite_db, amount="100"), seed(sqlite_db, email="bo@example.com", amount="100")
    gateway = SimulatedGateway(sqlite_db)
    with sqlite_db.session() as s:
        for order in (first, second):
            payment = gateway.fetch_status(orders._get_order(s, order.public_id).provider_ref)
            orders.complete_order(s, ADMIN, order.public_id, settings=settings, reason="seed", payment=payment)
        refunds.refund_order(  # $10 of the second order refunded by someone who saw nothing refunded
            s, finance, second.public_id, gateway, settings=settings, reason="r", amount="10", seen_cents=0
        )
    app_env(sqlite_db.url, role="finance")
    at = start({"order": first.public_id})
    at.selectbox(key="order_action").set_value("Refund").run()  # the first order's form: nothing refunded
    at.query_params["order"] = second.public_id
    at.run()
    run_action(at, "Refund", reason="another $10", refund_amount="10")
    assert not at.error, [e.value for e in at.error]
    assert not any("Already done" in s.value for s in at.success), [s.value for s in at.success]
    with sqlite_db.session() as s:
        assert gateway.fetch_status(orders._get_order(s, second.public_id).provider_ref).refunded_cents == 2000


def test_a_refusal_by_the_gateway_is_a_sentence_and_the_timeline_shows_every_refund_with_who_and_why(
    app_env, sqlite_db
):
    from billing_core.core.db import transaction
    from billing_core.core.models import SimulatedPayment

    order = seed(sqlite_db, amount="100")
    settings = Settings(database_url=sqlite_db.url)
    with sqlite_db.session() as s:
        ref = orders._get_order(s, order.public_id).provider_ref
        orders.complete_order(
            s,
            ADMIN,
            order.public_id,
            settings=settings,
            reason="seed",
            payment=SimulatedGateway(sqlite_db).fetch_status(ref),
        )
    app_env(sqlite_db.url, role="finance")
    at = start({"order": order.public_id})
    run_action(at, "Refund", reason="goodwill", refund_amount="10")
    assert not at.error, [e.value for e in at.error]
    with sqlite_db.session() as s, transaction(s):  # then most of it is refunded in the gateway's dashboard
        s.get(SimulatedPayment, ref).refunded_cents = 10000
    run_action(at, "Refund", reason="second ask", refund_amount="20")
    (error,) = [e.value.replace("\\", "") for e in at.error]
    assert error.startswith("The gateway refused the refund: ") and error.endswith("Nothing was refunded.")
    assert metrics(at)["Status"] == "partially_refunded"
    timeline = at.dataframe[-1].value
    rows = {(w, r): who for w, r, who in zip(timeline["What"], timeline["Reason"], timeline["Who"], strict=True)}
    assert rows[("Refund requested", "goodwill")] == rows[("Refunded", "goodwill")] == "local@localhost (finance)"
    assert rows[("Refund requested", "second ask")] == rows[("Refund failed", "second ask")]
    (failed,) = [d for w, d in zip(timeline["What"], timeline["Detail"], strict=True) if w == "Refund failed"]
    assert "$20.00 not refunded: The gateway refused the refund" in failed


def test_a_pending_refund_is_shown_with_what_to_do_and_the_button_finishes_it(app_env, sqlite_db):
    from billing_core.core.errors import GatewayUnreachable

    class AnswerLost(SimulatedGateway):
        def refund(self, *args):
            super().refund(*args)
            raise GatewayUnreachable("The gateway did not answer in time.")

    order = seed(sqlite_db, amount="100")
    settings = Settings(database_url=sqlite_db.url)
    finance = Actor("fay@company.test", Role.FINANCE)
    with sqlite_db.session() as s:
        payment = SimulatedGateway(sqlite_db).fetch_status(orders._get_order(s, order.public_id).provider_ref)
        orders.complete_order(s, ADMIN, order.public_id, settings=settings, reason="seed", payment=payment)
        refunds.refund_order(
            s, finance, order.public_id, AnswerLost(sqlite_db), settings=settings, reason="goodwill", amount="15"
        )
    app_env(sqlite_db.url, role="support")
    at = start({"order": order.public_id})
    (warning,) = [w.value.replace("\\", "").replace("\u2060", "") for w in at.warning if "Refund pending" in w.value]
    assert "$15.00 requested by fay@company.test" in warning and "refunds reconcile" in warning
    assert metrics(at)["Status"] == "paid"
    at.button(key="finish_refunds").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("1 succeeded" in s.value for s in at.success), [s.value for s in at.success]
    assert metrics(at)["Status"] == "partially_refunded"
    assert not [w for w in at.warning if "Refund pending" in w.value]


def test_an_analyst_does_not_get_the_orders_page(app_env, sqlite_db):
    app_env(sqlite_db.url, role="analyst")
    at = AppTest.from_file(ROOT / "pages" / "orders.py", default_timeout=30).run()
    assert not at.exception
    assert not [w for w in at.text_input if w.key == "q"]
    assert [t.value for t in at.title] == ["Top-up simulator"]


# --- bulk tabs ---------------------------------------------------------------------------------------


def test_bulk_reconcile_completes_a_paid_stuck_order_and_is_safe_to_rerun(app_env, sqlite_db):
    order = seed(sqlite_db)
    seed(sqlite_db, email="unpaid@example.com", paid_at_gateway=False)
    app_env(sqlite_db.url, role="support")
    at = start()
    assert metrics(at)["Stuck orders in range"] == "1"  # the unpaid one has no payment to ask about

    at.button(key="dry_run_reconcile").click().run()  # Apply waits for a dry run of the range
    at.checkbox(key="reconcile_confirm").check().run()
    at.button(key="run_reconcile").click().run()

    assert not at.error, [e.value for e in at.error]
    counts = dict(zip(at.dataframe[1].value["Outcome"], at.dataframe[1].value["Orders"], strict=True))
    assert (counts["completed"], counts["still unpaid"], counts["error"]) == (1, 0, 0)
    assert list(at.dataframe[2].value["order"]) == [order.public_id]
    assert status_of(sqlite_db, order).status is OrderStatus.PAID
    assert metrics(at)["Stuck orders in range"] == "0"
    assert at.button(key="run_reconcile").disabled
    assert ledger_entries(sqlite_db, order) == 1


def test_settlement_preview_shows_not_found_and_malformed_lines(app_env, sqlite_db):
    app_env(sqlite_db.url, role="finance")
    at = start()
    data = (SETTLEMENTS / "airwallex_broken_rows.csv").read_bytes()
    at.file_uploader(key="settlement_file").set_value(("airwallex_broken_rows.csv", data, "text/csv")).run()

    assert not at.error, [e.value for e in at.error]
    lines = at.dataframe[-1].value
    verdicts = dict(zip(lines["line"], lines["verdict"], strict=True))
    assert "malformed" in verdicts.values()
    assert "not found" in verdicts.values()
    assert verdicts[2] == "not found"
    assert all(reason for reason in lines[lines["verdict"] == "malformed"]["reason"])
    assert at.button(key="apply_settlement").disabled


def test_settlement_preview_says_which_report_it_recognised(app_env, sqlite_db):
    app_env(sqlite_db.url, role="finance")
    at = start()
    name = "airwallex_settlement_report_20261120.zip"
    at.file_uploader(key="settlement_file").set_value(
        (name, (SETTLEMENTS / name).read_bytes(), "application/zip")
    ).run()

    assert not at.error, [e.value for e in at.error]
    recognised = [c.value.replace("\\", "") for c in at.caption if c.value.startswith("Recognised: ")]  # unescaped
    assert recognised and recognised[0].startswith(
        "Recognised: Airwallex settlement details · comma-separated · settlement_report_details_stl_20261120_hk_01.csv"
    )
    assert not [r for r in at.radio if r.key == "settlement_kind"]  # the file says each row's kind
    assert any("with no refund in our books" in w.value for w in at.warning)
    assert list(at.dataframe[-1].value["kind"]) == ["PAYMENT", "PAYMENT", "REFUND", "CHARGEBACK"]


def test_a_report_without_a_kind_column_completes_nothing_until_the_kind_is_chosen(app_env, sqlite_db):
    app_env(sqlite_db.url, role="finance")
    at = start()
    data = b"Transaction ID,Merchant Order ID,Currency,Amount\ntxn_1,ord_ffffffffffffffff,USD,20.60\n"
    at.file_uploader(key="settlement_file").set_value(("plain.csv", data, "text/csv")).run()

    assert not at.error, [e.value for e in at.error]
    assert any("kind not stated" in c.value for c in at.caption)
    assert any("Nothing in this file will complete an order" in w.value for w in at.warning)
    assert list(at.dataframe[-1].value["verdict"]) == ["kind not stated"]

    at.radio(key="settlement_kind").set_value("Payments").run()

    assert not any("Nothing in this file will complete an order" in w.value for w in at.warning)
    assert any("rows taken as payments" in c.value for c in at.caption)
    assert list(at.dataframe[-1].value["verdict"]) == ["not found"]

    other = data.replace(b"txn_1", b"txn_2")
    at.file_uploader(key="settlement_file").set_value(("other.csv", other, "text/csv")).run()

    assert at.radio(key="settlement_kind").value == "Not said yet"  # what was said of one file is not of the next
    assert list(at.dataframe[-1].value["verdict"]) == ["kind not stated"]


def test_a_report_is_read_once_not_on_every_rerun_of_the_tab(app_env, sqlite_db, monkeypatch):
    from billing_core.reconcile import settlement

    reads = []
    real = settlement.parse_settlement
    monkeypatch.setattr(settlement, "parse_settlement", lambda *a, **k: reads.append(a[1]) or real(*a, **k))
    app_env(sqlite_db.url, role="finance")
    at = start()
    data = b"Transaction ID,Merchant Order ID,Currency,Amount,Status\ntxn_once,ord_0000000000000001,USD,20.60,SETTLED\n"
    at.file_uploader(key="settlement_file").set_value(("once.csv", data, "text/csv")).run()
    at.checkbox[-1].check().run()

    assert not at.error, [e.value for e in at.error]
    assert reads == ["once.csv"]


def test_support_gets_no_settlement_tab(app_env, sqlite_db):
    app_env(sqlite_db.url, role="support")
    at = start()
    assert [t.label for t in at.tabs] == [":material/search: Find an order", ":material/sync: Bulk reconcile"]
