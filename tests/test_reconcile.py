import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from billing_core.core.errors import GatewayError, PermissionDenied, StateConflict
from billing_core.core.exports import to_csv_bytes
from billing_core.core.models import GatewayCheck, Invoice, LedgerEntry, Order, OrderStatus, SyncCursor, utcnow
from billing_core.orders import lifecycle as orders
from billing_core.payments.registry import gateway_for
from billing_core.payments.simulated import Outcome as Pay
from billing_core.payments.simulated import SimulatedGateway
from billing_core.reconcile.stuck import (
    Cursor,
    Outcome,
    ReconcileReport,
    ReconcileRow,
    iter_stuck,
    reconcile,
    reconcile_from_events,
    select_stuck,
)
from tests.conftest import pay_at_stripe
from tests.helpers import SUPPORT, make_customer


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def window():
    now = utcnow()
    return {"since": now - timedelta(days=1), "until": now + timedelta(minutes=5)}


def open_orders(db, admin, pricing, gateway, n, *, method="stripe", email="zoe@example.com", **created):
    """n pending orders, each with a payment opened at ``gateway``."""
    with db.session() as s:
        customer = make_customer(s, admin, email=email)
        made = []
        for _ in range(n):
            order = orders.create_order(
                s, admin, customer_id=customer.id, amount="100", method=method, pricing=pricing, **created
            )
            payment = gateway.create_payment(orders._payment_request(s, order))
            made.append(orders.attach_payment(s, admin, order.id, payment))
        return made


@pytest.fixture
def sim(db):
    return SimulatedGateway(db)


class RefusingGateway:
    """The real gateway, except that it cannot be reached for one payment."""

    def __init__(self, inner, broken_ref):
        self.inner, self.broken_ref, self.name = inner, broken_ref, inner.name

    def fetch_status(self, ref):
        if ref == self.broken_ref:
            raise GatewayError("The gateway could not be reached (test); nothing was changed. Try again.")
        return self.inner.fetch_status(ref)


# --- over the simulated gateway ---------------------------------------------------------------


def test_each_outcome_is_reported_per_order(db, admin, support, settings, pricing, sim):
    paid, declined, waiting, short, unreachable = open_orders(db, admin, pricing, sim, 5)
    sim.settle(paid.provider_ref, Pay.SUCCEED)
    sim.settle(declined.provider_ref, Pay.DECLINE)
    sim.settle(short.provider_ref, Pay.SUCCEED, amount_cents=short.total_cents - 100)

    def gateways(method, settings, database):
        return RefusingGateway(gateway_for(method, settings, database), unreachable.provider_ref)

    report = reconcile(db, support, settings, **window(), gateway_for=gateways)

    outcomes = {row.order: row.outcome for row in report.rows}
    assert outcomes == {
        paid.public_id: Outcome.COMPLETED,
        declined.public_id: Outcome.UNPAID,
        waiting.public_id: Outcome.UNPAID,
        short.public_id: Outcome.MISMATCH,
        unreachable.public_id: Outcome.ERROR,
    }
    rows = {row.order: row for row in report.rows}
    assert "could not be reached" in rows[unreachable.public_id].message
    assert "but the order's total is $105.50" in rows[short.public_id].message
    assert rows[declined.public_id].gateway_state == "failed"
    assert report.counts[Outcome.UNPAID] == 2
    with db.session() as s:
        assert s.get(Order, paid.id).status is OrderStatus.PAID
        assert s.get(Order, paid.id).completion_reason == "bulk reconcile"
        assert s.get(Order, declined.id).status is OrderStatus.PENDING  # reported, left alone
        assert count(s, GatewayCheck) == 4  # every answer the gateway gave is kept
        assert count(s, LedgerEntry) == 1


def test_a_second_run_completes_nothing_twice(db, admin, support, settings, pricing, sim):
    made = open_orders(db, admin, pricing, sim, 3)
    for order in made:
        sim.settle(order.provider_ref, Pay.SUCCEED)
    first = reconcile(db, support, settings, **window())
    second = reconcile(db, support, settings, **window())
    assert first.counts[Outcome.COMPLETED] == 3
    assert second.rows == [] and second.total == 0
    with db.session() as s:
        assert count(s, LedgerEntry) == 3
        assert count(s, Invoice) == 3


def test_stopping_part_way_then_running_again_finishes_the_rest(db, admin, support, settings, pricing, sim):
    made = open_orders(db, admin, pricing, sim, 5)
    for order in made:
        sim.settle(order.provider_ref, Pay.SUCCEED)
    asked = []

    def stop_after_two():
        asked.append(True)
        return len(asked) > 2

    first = reconcile(db, support, settings, **window(), should_stop=stop_after_two)
    assert first.stopped and len(first.rows) == 2
    assert "stopped before the end" in first.summary()
    rest = reconcile(db, support, settings, **window())
    assert not rest.stopped
    assert {r.order for r in first.rows} | {r.order for r in rest.rows} == {o.public_id for o in made}
    assert rest.counts[Outcome.COMPLETED] == 3
    with db.session() as s:
        assert count(s, LedgerEntry) == 5


def test_progress_reports_done_and_total(db, admin, support, settings, pricing, sim):
    open_orders(db, admin, pricing, sim, 3)
    seen = []
    reconcile(db, support, settings, **window(), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_analyst_may_not_reconcile(db, analyst, settings):
    with pytest.raises(PermissionDenied):
        reconcile(db, analyst, settings, **window())


def test_selection_is_range_method_and_reference_bound_oldest_first(db, session, admin, pricing, sim):
    now = utcnow()
    old = open_orders(db, admin, pricing, sim, 1, now=now - timedelta(days=3), email="old@example.com")
    first = open_orders(db, admin, pricing, sim, 2, now=now - timedelta(hours=2), email="a@example.com")
    airwallex = open_orders(db, admin, pricing, sim, 1, method="airwallex", email="b@example.com")
    customer = make_customer(session, admin, email="c@example.com")
    orders.create_order(session, admin, customer_id=customer.id, amount="20", method="stripe", pricing=pricing)
    sandbox = make_customer(session, admin, email="s@example.com", sandbox=True)
    toy = orders.create_order(session, admin, customer_id=sandbox.id, amount="20", method="stripe", pricing=pricing)
    orders.attach_payment(session, admin, toy.id, sim.create_payment(orders._payment_request(session, toy)))

    stuck = select_stuck(session, SUPPORT, **window())
    assert [s.public_id for s in stuck] == [o.public_id for o in first + airwallex]
    only_stripe = select_stuck(session, SUPPORT, **window(), methods=["stripe"])
    assert [s.public_id for s in only_stripe] == [o.public_id for o in first]
    assert old[0].public_id not in {s.public_id for s in stuck}
    paged = list(iter_stuck(db, SUPPORT, since=now - timedelta(days=5), until=now + timedelta(minutes=5), batch=2))
    assert [s.public_id for s in paged] == [o.public_id for o in old + first + airwallex]


def test_expired_orders_are_checked_and_completed_too(db, admin, support, settings, pricing, sim):
    (order,) = open_orders(db, admin, pricing, sim, 1)
    with db.session() as s:
        orders_row = s.get(Order, order.id)
        orders_row.status = OrderStatus.EXPIRED
        s.commit()
    sim.settle(order.provider_ref, Pay.SUCCEED)
    report = reconcile(db, support, settings, **window())
    assert [(r.status_before, r.outcome) for r in report.rows] == [("expired", Outcome.COMPLETED)]


def test_a_method_without_an_api_is_reported_not_fatal(db, admin, support, pricing, sim, settings):
    from dataclasses import replace

    open_orders(db, admin, pricing, sim, 1, method="airwallex")
    with_stripe = replace(settings, stripe_api_key="sk_test_x", stripe_api_base="http://127.0.0.1:9")
    report = reconcile(db, support, with_stripe, **window())
    assert report.rows[0].outcome is Outcome.ERROR
    assert "settlement file" in report.rows[0].message


def test_reconcile_racing_manual_completion_credits_each_order_once(db, admin, support, finance, settings, pricing):
    sim = SimulatedGateway(db)
    made = open_orders(db, admin, pricing, sim, 12)
    for order in made:
        sim.settle(order.provider_ref, Pay.SUCCEED)
    start = threading.Barrier(2)
    results = {}

    def bulk():
        start.wait()
        results["report"] = reconcile(db, support, settings, **window())

    def by_hand():
        start.wait()
        won = 0
        with db.session() as s:
            for order in reversed(made):
                try:
                    orders.complete_order(
                        s, finance, order.id, settings=settings, reason="ticket 42", manual_reference="bank-ref"
                    )
                    won += 1
                except StateConflict:
                    pass
        results["by_hand"] = won

    threads = [threading.Thread(target=bulk), threading.Thread(target=by_hand)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    report = results["report"]
    assert report.counts[Outcome.ERROR] == 0
    assert report.counts[Outcome.COMPLETED] + results["by_hand"] == 12
    assert all(r.outcome in (Outcome.COMPLETED, Outcome.ALREADY) for r in report.rows)
    with db.session() as s:
        assert count(s, LedgerEntry) == 12
        assert count(s, Invoice) == 12
        assert count(s, Order, Order.status == OrderStatus.PAID) == 12


# --- CSV --------------------------------------------------------------------------------------------


def test_report_csv_defuses_formulas(db):
    row = ReconcileRow("ord_1", "stripe", "pending", "failed", 10550, "USD", Outcome.ERROR, '=HYPERLINK("x")')
    text = ReconcileReport(total=1, rows=[row]).to_csv().decode("utf-8")
    assert text.splitlines()[0].startswith("order,method,status before")
    assert "'=HYPERLINK" in text
    assert ",105.50," in text


@pytest.mark.parametrize("cell", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_formula_looking_text_gets_an_apostrophe(cell):
    assert to_csv_bytes([{"a": cell}]).decode("utf-8").splitlines()[1].lstrip('"').startswith("'")


def test_numbers_and_plain_text_are_written_as_they_are():
    data = to_csv_bytes([{"n": -5, "t": "Zoë", "e": None}])
    assert data == "n,t,e\r\n-5,Zoë,\r\n".encode()


# --- from Stripe events (localstripe) ---------------------------------------------------------------


def test_events_complete_paid_orders_and_the_cursor_skips_them_next_time(
    db, admin, support, settings, pricing, stripe_gateway, localstripe_url
):
    made = open_orders(db, admin, pricing, stripe_gateway, 4)
    for order in made[:2]:
        pay_at_stripe(localstripe_url, order.provider_ref)

    first = reconcile_from_events(db, support, settings, stripe_gateway)
    ours = {r.order: r.outcome for r in first.rows if r.order in {o.public_id for o in made}}
    assert ours == {made[0].public_id: Outcome.COMPLETED, made[1].public_id: Outcome.COMPLETED}
    with db.session() as s:
        assert s.get(SyncCursor, "stripe-events") is not None
        assert s.get(Order, made[2].id).status is OrderStatus.PENDING

    again = reconcile_from_events(db, support, settings, stripe_gateway)
    assert again.rows == []

    pay_at_stripe(localstripe_url, made[3].provider_ref)
    third = reconcile_from_events(db, support, settings, stripe_gateway)
    assert [(r.order, r.outcome) for r in third.rows] == [(made[3].public_id, Outcome.COMPLETED)]
    with db.session() as s:
        assert count(s, LedgerEntry) == 3
        assert count(s, Invoice) == 3


def test_an_order_already_completed_by_hand_is_reported_as_such(
    db, admin, support, finance, settings, pricing, stripe_gateway, localstripe_url
):
    (order,) = open_orders(db, admin, pricing, stripe_gateway, 1)
    pay_at_stripe(localstripe_url, order.provider_ref)
    with db.session() as s:
        orders.complete_order(s, finance, order.id, settings=settings, reason="phone", manual_reference="x")
    report = reconcile_from_events(db, support, settings, stripe_gateway)
    assert [r.outcome for r in report.rows if r.order == order.public_id] == [Outcome.ALREADY]


def test_stripe_reconcile_by_range_uses_the_real_payment_status(
    db, admin, support, settings, pricing, stripe_gateway, localstripe_url
):
    from dataclasses import replace

    made = open_orders(db, admin, pricing, stripe_gateway, 2)
    pay_at_stripe(localstripe_url, made[0].provider_ref)
    live = replace(settings, stripe_api_key="sk_test_localstripe", stripe_api_base=localstripe_url)
    report = reconcile(db, support, live, **window())
    assert [r.outcome for r in report.rows] == [Outcome.COMPLETED, Outcome.UNPAID]


def test_cursor_keeps_the_ids_of_its_last_second_and_fits_the_column():
    cursor = Cursor(100, ("evt_a",))
    assert Cursor.decode(cursor.encode()) == cursor
    crowded = Cursor(100, tuple(f"evt_{i:024d}" for i in range(20)))
    assert len(crowded.encode()) <= 255
    assert Cursor.decode(crowded.encode()).ids[-1] == crowded.ids[-1]


def test_command_line_reconcile_prints_a_summary_and_writes_the_csv(
    db, admin, settings, pricing, sim, monkeypatch, tmp_path
):
    from argparse import Namespace

    from billing_core.cli.reconcile import cli_reconcile

    (order,) = open_orders(db, admin, pricing, sim, 1)
    sim.settle(order.provider_ref, Pay.SUCCEED)
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    lines = []
    since = (utcnow() - timedelta(days=1)).date().isoformat()
    args = Namespace(since=since, until=None, method=["stripe"], events=False, csv=str(tmp_path / "r.csv"))
    assert cli_reconcile(args, admin, out=lines.append) == 0
    assert "1 completed" in lines[-2]
    assert order.public_id in (tmp_path / "r.csv").read_text()
