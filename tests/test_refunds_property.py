"""A property over random sequences of completions, partial and full refunds, retries, concurrent repeats,
lost gateway answers and reconciles: however they interleave, refunded ≤ paid, the books equal the
gateway, the ledger is top-ups less credits taken back, credit notes are minus the refunds, and the
revenue rollup equals its recomputation. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from billing_core.core.errors import BillingError
from billing_core.core.models import LedgerEntry, LedgerKind, Order, OrderStatus, Refund, RefundStatus
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.payments.simulated import Outcome, SimulatedGateway
from tests.helpers import make_customer, make_order
from tests.test_refunds import SilentGateway, assert_books_equal_gateway, books, run_together
from tests.test_rollup import recomputed, stored, without_country

_emails = itertools.count()

step = st.one_of(
    st.tuples(st.just("complete"), st.integers(0, 2), st.just(0)),
    st.tuples(st.sampled_from(["partial", "retry", "concurrent", "lost"]), st.integers(0, 2), st.integers(1, 12000)),
    st.tuples(st.sampled_from(["full", "reconcile"]), st.integers(0, 2), st.just(0)),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=12))
def test_random_refund_histories_keep_the_books_equal_to_the_gateway(db, admin, support, finance, pricing, steps):
    from billing_core.core.config import Settings

    config = Settings(database_url=db.url)
    gateway = SimulatedGateway(db)
    with db.session() as s:
        customer = make_customer(s, admin, email=f"prop{next(_emails)}@example.com")
        placed = []
        for amount in ("20", "100", "37.50"):
            order = make_order(s, admin, customer, pricing, amount=amount)
            payment = gateway.create_payment(orders._payment_request(s, order))
            orders.attach_payment(s, admin, order.id, payment)
            gateway.settle(payment.ref, Outcome.SUCCEED)
            placed.append(SimpleNamespace(id=order.id, public_id=order.public_id, provider_ref=payment.ref))

    def refund(order, amount, seen=None, via=gateway):
        with db.session() as s:
            return refunds.refund_order(
                s, finance, order.public_id, via, settings=config, reason="prop", amount=amount, seen_cents=seen
            )

    for kind, index, cents in steps:
        order = placed[index]
        try:
            if kind == "complete":
                with db.session() as s:
                    status = gateway.fetch_status(order.provider_ref)
                    orders.complete_order(s, support, order.id, settings=config, reason="prop", payment=status)
            elif kind == "reconcile":
                refunds.reconcile_refunds(db, support, config, gateway_for=lambda *a, **k: gateway)
            elif kind in ("partial", "full"):
                refund(order, None if kind == "full" else cents)
            elif kind == "lost":
                refund(order, cents, via=SilentGateway(db, after=cents % 2 == 0))
            else:  # the same request twice, one after the other or at the same moment
                with db.session() as s:
                    seen = refunds.plan_refund(s, finance, order.public_id, cents).committed_cents
                times = 2 if kind == "retry" else 3
                if kind == "retry":
                    for _ in range(times):
                        try:
                            refund(order, cents, seen)
                        except BillingError:
                            pass
                else:
                    run_together(times, lambda _, o=order, c=cents, v=seen: refund(o, c, v))
        except BillingError:
            pass  # refused (unpaid, too much, already pending...): the property is about what is recorded

    refunds.reconcile_refunds(db, support, config, gateway_for=lambda *a, **k: gateway)
    with db.session() as s:
        for order in placed:
            fresh = orders._get_order(s, order.id)
            state = books(db, order)
            assert state["pending"] == 0
            assert_books_equal_gateway(state)
            paid = fresh.paid_amount_cents or 0
            refunded = state["gateway_refunded"]
            assert refunded <= paid
            if fresh.status in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED):
                expected = OrderStatus.PAID
                if refunded:
                    expected = OrderStatus.REFUNDED if refunded == paid else OrderStatus.PARTIALLY_REFUNDED
                assert fresh.status is expected
        paid_credits = s.scalar(
            select(func.coalesce(func.sum(Order.credits), 0)).where(
                Order.customer_id == customer.id, Order.paid_at.is_not(None)
            )
        )
        taken_back = s.scalar(
            select(func.coalesce(func.sum(Refund.credits), 0))
            .join(Order, Order.id == Refund.order_id)
            .where(Order.customer_id == customer.id, Refund.status == RefundStatus.SUCCEEDED)
        )
        assert orders._customer_balance(s, customer.id) == paid_credits - taken_back
        topups = s.scalar(
            select(func.coalesce(func.sum(LedgerEntry.credits), 0)).where(
                LedgerEntry.customer_id == customer.id, LedgerEntry.kind == LedgerKind.TOPUP
            )
        )
        assert topups == paid_credits
        expected_country, expected_monthly = recomputed(s)
        country, daily, monthly, _ = stored(s)
        assert country == expected_country
        assert daily == without_country(expected_country)
        assert monthly == expected_monthly
