"""Refunds above ``[credits] refund_approval_above_cents`` and manual completions (when ``[credits]
manual_completion_approval`` is on) wait in the approvals flow: nobody approves their own, two approvals
above ``two_approvals_above``, no approval after expiry or twice; an approved refund takes the durable
refund path and moves the money once however many finance people approve at the same moment.

Every test runs on SQLite and PostgreSQL; the concurrent ones use real threads, each with its own session.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from billing_core.access.roles import Actor, Role
from billing_core.core.config import CreditPolicy, Settings
from billing_core.core.db import transaction
from billing_core.core.errors import BillingError, GatewayError, PermissionDenied, StateConflict
from billing_core.core.models import (
    Approval,
    ApprovalKind,
    ApprovalStatus,
    AuditEvent,
    LedgerEntry,
    LedgerKind,
    OrderStatus,
    Refund,
    RefundStatus,
    SimulatedPayment,
    utcnow,
)
from billing_core.credits import approvals
from billing_core.credits.proposals import SentForApproval
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.orders.detail import order_detail
from billing_core.payments.simulated import SimulatedGateway
from billing_core.reconcile.settlement import apply as apply_settlement
from billing_core.reconcile.settlement import parse_settlement
from tests.helpers import make_customer, make_order
from tests.test_refunds import (
    HeldGateway,
    SilentGateway,
    assert_books_equal_gateway,
    books,
    paid_order,
    run_together,
)

FAY = Actor("fay@company.test", Role.FINANCE, "Fay Finance")
FRED = Actor("fred@company.test", Role.FINANCE, "Fred Finance")
FLO = Actor("flo@company.test", Role.FINANCE, "Flo Finance")
ADA = Actor("ada@company.test", Role.ADMIN, "Ada Admin")
SAM = Actor("sam@company.test", Role.SUPPORT, "Sam Support")

# A $100 order is charged $105.50 for 100 credits: a refund of more than $50 waits for approval, and one
# that takes back more than 80 credits (more than $84.40 of it) needs two approvers.
POLICY = CreditPolicy(refund_approval_above_cents=50_00, two_approvals_above=80_00, proposal_hours=2)


@pytest.fixture
def policy(db) -> Settings:
    return Settings(database_url=db.url, credits=POLICY)


@pytest.fixture
def gateway(db) -> SimulatedGateway:
    return SimulatedGateway(db)


def order_paid(db, admin, support, pricing, settings, gateway):
    return paid_order(db, admin, support, pricing, settings, gateway)


def ask_refund(db, order, settings, gateway, amount="60", who=FAY, **extra):
    with db.session() as s:
        return refunds.refund_order(
            s, who, order.public_id, gateway, settings=settings, reason="customer asked", amount=amount, **extra
        )


def approve(db, who, approval_id, settings, gateway, **extra):
    with db.session() as s:
        return approvals.approve(s, who, approval_id, settings=settings, gateway_for=lambda order: gateway, **extra)


def refund_rows(db, order) -> list[Refund]:
    with db.session() as s:
        return list(s.scalars(select(Refund).where(Refund.order_id == order.id)))


def order_events(db, order) -> list[str]:
    with db.session() as s:
        stmt = select(AuditEvent.action).where(AuditEvent.entity_id == order.public_id).order_by(AuditEvent.id)
        return list(s.scalars(stmt))


# --- refunds ---------------------------------------------------------------------------------------


def test_a_refund_above_the_threshold_is_a_proposal_and_moves_no_money(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway, amount="50.01")
    assert isinstance(sent, SentForApproval) and not sent.repeated
    assert (sent.kind, sent.amount_cents, sent.approvals_needed) == (ApprovalKind.REFUND, 50_01, 1)
    assert "sent for approval" in sent.message and f"proposal {sent.approval_id}" in sent.message
    assert refund_rows(db, order) == []
    state = books(db, order)
    assert state["gateway"] == [] and state["status"] is OrderStatus.PAID
    assert order_events(db, order)[-1] == "order.refund.propose"
    with db.session() as s:
        [row] = approvals.queue(s, FRED)
        assert (row.kind, row.order_public_id, row.amount_cents, row.proposed_by, row.reason) == (
            ApprovalKind.REFUND,
            order.public_id,
            50_01,
            FAY.email,
            "customer asked",
        )
        assert approvals.waiting_count(s, FRED) == 1


def test_a_refund_at_the_threshold_is_sent_at_once(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    done = ask_refund(db, order, policy, gateway, amount="50")
    assert isinstance(done, refunds.Refunded) and done.status is RefundStatus.SUCCEEDED
    assert books(db, order)["gateway_refunded"] == 50_00


def test_an_approved_refund_is_sent_once_through_the_durable_refund_path(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    approved = approve(db, FRED, sent.approval_id, policy, gateway)
    assert approved.status is ApprovalStatus.APPROVED
    [refund] = refund_rows(db, order)
    assert refund.idempotency_key == f"billing-ops-refund-approval-{sent.approval_id}"
    assert (refund.status, refund.amount_cents, refund.created_by, refund.finished_by) == (
        RefundStatus.SUCCEEDED,
        60_00,
        FAY.email,
        FRED.email,
    )
    assert approved.refund_id == refund.id
    state = books(db, order)
    assert state["gateway_refunded"] == 60_00 and len(state["gateway"]) == 1
    assert_books_equal_gateway(state)
    assert state["status"] is OrderStatus.PARTIALLY_REFUNDED
    steps = ["order.refund.propose", "order.refund.request", "order.refund.approve", "order.refund"]
    assert order_events(db, order)[-4:] == steps
    with db.session() as s:
        row = approvals.proposal(s, FRED, sent.approval_id)
        assert (row.status, row.refund_status) == (ApprovalStatus.APPROVED, RefundStatus.SUCCEEDED)
        timeline = {e.what: e.detail for e in order_detail(s, FRED, order.public_id).timeline}
    assert timeline["Refund sent for approval"] == (
        f"proposal {sent.approval_id}: refund of $60.00; pending, 0 of 1 approvals"
    )
    assert timeline["Refund approved"] == (
        f"proposal {sent.approval_id}: refund of $60.00; approved, 1 of 1 approvals (fred@company.test)"
    )


def test_nobody_approves_their_own_refund(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    with pytest.raises(StateConflict, match="Nobody approves their own proposal"):
        approve(db, FAY, sent.approval_id, policy, gateway)
    with pytest.raises(PermissionDenied):
        approve(db, SAM, sent.approval_id, policy, gateway)
    assert refund_rows(db, order) == [] and books(db, order)["gateway"] == []


def test_a_refund_taking_back_more_credits_than_the_adjustment_threshold_needs_two_approvers(
    db, admin, support, pricing, policy, gateway
):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway, amount=None)  # all of it: 100 credits back
    assert sent.approvals_needed == 2 and "two other people" in sent.message
    first = approve(db, FRED, sent.approval_id, policy, gateway)
    assert first.status is ApprovalStatus.PENDING and refund_rows(db, order) == []
    with pytest.raises(StateConflict, match="approved proposal .* already"):
        approve(db, FRED, sent.approval_id, policy, gateway)
    approve(db, ADA, sent.approval_id, policy, gateway)
    state = books(db, order)
    assert state["gateway_refunded"] == order.total_cents and state["status"] is OrderStatus.REFUNDED
    assert_books_equal_gateway(state)


def test_an_approved_refund_cannot_be_approved_again(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    approve(db, FRED, sent.approval_id, policy, gateway)
    with pytest.raises(StateConflict, match="already approved by fred@company.test"):
        approve(db, ADA, sent.approval_id, policy, gateway)
    assert books(db, order)["gateway_refunded"] == 60_00 and len(refund_rows(db, order)) == 1


def test_a_refund_proposal_cannot_be_approved_after_it_expires(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    with pytest.raises(StateConflict, match="expired at"):
        approve(db, FRED, sent.approval_id, policy, gateway, now=utcnow() + timedelta(hours=3))
    with db.session() as s:
        assert s.get(Approval, sent.approval_id).status is ApprovalStatus.EXPIRED
    assert refund_rows(db, order) == [] and books(db, order)["gateway"] == []
    assert order_events(db, order)[-1] == "order.refund.expire"


def test_a_rejected_refund_moves_no_money(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    with db.session() as s:
        approvals.reject(s, FRED, sent.approval_id, reason="refunded by bank transfer instead")
    with pytest.raises(StateConflict, match="already rejected"):
        approve(db, ADA, sent.approval_id, policy, gateway)
    assert refund_rows(db, order) == [] and order_events(db, order)[-1] == "order.refund.reject"


def test_the_same_refund_asked_twice_is_one_proposal(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    first = ask_refund(db, order, policy, gateway)
    again = ask_refund(db, order, policy, gateway)
    assert again.repeated and again.approval_id == first.approval_id and "already waiting" in again.message
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Approval)) == 1


def test_a_proposal_that_does_not_fit_beside_a_waiting_one_is_refused(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)  # $105.50
    first = ask_refund(db, order, policy, gateway, amount="60")
    with pytest.raises(BillingError, match=f"proposal {first.approval_id} of \\$60.00 by fay@company.test"):
        ask_refund(db, order, policy, gateway, amount="51", who=ADA)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Approval)) == 1


def test_an_approval_of_a_refund_that_no_longer_fits_is_refused_and_keeps_waiting(
    db, admin, support, pricing, policy, gateway
):
    order = order_paid(db, admin, support, pricing, policy, gateway)  # $105.50
    sent = ask_refund(db, order, policy, gateway, amount="60")
    ask_refund(db, order, policy, gateway, amount="50")  # below the threshold: refunded at once
    with pytest.raises(BillingError, match="still refundable.*was not approved; reject it"):
        approve(db, FRED, sent.approval_id, policy, gateway)
    with db.session() as s:
        waiting = s.get(Approval, sent.approval_id)
        assert (waiting.status, waiting.approved_by, waiting.refund_id) == (ApprovalStatus.PENDING, [], None)
    assert books(db, order)["gateway_refunded"] == 50_00


def test_a_refund_spending_used_credits_is_proposed_only_with_the_override(
    db, admin, support, pricing, policy, gateway
):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    with db.session() as s:
        from billing_core.credits import ledger

        ledger._post(s, [ledger._entry(order.customer_id, LedgerKind.USAGE, "paid", -90_00, -90_00, by="router")])
        s.commit()
    with pytest.raises(StateConflict, match="Finance can override"):
        ask_refund(db, order, policy, gateway)
    sent = ask_refund(db, order, policy, gateway, override=True)
    approve(db, FRED, sent.approval_id, policy, gateway)
    [refund] = refund_rows(db, order)
    assert refund.override and refund.status is RefundStatus.SUCCEEDED


def test_two_finance_people_approving_at_the_same_moment_move_the_money_once(
    db, admin, support, pricing, policy, gateway
):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    approvers = [FRED, FLO, ADA, Actor("fin@company.test", Role.FINANCE)]

    def go(i):
        with db.session() as s:
            return approvals.approve(
                s, approvers[i], sent.approval_id, settings=policy, gateway_for=lambda o: SimulatedGateway(db)
            )

    results = run_together(len(approvers), go)
    won = [r for r in results if isinstance(r, Approval)]
    refused = [r for r in results if isinstance(r, StateConflict)]
    assert len(won) == 1 and len(refused) == len(approvers) - 1, results
    assert all("already approved" in str(r) for r in refused)
    state = books(db, order)
    assert state["gateway_refunded"] == 60_00 and len(state["gateway"]) == 1 and len(state["refunds"]) == 1
    assert_books_equal_gateway(state)


def test_two_approvals_given_at_the_same_moment_send_the_refund_once(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway, amount=None)  # needs two approvers
    approvers = [FRED, FLO, ADA]

    def go(i):
        with db.session() as s:
            return approvals.approve(
                s, approvers[i], sent.approval_id, settings=policy, gateway_for=lambda o: SimulatedGateway(db)
            )

    results = run_together(len(approvers), go)
    assert sum(isinstance(r, Approval) for r in results) == 2, results
    assert sum(isinstance(r, StateConflict) for r in results) == 1, results
    state = books(db, order)
    assert state["gateway_refunded"] == order.total_cents and len(state["gateway"]) == 1
    assert_books_equal_gateway(state)


def test_an_approval_while_the_first_ones_refund_is_at_the_gateway_is_refused(
    db, admin, support, pricing, policy, gateway
):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    held = HeldGateway(db)
    first: list = []
    thread = threading.Thread(target=lambda: first.append(approve(db, FRED, sent.approval_id, policy, held)))
    thread.start()
    assert held.reached.wait(60)  # the intent is committed; the gateway has not answered yet
    with pytest.raises(StateConflict, match="already approved by fred@company.test"):
        approve(db, FLO, sent.approval_id, policy, gateway)
    held.release.set()
    thread.join(60)
    assert first[0].status is ApprovalStatus.APPROVED
    state = books(db, order)
    assert state["gateway_refunded"] == 60_00 and len(state["gateway"]) == 1
    assert_books_equal_gateway(state)


@pytest.mark.parametrize("after", [False, True], ids=["lost-request", "lost-answer"])
def test_an_approved_refund_the_gateway_did_not_answer_is_finished_once_by_reconcile(
    db, admin, support, pricing, policy, gateway, after
):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    approved = approve(db, FRED, sent.approval_id, policy, SilentGateway(db, after=after))
    assert approved.status is ApprovalStatus.APPROVED
    with db.session() as s:
        assert approvals.proposal(s, FRED, sent.approval_id).refund_status is RefundStatus.REQUESTED
    assert books(db, order)["pending"] == 1 and books(db, order)["refunds"] == []
    for _ in range(2):
        refunds.reconcile_refunds(db, support, policy, gateway_for=lambda *a, **k: gateway)
    state = books(db, order)
    assert state["gateway_refunded"] == 60_00 and state["pending"] == 0
    assert_books_equal_gateway(state)


def test_a_refusal_by_the_gateway_after_approval_is_said_and_nothing_is_refunded(
    db, admin, support, pricing, policy, gateway
):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    with db.session() as s, transaction(s):  # someone refunded most of it in the gateway's dashboard
        s.get(SimulatedPayment, order.provider_ref).refunded_cents = order.total_cents - 500
    with pytest.raises(GatewayError, match=f"Proposal {sent.approval_id} is approved, but"):
        approve(db, FRED, sent.approval_id, policy, gateway)
    [refund] = refund_rows(db, order)
    assert refund.status is RefundStatus.FAILED
    state = books(db, order)
    assert state["refunds"] == [] and state["note_count"] == 0 and state["status"] is OrderStatus.PAID


# --- manual completions ----------------------------------------------------------------------------


@pytest.fixture
def four_eyes(db) -> Settings:
    """Manual completions wait; one of a 100-credit order needs one approver, above 200 credits two."""
    policy = replace(POLICY, manual_completion_approval=True, two_approvals_above=200_00)
    return Settings(database_url=db.url, credits=policy)


def unpaid(db, admin, pricing, method="alipay"):
    with db.session() as s:
        customer = make_customer(s, admin)
        return make_order(s, admin, customer, pricing, amount="100", method=method)


def complete(db, who, order, settings, reference="2026112722001"):
    with db.session() as s:
        return orders.complete_order(
            s, who, order.id, settings=settings, reason="bank statement", manual_reference=reference
        )


def credited(db, order) -> int:
    with db.session() as s:
        stmt = select(func.count()).where(LedgerEntry.order_id == order.id, LedgerEntry.kind == LedgerKind.TOPUP)
        return s.scalar(stmt)


def test_a_manual_completion_waits_for_approval_when_config_says_so(db, admin, pricing, four_eyes):
    order = unpaid(db, admin, pricing)
    sent = complete(db, FAY, order, four_eyes)
    assert isinstance(sent, SentForApproval) and sent.kind is ApprovalKind.COMPLETION
    assert "manual completion" in sent.message
    with db.session() as s:
        assert orders._get_order(s, order.id).status is OrderStatus.PENDING
        [waiting] = order_detail(s, FRED, order.public_id).waiting_approvals
        [row] = approvals.queue(s, FRED, kind=ApprovalKind.COMPLETION)
    assert waiting.sentence().startswith(f"A manual completion was sent for approval by {FAY.email}")
    assert (row.order_public_id, row.reference, row.amount_cents) == (
        order.public_id,
        "2026112722001",
        order.total_cents,
    )
    assert row.approvals_needed == 1
    assert credited(db, order) == 0
    with pytest.raises(StateConflict, match="Nobody approves their own"):
        approve(db, FAY, sent.approval_id, four_eyes, None)

    approve(db, FRED, sent.approval_id, four_eyes, None)
    with db.session() as s:
        done = orders._get_order(s, order.id)
        assert (done.status, done.provider_ref, done.completed_by) == (OrderStatus.PAID, "2026112722001", FRED.email)
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "order.complete"))
    assert event.after["approval"] == sent.approval_id and event.after["proposed_by"] == FAY.email
    assert credited(db, order) == 1
    with pytest.raises(StateConflict, match="already approved"):
        approve(db, ADA, sent.approval_id, four_eyes, None)
    assert credited(db, order) == 1


def test_a_completion_granting_more_credits_than_the_adjustment_threshold_needs_two_approvers(
    db, admin, pricing, four_eyes
):
    with db.session() as s:
        order = make_order(s, admin, make_customer(s, admin), pricing, amount="500", method="alipay")
    sent = complete(db, FAY, order, four_eyes)
    assert sent.approvals_needed == 2
    assert approve(db, FRED, sent.approval_id, four_eyes, None).status is ApprovalStatus.PENDING
    assert credited(db, order) == 0
    assert approve(db, FLO, sent.approval_id, four_eyes, None).status is ApprovalStatus.APPROVED
    assert credited(db, order) == 1


def test_without_the_setting_a_manual_completion_completes_at_once(db, admin, pricing, policy):
    order = unpaid(db, admin, pricing)
    done = complete(db, FAY, order, policy)
    assert isinstance(done, orders.Completion) and credited(db, order) == 1


def test_a_completion_approved_by_several_people_at_once_credits_once(db, admin, pricing, four_eyes):
    order = unpaid(db, admin, pricing)
    sent = complete(db, FAY, order, four_eyes)
    approvers = [FRED, FLO, ADA]
    results = run_together(len(approvers), lambda i: approve(db, approvers[i], sent.approval_id, four_eyes, None))
    assert sum(isinstance(r, Approval) for r in results) == 1, results
    assert credited(db, order) == 1


def test_a_completion_proposal_for_an_order_paid_meanwhile_is_refused_and_keeps_waiting(
    db, admin, pricing, four_eyes, policy
):
    order = unpaid(db, admin, pricing)
    sent = complete(db, FAY, order, four_eyes)
    complete(db, ADA, order, policy, reference="other")  # completed another way (setting off there)
    with pytest.raises(StateConflict, match="already paid.*was not approved"):
        approve(db, FRED, sent.approval_id, four_eyes, None)
    with db.session() as s:
        assert s.get(Approval, sent.approval_id).status is ApprovalStatus.PENDING
    assert credited(db, order) == 1


def test_a_settlement_file_completes_at_once_with_the_setting_on(db, admin, pricing, four_eyes):
    with db.session() as s:
        customer = make_customer(s, admin)
        order = make_order(s, admin, customer, pricing, amount="100", method="airwallex")
    text = (
        "Transaction ID,Merchant Order ID,Payment Intent ID,Currency,Amount,Fee,Net,Status,Settled At\n"
        f"txn_1,{order.public_id},int_1,USD,{order.total_cents / 100:.2f},0,0,SETTLED,2026-11-20T09:14:03Z\n"
    )
    parsed = parse_settlement(text.encode(), "airwallex_2026-11-20.csv", kind="payment")
    result = apply_settlement(db, FAY, four_eyes, parsed)
    assert result.completed == [order.public_id] and credited(db, order) == 1


def test_support_cannot_propose_a_manual_completion(db, admin, pricing, four_eyes):
    order = unpaid(db, admin, pricing)
    with pytest.raises(PermissionDenied):
        complete(db, SAM, order, four_eyes)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Approval)) == 0


def test_a_payment_the_gateway_proves_never_waits(db, admin, support, pricing, four_eyes, gateway):
    order = order_paid(db, admin, support, pricing, four_eyes, gateway)
    assert credited(db, order) == 1


def test_a_waiting_proposal_shows_no_refund_yet(db, admin, support, pricing, policy, gateway):
    order = order_paid(db, admin, support, pricing, policy, gateway)
    sent = ask_refund(db, order, policy, gateway)
    with db.session() as s:
        row = approvals.proposal(s, FRED, sent.approval_id)
    assert (row.status, row.refund_status) == (ApprovalStatus.PENDING, None)
