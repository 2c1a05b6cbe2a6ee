"""The order detail read-model: one timeline in order, and the gateway's truth beside ours."""

from __future__ import annotations

import pytest

from billing_core.core.config import Settings
from billing_core.core.errors import NotFound
from billing_core.core.models import OrderStatus
from billing_core.orders import gateway_actions as payment_ops
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.orders.detail import order_detail
from billing_core.payments.simulated import Outcome, SimulatedGateway
from tests.helpers import SUPPORT, make_customer, make_order


@pytest.fixture
def gateway(db) -> SimulatedGateway:
    return SimulatedGateway(db)


def open_payment(session, db, admin, order, gateway):
    payment = gateway.create_payment(orders._payment_request(session, order))
    orders.attach_payment(session, admin, order.public_id, payment)
    return payment


def test_timeline_tells_created_resumed_checked_completed_and_partly_refunded_in_order(
    db, session, admin, support, finance, pricing, gateway
):
    settings = Settings(database_url=db.url)
    order = make_order(session, admin, make_customer(session, admin), pricing, amount="100")
    open_payment(session, db, admin, order, gateway)
    resumed = payment_ops.resume_payment(session, support, order.public_id, gateway)
    gateway.settle(resumed.payment.ref, Outcome.SUCCEED)
    payment_ops.check_payment(session, support, order.public_id, gateway)
    done = payment_ops.complete_from_gateway(
        session, support, order.public_id, gateway, settings=settings, reason="customer wrote: paid, no credits"
    )
    refunded = refunds.refund_order(
        session, finance, order.public_id, gateway, settings=settings, reason="goodwill", amount="20"
    )

    with db.session() as s:
        detail = order_detail(s, SUPPORT, order.public_id)

    assert [e.what for e in detail.timeline] == [
        "Created",
        "Payment created",
        "Payment resumed",
        "Gateway check",
        "Gateway check",
        "Completed",
        "Invoice issued",
        "Refund requested",
        "Refunded",
        "Credit note issued",
    ]
    times = [e.at for e in detail.timeline]
    assert times[:6] == sorted(times[:6])
    by_what = {e.what: e for e in detail.timeline}
    assert by_what["Completed"].who == f"{support.email} (support)"
    assert by_what["Completed"].reason == "customer wrote: paid, no credits"
    assert done.invoice_number in by_what["Completed"].detail
    assert resumed.payment.ref in by_what["Payment resumed"].detail
    assert by_what["Refunded"].who == f"{finance.email} (finance)"
    assert by_what["Refunded"].reason == "goodwill"
    assert refunded.credit_note_number in by_what["Credit note issued"].detail
    assert "succeeded" in detail.timeline[3].detail
    assert detail.order.status is OrderStatus.PARTIALLY_REFUNDED
    assert detail.invoice_number == done.invoice_number
    assert detail.credit_notes == [refunded.credit_note_number]
    assert [(r.amount_cents, r.credit_note) for r in detail.refunds] == [(2000, refunded.credit_note_number)]
    assert detail.balance == refunded.balance
    assert detail.latest_check.ref == resumed.payment.ref
    assert detail.discrepancies == []


def test_a_pending_order_paid_at_the_gateway_shows_the_discrepancy(db, session, admin, support, pricing, gateway):
    order = make_order(session, admin, make_customer(session, admin), pricing, amount="500")
    payment = open_payment(session, db, admin, order, gateway)
    gateway.settle(payment.ref, Outcome.SUCCEED)
    payment_ops.check_payment(session, support, order.public_id, gateway)

    with db.session() as s:
        detail = order_detail(s, SUPPORT, order.public_id)

    assert detail.order.status is OrderStatus.PENDING
    assert detail.latest_check.state == "succeeded"
    assert detail.discrepancies == ["Paid at the gateway but pending here: complete the order."]
    assert detail.balance == 0


def test_an_amount_paid_wrong_at_the_gateway_is_named(db, session, admin, support, pricing, gateway):
    order = make_order(session, admin, make_customer(session, admin), pricing, amount="100")
    payment = open_payment(session, db, admin, order, gateway)
    gateway.settle(payment.ref, Outcome.SUCCEED, amount_cents=100)
    payment_ops.check_payment(session, support, order.public_id, gateway)

    with db.session() as s:
        found = order_detail(s, SUPPORT, order.public_id).discrepancies

    assert "Amount differs: the gateway has $1.00, the order $105.50." in found


def test_an_order_without_checks_has_no_gateway_view(db, session, admin, support, pricing):
    order = make_order(session, admin, make_customer(session, admin), pricing)
    with db.session() as s:
        detail = order_detail(s, SUPPORT, order.public_id)
    assert detail.latest_check is None
    assert detail.discrepancies == []
    assert [e.what for e in detail.timeline] == ["Created"]
    assert detail.customer.email == "zoe@example.com"


def test_an_unknown_order_is_not_found(db, support):
    with db.session() as s, pytest.raises(NotFound):
        order_detail(s, SUPPORT, "ord_doesnotexist")
