"""Support's queue in billing_core: a list checked with the gateway, the stuck view (unpaid here, paid at
the gateway when last asked), the reconcile dry run, and the one order a pasted id or reference names."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from billing_core.core.models import AuditEvent, GatewayCheck, LedgerEntry, Order, OrderStatus, utcnow
from billing_core.orders import gateway_actions as payment_ops
from billing_core.orders import lifecycle as orders
from billing_core.orders import search
from billing_core.orders.search import OrderQuery
from billing_core.payments.simulated import Outcome as Pay
from billing_core.payments.simulated import SimulatedGateway
from billing_core.reconcile import stuck as rc
from billing_core.reconcile.stuck import Outcome, reconcile, stuck_paid_page
from tests.helpers import make_customer


@pytest.fixture
def sim(db):
    return SimulatedGateway(db)


def open_orders(db, admin, pricing, gateway, n, *, email="zoe@example.com", method="stripe"):
    """n pending orders of one customer, each with a payment opened at ``gateway``, oldest first."""
    with db.session() as s:
        customer = make_customer(s, admin, email=email)
        made = []
        for _ in range(n):
            order = orders.create_order(s, admin, customer_id=customer.id, amount="100", method=method, pricing=pricing)
            payment = gateway.create_payment(orders._payment_request(s, order))
            made.append(orders.attach_payment(s, admin, order.id, payment))
        return made


def window():
    now = utcnow()
    return {"since": now - timedelta(days=1), "until": now + timedelta(minutes=5)}


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


# --- check these with the gateway -----------------------------------------------------------------


def test_checking_a_list_keeps_each_answer_on_its_order(db, admin, support, settings, pricing, sim):
    paid, waiting = open_orders(db, admin, pricing, sim, 2)
    sim.settle(paid.provider_ref, Pay.SUCCEED)

    results = payment_ops.check_payments(db, support, settings, [paid.public_id, waiting.public_id])

    assert [(r.public_id, r.state, r.problem) for r in results] == [
        (paid.public_id, "succeeded", ""),
        (waiting.public_id, "pending", ""),
    ]
    with db.session() as s:
        assert s.get(Order, paid.id).gateway_state == "succeeded"
        assert s.get(Order, waiting.id).gateway_state == "pending"
        assert s.get(Order, paid.id).gateway_checked_at is not None
        assert count(s, GatewayCheck) == 2
        assert count(s, AuditEvent, AuditEvent.action == "order.check_payment") == 2
        assert s.get(Order, paid.id).status is OrderStatus.PENDING  # checked, not completed


def test_an_order_that_cannot_be_asked_is_its_own_result_and_the_others_are_checked(
    db, admin, support, settings, pricing, sim
):
    (asked,) = open_orders(db, admin, pricing, sim, 1)
    with db.session() as s:
        customer = make_customer(s, admin, email="nopay@example.com")
        unpaid = orders.create_order(s, admin, customer_id=customer.id, amount="20", method="stripe", pricing=pricing)

    results = payment_ops.check_payments(db, support, settings, [unpaid.public_id, asked.public_id])

    assert "no payment at the gateway yet" in results[0].problem
    assert results[1].state == "pending" and not results[1].problem
    summary = payment_ops.checks_summary(results)
    assert "1 pending" in summary and "1 could not be asked" in summary


def test_a_list_longer_than_a_page_is_refused_before_any_call(db, support, settings):
    with pytest.raises(Exception, match="at most"):
        payment_ops.check_payments(db, support, settings, ["ord_x"] * (payment_ops.MAX_CHECKS + 1))


# --- the stuck view -------------------------------------------------------------------------------


def test_stuck_lists_unpaid_orders_the_gateway_last_saw_paid_oldest_first(db, admin, support, settings, pricing, sim):
    older, newer, unpaid, completed = open_orders(db, admin, pricing, sim, 4)
    for order in (older, newer, completed):
        sim.settle(order.provider_ref, Pay.SUCCEED)
    with db.session() as s:
        s.execute(update(Order).where(Order.id == older.id).values(created_at=older.created_at - timedelta(days=420)))
        s.execute(update(Order).where(Order.id == newer.id).values(status=OrderStatus.EXPIRED))
        s.commit()
    ids = [o.public_id for o in (older, newer, unpaid, completed)]
    payment_ops.check_payments(db, support, settings, ids)
    with db.session() as s:
        gateway = SimulatedGateway(db)
        payment_ops.complete_from_gateway(s, support, completed.public_id, gateway, settings=settings, reason="r")
        page = stuck_paid_page(s, support, size=50)

    assert [r.public_id for r in page.rows] == [older.public_id, newer.public_id]
    assert [r.status for r in page.rows] == [OrderStatus.PENDING, OrderStatus.EXPIRED]
    assert {r.gateway_state for r in page.rows} == {"succeeded"}
    assert (page.count.value, page.count.capped, page.next_after) == (2, False, None)


def test_stuck_pages_in_the_database(db, admin, support, settings, pricing, sim):
    made = open_orders(db, admin, pricing, sim, 3)
    for order in made:
        sim.settle(order.provider_ref, Pay.SUCCEED)
    payment_ops.check_payments(db, support, settings, [o.public_id for o in made])
    with db.session() as s:
        first = stuck_paid_page(s, support, size=2)
        second = stuck_paid_page(s, support, size=2, after=first.next_after)
    assert [r.public_id for r in first.rows + second.rows] == [o.public_id for o in made]
    assert second.next_after is None


def test_a_later_check_that_says_pending_takes_an_order_off_the_stuck_view(db, admin, support, settings, pricing, sim):
    (order,) = open_orders(db, admin, pricing, sim, 1)
    sim.settle(order.provider_ref, Pay.SUCCEED)
    payment_ops.check_payments(db, support, settings, [order.public_id])
    with db.session() as s:
        assert [r.public_id for r in stuck_paid_page(s, support).rows] == [order.public_id]
        request = orders._payment_request(s, s.get(Order, order.id))
    fresh = sim.create_payment(request, idempotency_key="second")
    with db.session() as s:
        s.execute(update(Order).where(Order.id == order.id).values(provider_ref=fresh.ref))
        s.commit()
    payment_ops.check_payments(db, support, settings, [order.public_id])  # the new payment: pending
    with db.session() as s:
        assert s.get(Order, order.id).gateway_state == "pending"
        assert stuck_paid_page(s, support).rows == []


def test_the_stuck_view_reads_its_partial_index(db, support):
    with db.session() as s:
        query = rc._stuck_sql(s, "ORDER BY created_at, id LIMIT 51")
        compiled = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
        if db.engine.dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in s.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
        else:
            s.execute(text("SET LOCAL enable_seqscan = off"))  # a near-empty table would be read whole anyway
            plan = " ".join(row[0] for row in s.execute(text(f"EXPLAIN {compiled}")))
    assert "ix_orders_stuck_paid_created_at" in plan
    assert "TEMP B-TREE" not in plan  # read in order: no sort of the stuck orders


# --- bulk reconcile: dry run, then apply ---------------------------------------------------------


def test_a_dry_run_lists_what_each_order_would_become_and_changes_nothing(db, admin, support, settings, pricing, sim):
    paid, waiting, short = open_orders(db, admin, pricing, sim, 3)
    sim.settle(paid.provider_ref, Pay.SUCCEED)
    sim.settle(short.provider_ref, Pay.SUCCEED, amount_cents=short.total_cents - 100)
    with db.session() as s:
        events_before = count(s, AuditEvent)

    preview = reconcile(db, support, settings, **window(), dry_run=True)

    rows = {row.order: row for row in preview.rows}
    assert {o: (r.outcome, r.becomes) for o, r in rows.items()} == {
        paid.public_id: (Outcome.WOULD_COMPLETE, "paid"),
        waiting.public_id: (Outcome.UNPAID, "pending"),
        short.public_id: (Outcome.MISMATCH, "pending"),
    }
    assert preview.summary().startswith("Dry run, nothing changed")
    with db.session() as s:
        assert count(s, GatewayCheck) == 0
        assert count(s, LedgerEntry) == 0
        assert count(s, AuditEvent) == events_before
        assert {s.get(Order, o.id).status for o in (paid, waiting, short)} == {OrderStatus.PENDING}
        assert s.get(Order, paid.id).gateway_state is None

    applied = reconcile(db, support, settings, **window())

    assert {r.order: r.becomes for r in applied.rows} == {r.order: r.becomes for r in preview.rows}
    assert applied.counts[Outcome.COMPLETED] == 1
    with db.session() as s:
        assert s.get(Order, paid.id).status is OrderStatus.PAID


# --- a pasted id or reference -----------------------------------------------------------------------


def test_an_order_id_or_its_reference_names_its_one_order(db, admin, support, pricing, sim):
    first, second = open_orders(db, admin, pricing, sim, 2)
    with db.session() as s:
        assert search.the_one_order(s, support, first.public_id) == first.public_id
        assert search.the_one_order(s, support, first.public_id.upper()) == first.public_id
        assert search.the_one_order(s, support, second.provider_ref) == second.public_id
        assert search.the_one_order(s, support, first.public_id[:12]) == first.public_id
        assert search.the_one_order(s, support, "zoe@example.com") is None  # a customer, not an order
        assert search.the_one_order(s, support, "ord_0000000000000000") is None


def test_a_reference_start_shared_by_two_orders_names_none(db, admin, support, pricing, sim):
    first, second = open_orders(db, admin, pricing, sim, 2)
    with db.session() as s:
        s.execute(update(Order).where(Order.id == first.id).values(provider_ref="pi_sharedstart_1"))
        s.execute(update(Order).where(Order.id == second.id).values(provider_ref="pi_sharedstart_2"))
        s.commit()
        assert search.the_one_order(s, support, "pi_sharedstart") is None
        assert search.the_one_order(s, support, "pi_sharedstart_2") == second.public_id


# --- what the filters narrow a search to -------------------------------------------------------------


def test_searched_as_says_what_the_filters_narrow_to():
    assert search.searched_as(OrderQuery(), "all orders") == "all orders"
    pending = OrderQuery(statuses=["pending", "expired"])
    assert search.searched_as(pending, "all orders") == "orders with status pending or expired"
    typed = OrderQuery(text="ana@example.com", methods=["stripe"], amount_min_cents=1000)
    assert search.searched_as(typed, "email") == "email, only method stripe · amount from $10.00"
