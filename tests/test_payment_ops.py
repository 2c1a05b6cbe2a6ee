"""Checking, completing, resuming, expiring, cancelling and refunding orders at their gateway."""

import pytest
from sqlalchemy import func, select

from billing_core.core.db import transaction
from billing_core.core.errors import BillingError, GatewayError, PermissionDenied, StateConflict
from billing_core.core.models import (
    AuditEvent,
    CreditPool,
    GatewayCheck,
    Invoice,
    InvoiceKind,
    LedgerEntry,
    LedgerKind,
    OrderStatus,
    SimulatedPayment,
    SimulatedStatus,
)
from billing_core.credits import ledger
from billing_core.orders import gateway_actions as payment_ops
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.payments import PaymentState
from billing_core.payments.simulated import Outcome, SimulatedGateway
from billing_core.payments.stripe_gateway import StripeGateway
from tests.conftest import pay_at_stripe
from tests.helpers import SUPPORT, make_customer, make_order
from tests.test_refunds import run_together


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def gateway(db):
    return SimulatedGateway(db)


def open_order(session, admin, pricing, gateway, amount="500", method="stripe", email="zoe@example.com"):
    customer = make_customer(session, admin, email=email)
    order = make_order(session, admin, customer, pricing, amount=amount, method=method)
    payment = gateway.create_payment(orders._payment_request(session, order))
    orders.attach_payment(session, admin, order.id, payment)
    return orders._get_order(session, order.id), payment


def paid_order(session, admin, support, pricing, settings, gateway, **kw):
    order, payment = open_order(session, admin, pricing, gateway, **kw)
    gateway.settle(payment.ref, Outcome.SUCCEED)
    payment_ops.complete_from_gateway(session, support, order.id, gateway, settings=settings, reason="paid")
    return orders._get_order(session, order.id)


def test_check_records_the_gateways_word(session, admin, support, pricing, gateway):
    order, payment = open_order(session, admin, pricing, gateway)
    gateway.settle(payment.ref, Outcome.SUCCEED)
    status = payment_ops.check_payment(session, support, order.public_id, gateway)
    assert status.state is PaymentState.SUCCEEDED
    checks = payment_ops.checks_for(session, SUPPORT, order.id)
    assert [(c.state, c.amount_cents, c.checked_by) for c in checks] == [
        ("succeeded", order.total_cents, support.email)
    ]
    assert payment_ops.discrepancies(order, status) == ["Paid at the gateway but pending here: complete the order."]


def test_complete_from_gateway_completes_once(session, admin, support, pricing, settings, gateway):
    order, payment = open_order(session, admin, pricing, gateway)
    gateway.settle(payment.ref, Outcome.SUCCEED)
    done = payment_ops.complete_from_gateway(session, support, order.id, gateway, settings=settings, reason="ticket 7")
    assert done.balance == order.credits
    with pytest.raises(StateConflict, match="already paid"):
        payment_ops.complete_from_gateway(session, support, order.id, gateway, settings=settings, reason="again")
    assert count(session, LedgerEntry) == 1


def test_unpaid_at_gateway_is_not_completed(session, admin, support, pricing, settings, gateway):
    order, _ = open_order(session, admin, pricing, gateway)
    with pytest.raises(BillingError, match="is pending, not succeeded"):
        payment_ops.complete_from_gateway(session, support, order.id, gateway, settings=settings, reason="x")
    assert orders._get_order(session, order.id).status is OrderStatus.PENDING


def test_amount_mismatch_is_shown_and_refused(session, admin, support, pricing, settings, gateway):
    order, payment = open_order(session, admin, pricing, gateway)
    gateway.settle(payment.ref, Outcome.SUCCEED, amount_cents=order.total_cents - 100)
    status = payment_ops.check_payment(session, support, order.id, gateway)
    assert any("Amount differs" in d for d in payment_ops.discrepancies(order, status))
    with pytest.raises(BillingError, match="is for"):
        payment_ops.complete_from_gateway(session, support, order.id, gateway, settings=settings, reason="x")


def test_resume_payment_opens_a_fresh_payment(session, admin, support, pricing, gateway):
    order, first = open_order(session, admin, pricing, gateway)
    resumed = payment_ops.resume_payment(session, support, order.id, gateway)
    assert resumed.payment.ref != first.ref
    assert order.public_id in resumed.message and "$527.50" in resumed.message
    assert orders._get_order(session, order.id).provider_ref == resumed.payment.ref


def test_resume_cancels_the_payment_it_replaces_so_the_customer_cannot_pay_both(
    session, admin, support, pricing, gateway
):
    order, first = open_order(session, admin, pricing, gateway)
    resumed = payment_ops.resume_payment(session, support, order.id, gateway)
    assert gateway.fetch_status(first.ref).state is PaymentState.CANCELED
    assert gateway.fetch_status(resumed.payment.ref).state is PaymentState.PENDING


def test_concurrent_resumes_of_one_order_open_one_payment(db, session, admin, support, pricing, gateway):
    order, first = open_order(session, admin, pricing, gateway)
    session.commit()

    def resume(_):
        with db.session() as s:
            return payment_ops.resume_payment(s, support, order.id, gateway).payment.ref

    results = run_together(8, resume)
    refs = {r for r in results if isinstance(r, str)}
    # Resumes that saw the same last payment got the same new one; one that started after another had
    # finished replaced (and cancelled) that one. Either way one payment is left open: the order's.
    assert refs and all(isinstance(r, str | StateConflict) for r in results), results
    with db.session() as s:
        open_ones = s.scalars(
            select(SimulatedPayment.ref).where(
                SimulatedPayment.order_public_id == order.public_id,
                SimulatedPayment.status == SimulatedStatus.REQUIRES_PAYMENT,
            )
        ).all()
        assert open_ones == [orders._get_order(s, order.id).provider_ref] and open_ones[0] in refs
    assert gateway.fetch_status(first.ref).state is PaymentState.CANCELED


def test_a_resume_that_lost_its_race_cancels_the_payment_it_opened(
    session, admin, support, pricing, gateway, monkeypatch
):
    order, first = open_order(session, admin, pricing, gateway)
    create = gateway.create_payment

    def someone_else_resumes_first(request, idempotency_key=None):
        mine = create(request, idempotency_key)
        with gateway.db.session() as other:  # someone cancels the order while this resume is at the gateway
            payment_ops.cancel_order(other, support, order.id, SimulatedGateway(gateway.db), reason="duplicate")
        return mine

    monkeypatch.setattr(gateway, "create_payment", someone_else_resumes_first)
    with pytest.raises(StateConflict, match="changed meanwhile"):
        payment_ops.resume_payment(session, support, order.id, gateway)
    monkeypatch.undo()
    session.rollback()
    kept = orders._get_order(session, order.id).provider_ref
    states = {
        ref: status
        for ref, status in session.execute(
            select(SimulatedPayment.ref, SimulatedPayment.status).where(
                SimulatedPayment.order_public_id == order.public_id
            )
        )
    }
    assert kept == first.ref and orders._get_order(session, order.id).status is OrderStatus.CANCELLED
    assert len(states) == 2 and set(states.values()) == {SimulatedStatus.CANCELED}  # nothing left to pay


def test_resume_refuses_when_the_last_payment_cannot_be_cancelled(
    session, admin, support, pricing, gateway, monkeypatch
):
    order, first = open_order(session, admin, pricing, gateway)

    def refuse(ref):
        raise GatewayError("The gateway refused to cancel the payment.")

    monkeypatch.setattr(gateway, "cancel", refuse)
    with pytest.raises(GatewayError, match="refused to cancel"):
        payment_ops.resume_payment(session, support, order.id, gateway)
    assert orders._get_order(session, order.id).provider_ref == first.ref
    assert count(session, SimulatedPayment, SimulatedPayment.order_public_id == order.public_id) == 1


def test_resume_refuses_when_last_payment_succeeded(session, admin, support, pricing, gateway):
    order, payment = open_order(session, admin, pricing, gateway)
    gateway.settle(payment.ref, Outcome.SUCCEED)
    with pytest.raises(StateConflict, match="already succeeded"):
        payment_ops.resume_payment(session, support, order.id, gateway)


def test_expired_order_can_be_resumed(session, admin, support, pricing, gateway):
    order, _ = open_order(session, admin, pricing, gateway)
    payment_ops.expire_order(session, support, order.id, gateway, reason="customer went quiet")
    assert orders._get_order(session, order.id).status is OrderStatus.EXPIRED
    payment_ops.resume_payment(session, support, order.id, gateway)
    assert orders._get_order(session, order.id).status is OrderStatus.PENDING


@pytest.mark.parametrize("close", [payment_ops.expire_order, payment_ops.cancel_order])
def test_closing_asks_the_gateway_and_refuses_a_paid_order(session, admin, support, pricing, gateway, close):
    order, payment = open_order(session, admin, pricing, gateway)
    gateway.settle(payment.ref, Outcome.SUCCEED)
    with pytest.raises(StateConflict, match="succeeded: complete order"):
        close(session, support, order.id, gateway, reason="tidy up")
    assert orders._get_order(session, order.id).status is OrderStatus.PENDING
    assert count(session, GatewayCheck) == 1


def test_cancel_cancels_the_open_payment_too(session, admin, support, pricing, gateway):
    order, payment = open_order(session, admin, pricing, gateway)
    payment_ops.cancel_order(session, support, order.id, gateway, reason="duplicate order")
    assert orders._get_order(session, order.id).status is OrderStatus.CANCELLED
    assert gateway.fetch_status(payment.ref).state is PaymentState.CANCELED
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "order.cancel"))
    assert event.reason == "duplicate order" and event.before == {"status": "pending"}


def test_full_refund_takes_credits_back_and_issues_a_credit_note(
    session, admin, support, finance, pricing, settings, gateway
):
    order = paid_order(session, admin, support, pricing, settings, gateway)
    done = refunds.refund_order(session, finance, order.id, gateway, settings=settings, reason="duplicate purchase")
    assert done.amount_cents == order.total_cents and done.credits_taken_back == order.credits
    assert done.order_status is OrderStatus.REFUNDED and done.balance == 0
    note = session.scalar(select(Invoice).where(Invoice.kind == InvoiceKind.CREDIT_NOTE))
    invoice = orders._invoice_for(session, order.id)
    assert note.number == done.credit_note_number and note.number.startswith("CN-")
    assert note.refers_to_id == invoice.id
    assert note.total_cents == -order.total_cents
    assert note.subtotal_cents == -order.amount_cents and note.fee_cents == -order.fee_cents
    assert gateway.fetch_status(order.provider_ref).refunded_cents == order.total_cents


def test_partial_refunds_add_up(session, admin, support, finance, pricing, settings, gateway):
    order = paid_order(session, admin, support, pricing, settings, gateway, amount="100")  # $105.50 charged
    first = refunds.refund_order(session, finance, order.id, gateway, settings=settings, reason="part", amount="52.75")
    assert first.order_status is OrderStatus.PARTIALLY_REFUNDED and first.credits_taken_back == 5000
    with pytest.raises(BillingError, match="more than the \\$52.75 still refundable"):
        refunds.refund_order(session, finance, order.id, gateway, settings=settings, reason="x", amount="60")
    rest = refunds.refund_order(session, finance, order.id, gateway, settings=settings, reason="rest")
    assert rest.amount_cents == 5275 and rest.order_status is OrderStatus.REFUNDED
    assert rest.balance == 0  # every credit of the order is back, however the halves rounded


def test_refund_of_used_credits_needs_an_override(session, admin, support, finance, pricing, settings, gateway):
    order = paid_order(session, admin, support, pricing, settings, gateway)
    with transaction(session):  # the customer spends 400 of the 500 credits, posted as every entry is
        spent = ledger._entry(order.customer_id, LedgerKind.USAGE, CreditPool.PAID, -40000, -40000, by="usage")
        ledger._post(session, [spent])
    with pytest.raises(StateConflict, match="has 100 paid credits left"):
        refunds.refund_order(session, finance, order.id, gateway, settings=settings, reason="chargeback")
    assert gateway.fetch_status(order.provider_ref).refunded_cents == 0
    done = refunds.refund_order(
        session, finance, order.id, gateway, settings=settings, reason="chargeback", override=True
    )
    assert done.balance == -40000
    assert refunds.refunds_for(session, finance, order.id)[0].override is True


def test_support_may_not_refund(session, admin, support, pricing, settings, gateway):
    order = paid_order(session, admin, support, pricing, settings, gateway)
    with pytest.raises(PermissionDenied):
        refunds.refund_order(session, support, order.id, gateway, settings=settings, reason="x")


def test_refund_of_an_unpaid_order_is_refused(session, admin, finance, pricing, settings, gateway):
    order, _ = open_order(session, admin, pricing, gateway)
    with pytest.raises(StateConflict, match="only a paid order"):
        refunds.refund_order(session, finance, order.id, gateway, settings=settings, reason="x")


class BrokenGateway:
    name = "broken"

    def __getattr__(self, _):
        def fail(*args, **kwargs):
            raise GatewayError("Stripe could not be reached (network error or timeout); nothing was changed.")

        return fail


def test_gateway_failure_changes_nothing(session, admin, support, finance, pricing, settings, gateway):
    order = paid_order(session, admin, support, pricing, settings, gateway)
    events = count(session, AuditEvent)
    for act in (
        lambda: payment_ops.check_payment(session, support, order.id, BrokenGateway()),
        lambda: payment_ops.cancel_order(session, support, order.id, BrokenGateway(), reason="x"),
    ):
        with pytest.raises((GatewayError, StateConflict)):
            act()
    assert count(session, AuditEvent) == events
    assert orders._get_order(session, order.id).status is OrderStatus.PAID


# --- against a real HTTP peer: localstripe ------------------------------------------------------


def test_stripe_create_pay_check_complete_refund(
    session, admin, support, finance, pricing, settings, stripe_gateway, localstripe_url
):
    order, payment = open_order(session, admin, pricing, stripe_gateway)
    assert payment.ref.startswith("pi_") and payment.state is PaymentState.PENDING
    assert stripe_gateway.fetch_status(payment.ref).order_public_id == order.public_id
    pay_at_stripe(localstripe_url, payment.ref)
    done = payment_ops.complete_from_gateway(session, support, order.id, stripe_gateway, settings=settings, reason="t")
    assert done.balance == order.credits
    refunded = refunds.refund_order(
        session, finance, order.id, stripe_gateway, settings=settings, reason="r", amount="100"
    )
    assert refunded.order_status is OrderStatus.PARTIALLY_REFUNDED


def test_stripe_cancel_of_an_unpaid_order(session, admin, support, pricing, stripe_gateway):
    order, payment = open_order(session, admin, pricing, stripe_gateway)
    payment_ops.cancel_order(session, support, order.id, stripe_gateway, reason="asked by customer")
    assert stripe_gateway.fetch_status(payment.ref).state is PaymentState.CANCELED


def test_stripe_unreachable_gives_a_clear_message_and_changes_nothing(session, admin, support, pricing, settings):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    dead = StripeGateway("sk_test_x", f"http://127.0.0.1:{port}", retries=1)
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing)
    with pytest.raises(GatewayError, match="could not be reached"):
        dead.create_payment(orders._payment_request(session, order))
    with transaction(session):
        session.get(type(order), order.id).provider_ref = "pi_unknown"
    with pytest.raises(GatewayError, match="could not be reached"):
        payment_ops.complete_from_gateway(session, support, order.id, dead, settings=settings, reason="x")
    assert orders._get_order(session, order.id).status is OrderStatus.PENDING
    assert count(session, GatewayCheck) == 0
