"""Adjustments with four-eyes approval: support proposes, finance approves, nobody approves their own,
two approvals above the threshold, no approval after expiry, no replay; the balance and the liability
roll-forward move by the approved amount only."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from billing_core.access.roles import Actor, Role
from billing_core.core.config import CreditPolicy, Settings
from billing_core.core.errors import BillingError, PermissionDenied, StateConflict
from billing_core.core.models import ApprovalStatus, AuditEvent, CreditPool, LedgerEntry, LedgerKind, utcnow
from billing_core.credits import approvals, ledger, liability
from tests.helpers import make_customer

FAY = Actor("fay@company.test", Role.FINANCE, "Fay Finance")
FRED = Actor("fred@company.test", Role.FINANCE, "Fred Finance")
SAM = Actor("sam@company.test", Role.SUPPORT, "Sam Support")


@pytest.fixture
def policy_settings(db) -> Settings:
    return Settings(database_url=db.url, credits=CreditPolicy(two_approvals_above=100_00, proposal_hours=2))


@pytest.fixture
def customer(session, admin):
    return make_customer(session, admin)


def propose(session, settings, customer, credits="25", pool=CreditPool.PROMOTIONAL, who=SAM, now=None):
    return approvals.propose_adjustment(
        session, who, customer.public_id, credits=credits, pool=pool, reason="outage on 3 Nov", note="Sorry!",
        settings=settings, now=now,
    )  # fmt: skip


def held(session, customer) -> ledger.Balance:
    return ledger._balance(session, customer.id)


def test_support_proposes_finance_approves_and_the_balance_and_liability_move_by_it(session, customer, policy_settings):
    proposal = propose(session, policy_settings, customer)
    assert held(session, customer).total == 0  # nothing moves on a proposal
    assert approvals.waiting_count(session, FAY) == 1
    approved = approvals.approve(session, FAY, proposal.id, settings=policy_settings)
    assert approved.status is ApprovalStatus.APPROVED
    assert held(session, customer) == ledger.Balance(0, 25_00, 0)
    entry = session.get(LedgerEntry, approved.ledger_entry_id)
    assert (entry.kind, entry.pool, entry.credits, entry.note) == (
        LedgerKind.ADJUSTMENT,
        CreditPool.PROMOTIONAL,
        25_00,
        "Sorry!",
    )
    [line] = [x for x in liability.roll_forward(session, FAY) if x.pool is CreditPool.PROMOTIONAL]
    assert (line.credits.grants, line.credits.closing, line.usd.closing) == (25_00, 25_00, 0)
    assert approvals.waiting_count(session, FAY) == 0
    actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "approval")))
    assert actions == {"credits.adjustment.propose", "credits.adjustment.approve"}


def test_a_paid_correction_debit_takes_its_share_of_what_the_paid_credits_are_worth(session, customer, policy_settings):
    with_topup = ledger._entry(customer.id, LedgerKind.TOPUP, CreditPool.PAID, 100_00, 90_00, by="t")
    ledger._post(session, [with_topup])
    session.commit()
    proposal = propose(session, policy_settings, customer, credits="-50", pool=CreditPool.PAID)
    approvals.approve(session, FAY, proposal.id, settings=policy_settings)
    assert held(session, customer) == ledger.Balance(50_00, 0, 45_00)


def test_nobody_approves_their_own_proposal(session, customer, policy_settings):
    proposal = propose(session, policy_settings, customer, who=FAY)
    with pytest.raises(StateConflict, match="Nobody approves their own proposal"):
        approvals.approve(session, FAY, proposal.id, settings=policy_settings)
    assert held(session, customer).total == 0


def test_support_may_propose_but_not_approve(session, customer, policy_settings):
    proposal = propose(session, policy_settings, customer)
    with pytest.raises(PermissionDenied):
        approvals.approve(session, SAM, proposal.id, settings=policy_settings)


def test_above_the_threshold_two_different_people_must_approve(session, customer, policy_settings):
    proposal = propose(session, policy_settings, customer, credits="100.01")
    assert proposal.approvals_needed == 2
    first = approvals.approve(session, FAY, proposal.id, settings=policy_settings)
    assert first.status is ApprovalStatus.PENDING and held(session, customer).total == 0
    with pytest.raises(StateConflict, match="approved proposal .* already"):
        approvals.approve(session, FAY, proposal.id, settings=policy_settings)
    second = approvals.approve(session, FRED, proposal.id, settings=policy_settings)
    assert second.status is ApprovalStatus.APPROVED and held(session, customer).promotional == 100_01
    assert propose(session, policy_settings, customer, credits="100").approvals_needed == 1


def test_an_approval_replayed_books_nothing_twice(session, customer, policy_settings):
    proposal = propose(session, policy_settings, customer)
    approvals.approve(session, FAY, proposal.id, settings=policy_settings)
    with pytest.raises(StateConflict, match="already approved by fay@company.test"):
        approvals.approve(session, FRED, proposal.id, settings=policy_settings)
    assert held(session, customer).promotional == 25_00


def test_two_approvers_at_once_book_it_once(db, admin, policy_settings):
    with db.session() as s:
        customer = make_customer(s, admin)
        proposal_id = propose(s, policy_settings, customer).id
    results: list[str] = []
    start = threading.Barrier(2)

    def go(actor):
        start.wait()
        with db.session() as s:
            try:
                approvals.approve(s, actor, proposal_id, settings=policy_settings)
                results.append("approved")
            except StateConflict:
                results.append("refused")

    threads = [threading.Thread(target=go, args=(a,)) for a in (FAY, FRED)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["approved", "refused"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1
        assert ledger._balance(s, customer.id).promotional == 25_00


def test_a_proposal_cannot_be_approved_after_it_expires(session, customer, policy_settings):
    proposal = propose(session, policy_settings, customer, now=utcnow() - timedelta(hours=3))
    assert approvals.waiting_count(session, FAY) == 0
    with pytest.raises(StateConflict, match="expired at"):
        approvals.approve(session, FAY, proposal.id, settings=policy_settings)
    session.expire_all()
    assert approvals.queue(session, FAY, status=ApprovalStatus.EXPIRED)[0].id == proposal.id
    assert held(session, customer).total == 0


def test_a_rejected_proposal_books_nothing_and_cannot_be_approved(session, customer, policy_settings):
    proposal = propose(session, policy_settings, customer)
    approvals.reject(session, FAY, proposal.id, reason="no outage that day")
    with pytest.raises(StateConflict, match="already rejected"):
        approvals.approve(session, FRED, proposal.id, settings=policy_settings)
    assert held(session, customer).total == 0


@pytest.mark.parametrize(
    ("credits", "reason", "message"),
    [
        ("0", "r", "more than zero"),
        ("lots", "r", "Enter the credits"),
        ("5", "  ", "Give a reason"),
        ("5", "x" * 1001, "at most"),
    ],
)
def test_bad_input_is_refused_with_a_sentence_and_changes_nothing(
    session, customer, policy_settings, credits, reason, message
):
    with pytest.raises(BillingError, match=message):
        approvals.propose_adjustment(
            session,
            SAM,
            customer.public_id,
            credits=credits,
            pool="paid",
            reason=reason,
            note=None,
            settings=policy_settings,
        )
    assert approvals.queue(session, FAY, status=None) == []
