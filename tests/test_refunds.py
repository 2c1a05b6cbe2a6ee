"""Refunds move money exactly once: a durable intent, a gateway that honours idempotency keys, recovery.

Every test runs on SQLite and PostgreSQL; the concurrent ones use real threads (each with its own
session and connection), the crash one a subprocess killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing_core.core.db import transaction
from billing_core.core.errors import BillingError, GatewayError, GatewayUnreachable, StateConflict
from billing_core.core.models import (
    AuditEvent,
    Invoice,
    InvoiceKind,
    LedgerEntry,
    LedgerKind,
    OrderStatus,
    Refund,
    RefundStatus,
    SimulatedPayment,
    SimulatedRefund,
)
from billing_core.orders import gateway_actions as payment_ops
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.orders.detail import order_detail
from billing_core.payments import PaymentRequest, RefundState
from billing_core.payments.simulated import Outcome, SimulatedGateway
from tests.helpers import make_customer, make_order

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gateway(db) -> SimulatedGateway:
    return SimulatedGateway(db)


def paid_order(db, admin, support, pricing, settings, gateway, amount="100", email="zoe@example.com"):
    """A paid order of ``amount`` USD (plus the fee), paid at the simulated gateway."""
    with db.session() as session:
        customer = make_customer(session, admin, email=email)
        order = make_order(session, admin, customer, pricing, amount=amount)
        payment = gateway.create_payment(orders._payment_request(session, order))
        orders.attach_payment(session, admin, order.id, payment)
        gateway.settle(payment.ref, Outcome.SUCCEED)
        payment_ops.complete_from_gateway(session, support, order.id, gateway, settings=settings, reason="paid")
        return orders._get_order(session, order.id)


def books(db, order) -> dict:
    """What our books and the gateway's say about one order's refunds."""
    with db.session() as s:
        succeeded = list(
            s.scalars(select(Refund).where(Refund.order_id == order.id, Refund.status == RefundStatus.SUCCEEDED))
        )
        notes = list(
            s.scalars(select(Invoice).where(Invoice.order_id == order.id, Invoice.kind == InvoiceKind.CREDIT_NOTE))
        )
        debits = list(
            s.scalars(
                select(LedgerEntry).where(LedgerEntry.order_id == order.id, LedgerEntry.kind == LedgerKind.REFUND)
            )
        )
        at_gateway = list(s.scalars(select(SimulatedRefund).where(SimulatedRefund.payment_ref == order.provider_ref)))
        payment = s.get(SimulatedPayment, order.provider_ref)
        return {
            "refunds": sorted((r.idempotency_key, r.amount_cents) for r in succeeded),
            "gateway": sorted((g.idempotency_key, g.amount_cents) for g in at_gateway),
            "gateway_refunded": payment.refunded_cents,
            "notes": sum(n.total_cents for n in notes),
            "note_count": len(notes),
            "debits": sum(e.credits for e in debits),
            "debit_count": len(debits),
            "credits_back": sum(r.credits for r in succeeded),
            "pending": s.scalar(
                select(func.count()).where(Refund.order_id == order.id, Refund.status == RefundStatus.REQUESTED)
            ),
            "status": orders._get_order(s, order.id).status,
        }


def assert_books_equal_gateway(state: dict) -> None:
    assert state["refunds"] == state["gateway"]
    assert sum(a for _, a in state["refunds"]) == state["gateway_refunded"]
    assert state["notes"] == -state["gateway_refunded"]
    assert state["note_count"] == state["debit_count"] == len(state["refunds"])
    assert state["debits"] == -state["credits_back"]


def run_together(n: int, work) -> list:
    """Run ``work(i)`` in ``n`` threads released at the same moment; return each result or exception."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return results


# --- concurrency -------------------------------------------------------------------------------------


def test_eight_concurrent_identical_partial_refunds_pay_once_and_book_once(
    db, admin, support, finance, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    with db.session() as s:  # what both tabs show before anyone clicks
        plan = refunds.plan_refund(s, finance, order.public_id, "10")

    def refund(_):
        with db.session() as s:
            return refunds.refund_order(
                s, finance, order.public_id, SimulatedGateway(db), settings=settings, reason="double click",
                amount="10", seen_cents=plan.committed_cents,
            )  # fmt: skip

    results = run_together(8, refund)

    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, StateConflict)]
    assert not unexpected, unexpected
    assert sum(1 for r in results if isinstance(r, refunds.Refunded) and not r.repeated) == 1
    state = books(db, order)
    assert state["gateway_refunded"] == 1000 and len(state["gateway"]) == 1
    assert len(state["refunds"]) == 1 and state["note_count"] == 1 and state["debit_count"] == 1
    assert_books_equal_gateway(state)
    assert state["status"] is OrderStatus.PARTIALLY_REFUNDED


def test_eight_concurrent_different_refunds_never_pay_out_more_than_was_paid(
    db, admin, support, finance, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway)  # $105.50 charged
    amounts = ["10", "15.25", "20", "22.50", "25", "30", "31.75", "40"]  # $194.50 in all

    def refund(i):
        with db.session() as s:
            return refunds.refund_order(
                s, finance, order.public_id, SimulatedGateway(db), settings=settings, reason=f"part {i}",
                amount=amounts[i],
            )  # fmt: skip

    results = run_together(8, refund)

    refused = [r for r in results if isinstance(r, BillingError)]
    assert refused and all("still refundable" in str(r) for r in refused), refused
    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, BillingError)]
    state = books(db, order)
    assert 0 < state["gateway_refunded"] <= order.total_cents
    assert_books_equal_gateway(state)
    assert state["pending"] == 0


def test_the_simulated_gateway_does_concurrent_requests_with_one_key_once(db, admin, support, pricing, settings):
    gateway = SimulatedGateway(db)
    order = paid_order(db, admin, support, pricing, settings, gateway)

    answers = run_together(8, lambda _: SimulatedGateway(db).refund(order.provider_ref, 700, "one-key"))

    assert {a.refund_id for a in answers} == {answers[0].refund_id}
    assert gateway.fetch_status(order.provider_ref).refunded_cents == 700


# --- the simulated gateway's idempotency keys ---------------------------------------------------------


def test_same_key_same_parameters_returns_the_first_answer_and_moves_no_money(
    db, admin, support, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    first = gateway.refund(order.provider_ref, 500, "k1")
    again = gateway.refund(order.provider_ref, 500, "k1")
    assert again == first and first.state is RefundState.SUCCEEDED
    assert gateway.fetch_status(order.provider_ref).refunded_cents == 500
    assert gateway.find_refund(order.provider_ref, "k1") == first
    assert gateway.find_refund(order.provider_ref, "other") is None


def test_same_key_other_parameters_is_refused(db, admin, support, pricing, settings, gateway):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    gateway.refund(order.provider_ref, 500, "k1")
    with pytest.raises(GatewayError, match="same parameters"):
        gateway.refund(order.provider_ref, 600, "k1")
    assert gateway.fetch_status(order.provider_ref).refunded_cents == 500


def test_a_refusal_is_the_keys_answer_too(db, admin, support, pricing, settings, gateway):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    too_much = order.total_cents + 1
    with pytest.raises(GatewayError, match="refused"):
        gateway.refund(order.provider_ref, too_much, "k-too-much")
    with pytest.raises(GatewayError, match="refused"):
        gateway.refund(order.provider_ref, too_much, "k-too-much")
    assert gateway.fetch_status(order.provider_ref).refunded_cents == 0


def test_payments_honour_keys_too(db, admin, pricing, gateway):
    with db.session() as s:
        order = make_order(s, admin, make_customer(s, admin), pricing)
        request = orders._payment_request(s, order)
    one = gateway.create_payment(request, idempotency_key="pay-1")
    two = gateway.create_payment(request, idempotency_key="pay-1")
    assert one.ref == two.ref
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(SimulatedPayment)) == 1
    other = PaymentRequest(request.order_public_id, request.amount_cents + 1, "USD", request.customer_email, "x")
    with pytest.raises(GatewayError, match="same parameters"):
        gateway.create_payment(other, idempotency_key="pay-1")
    assert gateway.create_payment(request).ref != one.ref  # no key: a new payment each time


def test_the_embedded_default_gateway_honours_keys_as_production_does(db, admin, support, pricing, settings):
    from billing_core.payments import registry
    from billing_core.pricing.catalog import Method

    assert settings.stripe_api_key is None
    embedded = registry.gateway_for(Method.STRIPE, settings, db)  # no provider key: what the app uses
    order = paid_order(db, admin, support, pricing, settings, embedded)
    first = embedded.refund(order.provider_ref, 400, "k-default")
    assert registry.gateway_for(Method.STRIPE, settings, db).refund(order.provider_ref, 400, "k-default") == first
    with pytest.raises(GatewayError, match="same parameters"):
        embedded.refund(order.provider_ref, 401, "k-default")
    assert embedded.fetch_status(order.provider_ref).refunded_cents == 400


# --- timeouts, refusals, crashes and recovery ---------------------------------------------------------


class SilentGateway(SimulatedGateway):
    """Times out on refunds: before reaching the gateway, or after it refunded (the answer is lost)."""

    def __init__(self, db, *, after: bool):
        super().__init__(db)
        self.after = after

    def refund(self, ref, amount_cents, idempotency_key):
        if self.after:
            super().refund(ref, amount_cents, idempotency_key)
        raise GatewayUnreachable("The gateway did not answer in time (simulated timeout).")


@pytest.mark.parametrize("after", [False, True], ids=["lost-request", "lost-answer"])
def test_a_timeout_records_nothing_as_refunded_and_reconcile_finishes_it_once(
    db, admin, support, finance, pricing, settings, gateway, after
):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    with db.session() as s:
        done = refunds.refund_order(
            s, finance, order.public_id, SilentGateway(db, after=after), settings=settings, reason="asked", amount="30"
        )
    assert done.status is RefundStatus.REQUESTED
    assert "pending" in done.message and "refunds reconcile" in done.message
    state = books(db, order)
    assert state["refunds"] == [] and state["note_count"] == 0 and state["debit_count"] == 0
    assert state["pending"] == 1 and state["status"] is OrderStatus.PAID
    with db.session() as s:
        assert orders._customer_balance(s, order.customer_id) == order.credits
        shown = order_detail(s, finance, order.public_id)
    assert [(r.amount_cents, r.by, r.pending) for r in shown.pending_refunds] == [(3000, finance.email, True)]
    (asked,) = [e for e in shown.timeline if e.what == "Refund requested"]
    assert (asked.who, asked.reason) == (f"{finance.email} (finance)", "asked")
    assert "$30.00 asked of the gateway; pending" in asked.detail

    for _ in range(2):  # safe to run twice
        report = refunds.reconcile_refunds(db, support, settings, gateway_for=lambda *a, **k: gateway)
    assert report.rows == []
    state = books(db, order)
    assert state["gateway_refunded"] == 3000 and state["pending"] == 0
    assert_books_equal_gateway(state)
    assert state["status"] is OrderStatus.PARTIALLY_REFUNDED


class BrokenGateway(SimulatedGateway):
    """Fails as a driver or client library would: with a message that quotes a secret."""

    def find_refund(self, ref, idempotency_key):
        raise RuntimeError("connection to postgresql://billing:hunter2@db.internal/billing refused")


def test_a_refund_row_never_carries_the_text_of_an_unexpected_error(
    db, admin, support, finance, pricing, settings, gateway, caplog
):
    """The rows are shown on the Orders page and printed by the command line: the type and a sentence."""
    order = paid_order(db, admin, support, pricing, settings, gateway)
    with db.session() as s:
        refunds.refund_order(
            s, finance, order.public_id, SilentGateway(db, after=False), settings=settings, reason="a", amount="30"
        )
    report = refunds.reconcile_refunds(db, support, settings, gateway_for=lambda *a, **k: BrokenGateway(db))
    [row] = report.rows
    assert row.outcome == "error"
    assert row.message == (
        f"Unexpected error (RuntimeError) while finishing the refund of order {order.public_id}; "
        "the details are in the server log."
    )
    assert "hunter2" not in report.summary()
    assert "hunter2" in caplog.text  # kept for whoever reads the server log
    assert books(db, order)["pending"] == 1  # and nothing was finished


def test_a_refund_past_a_pending_one_is_refused_naming_it(db, admin, support, finance, pricing, settings, gateway):
    order = paid_order(db, admin, support, pricing, settings, gateway)  # $105.50
    with db.session() as s:
        refunds.refund_order(
            s, finance, order.public_id, SilentGateway(db, after=False), settings=settings, reason="a", amount="80"
        )
        with pytest.raises(BillingError) as refused:
            refunds.refund_order(s, admin, order.public_id, gateway, settings=settings, reason="b", amount="30")
    words = str(refused.value)
    assert "$25.50 still refundable" in words and "pending $80.00" in words
    assert f"a refund of $80.00 requested by {finance.email} at " in words and "is still pending" in words
    assert books(db, order)["gateway_refunded"] == 0


def test_a_refusal_is_shown_as_a_sentence_and_nothing_is_refunded(
    db, admin, support, finance, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    with db.session() as s, transaction(s):  # someone refunded most of it in the gateway's dashboard
        s.get(SimulatedPayment, order.provider_ref).refunded_cents = order.total_cents - 500
    with db.session() as s, pytest.raises(GatewayError) as refused:
        refunds.refund_order(s, finance, order.public_id, gateway, settings=settings, reason="asked", amount="20")
    assert str(refused.value).startswith("The gateway refused the refund: ")
    assert str(refused.value).endswith("Nothing was refunded.")
    state = books(db, order)
    assert state["refunds"] == [] and state["note_count"] == 0 and state["pending"] == 0
    assert state["status"] is OrderStatus.PAID
    with db.session() as s:
        (failed,) = refunds.refunds_for(s, finance, order.id)
        shown = order_detail(s, support, order.public_id)
    assert failed.status is RefundStatus.FAILED and "refused" in failed.failure_reason
    (event,) = [e for e in shown.timeline if e.what == "Refund failed"]
    assert "refused" in event.detail and event.reason == "asked" and finance.email in event.who


_KILLED_AFTER_THE_GATEWAY = """
import os, signal, sys
from billing_core.orders import refunds
from billing_core.access.roles import Actor, Role
from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.payments.simulated import SimulatedGateway

class DiesAfterRefunding(SimulatedGateway):
    def refund(self, *args):
        super().refund(*args)
        os.kill(os.getpid(), signal.SIGKILL)

url, order = sys.argv[1], sys.argv[2]
db = Database(url)
with db.session() as s:
    refunds.refund_order(
        s, Actor("fay@company.test", Role.FINANCE), order, DiesAfterRefunding(db),
        settings=Settings(database_url=url), reason="killed mid-way", amount="25",
    )
"""


def test_a_process_killed_after_the_gateway_refunded_is_finished_by_reconcile(
    db, admin, support, finance, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    script = textwrap.dedent(_KILLED_AFTER_THE_GATEWAY)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, db.url, order.public_id], env=env, cwd=ROOT, capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    state = books(db, order)
    assert state["gateway_refunded"] == 2500 and state["refunds"] == [] and state["pending"] == 1

    env = {k: v for k, v in env.items() if not k.startswith("STRIPE_")} | {
        "DATABASE_URL": db.url,
        "BILLING_SECRETS_FILE": str(ROOT / "no-such-secrets.toml"),
    }  # no Stripe key: the embedded simulated gateway, as in production without one
    command = [sys.executable, "-m", "billing_core", "refunds", "reconcile", "--actor", "ops@company.test"]
    for expected in ("Pending refunds checked: 1 (1 succeeded).", "Pending refunds checked: 0."):  # twice: safe
        run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and expected in run.stdout, run.stdout + run.stderr[-2000:]
    state = books(db, order)
    assert state["gateway_refunded"] == 2500 and len(state["refunds"]) == 1 and state["pending"] == 0
    assert_books_equal_gateway(state)
    assert state["status"] is OrderStatus.PARTIALLY_REFUNDED


class HeldGateway(SimulatedGateway):
    """Holds a refund after it is requested and before it reaches the gateway, until released."""

    def __init__(self, db):
        super().__init__(db)
        self.reached, self.release = threading.Event(), threading.Event()

    def refund(self, *args):
        self.reached.set()
        assert self.release.wait(60)
        return super().refund(*args)


def test_reconcile_racing_a_live_refund_pays_it_once(db, admin, support, finance, pricing, settings, gateway):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    held = HeldGateway(db)
    live: list = []

    def refund():
        with db.session() as s:
            live.append(
                refunds.refund_order(s, finance, order.public_id, held, settings=settings, reason="r", amount="12")
            )

    thread = threading.Thread(target=refund)
    thread.start()
    assert held.reached.wait(60)
    report = refunds.reconcile_refunds(db, support, settings, gateway_for=lambda *a, **k: gateway)
    held.release.set()
    thread.join(60)

    assert [r.outcome for r in report.rows] == ["succeeded"]
    assert live[0].repeated and live[0].status is RefundStatus.SUCCEEDED
    state = books(db, order)
    assert state["gateway_refunded"] == 1200 and len(state["refunds"]) == 1
    assert_books_equal_gateway(state)


def test_bulk_reconcile_finishes_pending_refunds_too(db, admin, support, finance, pricing, settings, gateway):
    from datetime import timedelta

    from billing_core.core.models import utcnow
    from billing_core.reconcile import stuck as reconcile

    order = paid_order(db, admin, support, pricing, settings, gateway)
    with db.session() as s:
        refunds.refund_order(
            s, finance, order.public_id, SilentGateway(db, after=True), settings=settings, reason="r", amount="5"
        )
    now = utcnow()
    report = reconcile.reconcile(
        db, support, settings, since=now - timedelta(days=1), until=now, gateway_for=lambda *a, **k: gateway
    )
    assert report.refunds is not None and [r.outcome for r in report.refunds.rows] == ["succeeded"]
    assert "Pending refunds checked: 1" in report.summary()
    assert_books_equal_gateway(books(db, order))


def test_the_same_refund_asked_again_after_it_succeeded_is_the_first_one(
    db, admin, support, finance, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    with db.session() as s:
        first = refunds.refund_order(
            s, finance, order.public_id, gateway, settings=settings, reason="r", amount="10", seen_cents=0
        )
        again = refunds.refund_order(
            s, finance, order.public_id, gateway, settings=settings, reason="r", amount="10", seen_cents=0
        )
        second = refunds.refund_order(s, finance, order.public_id, gateway, settings=settings, reason="r", amount="10")
    assert not first.repeated and again.repeated and again.credit_note_number == first.credit_note_number
    assert "Nothing more was refunded" in again.message
    assert not second.repeated  # asked having seen the first one: a second refund
    assert books(db, order)["gateway_refunded"] == 2000


class RefusesOnce(SimulatedGateway):
    """Refuses the first refund asked of it (as a gateway may), then behaves."""

    refused = False

    def refund(self, ref, amount_cents, idempotency_key):
        if not RefusesOnce.refused:
            RefusesOnce.refused = True
            raise GatewayError("The gateway refused the refund: try again later (simulated).")
        return super().refund(ref, amount_cents, idempotency_key)


def test_a_stale_tab_repeating_a_refund_that_succeeded_gets_it_back_even_after_another_refund_failed(
    db, admin, support, finance, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    with db.session() as s:
        seen = refunds.plan_refund(s, finance, order.public_id, "10").committed_cents  # both tabs show this
        first = refunds.refund_order(
            s, finance, order.public_id, gateway, settings=settings, reason="tab 1", amount="10", seen_cents=seen
        )
        RefusesOnce.refused = False
        with pytest.raises(GatewayError):  # someone else's refund is refused: one failed refund on the order
            refunds.refund_order(s, admin, order.public_id, RefusesOnce(db), settings=settings, reason="x", amount="5")
        stale = refunds.refund_order(
            s, finance, order.public_id, gateway, settings=settings, reason="tab 2", amount="10", seen_cents=seen
        )
    assert stale.repeated and stale.credit_note_number == first.credit_note_number
    state = books(db, order)
    assert state["gateway_refunded"] == 1000 and len(state["refunds"]) == 1
    assert_books_equal_gateway(state)


def test_the_same_request_asked_again_after_the_gateway_refused_it_is_a_new_attempt(
    db, admin, support, finance, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    RefusesOnce.refused = False
    with db.session() as s:
        with pytest.raises(GatewayError, match="try again later"):
            refunds.refund_order(
                s, finance, order.public_id, RefusesOnce(db), settings=settings, reason="r", amount="10", seen_cents=0
            )
        again = refunds.refund_order(
            s, finance, order.public_id, RefusesOnce(db), settings=settings, reason="r", amount="10", seen_cents=0
        )
        twice = refunds.refund_order(
            s, finance, order.public_id, gateway, settings=settings, reason="r", amount="10", seen_cents=0
        )
        kept = refunds.refunds_for(s, finance, order.id)
    assert not again.repeated and again.status is RefundStatus.SUCCEEDED and twice.repeated
    assert [r.status for r in kept] == [RefundStatus.FAILED, RefundStatus.SUCCEEDED]
    assert kept[0].idempotency_key != kept[1].idempotency_key
    state = books(db, order)
    assert state["gateway_refunded"] == 1000
    assert_books_equal_gateway(state)


def test_the_credit_note_tells_the_customer_what_it_is_and_the_reason_stays_in_the_audit_log(
    db, admin, support, finance, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway)
    reason = "Half refund requested by customer, ticket 1234"
    with db.session() as s:
        result = refunds.refund_order(
            s, finance, order.public_id, gateway, settings=settings, reason=reason, amount="50"
        )
    with db.session() as s:
        note = s.scalars(select(Invoice).where(Invoice.number == result.credit_note_number)).one()
        invoice = s.get(Invoice, note.refers_to_id)
        reasons = s.scalars(select(AuditEvent.reason).where(AuditEvent.action.like("%refund%"))).all()
    assert [line["description"] for line in note.lines] == [f"Refund of invoice {invoice.number}"]
    assert reason not in str(note.lines) and reason in reasons


def test_plan_and_list_check_the_role(db, admin, support, finance, analyst, pricing, settings, gateway):
    from billing_core.core.errors import PermissionDenied

    order = paid_order(db, admin, support, pricing, settings, gateway)
    with db.session() as s:
        with pytest.raises(PermissionDenied):
            refunds.plan_refund(s, support, order.public_id, "10")
        with pytest.raises(PermissionDenied):
            refunds.refunds_for(s, analyst, order.id)
        assert refunds.plan_refund(s, finance, order.public_id, None).amount_cents == order.total_cents
        assert refunds.refunds_for(s, support, order.id) == []


def test_refunds_reconcile_command_finishes_pending_refunds(
    db, admin, support, finance, pricing, settings, gateway, monkeypatch, capsys
):
    from billing_core.cli import main as cli

    order = paid_order(db, admin, support, pricing, settings, gateway)
    with db.session() as s:
        refunds.refund_order(
            s, finance, order.public_id, SilentGateway(db, after=True), settings=settings, reason="r", amount="7"
        )
    for var in ("STRIPE_API_KEY", "STRIPE_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", db.url)
    assert cli.main(["refunds", "reconcile", "--actor", "ops@company.test", "--database-url", db.url]) == 0
    assert "Pending refunds checked: 1 (1 succeeded)." in capsys.readouterr().out
    assert cli.main(["refunds", "reconcile", "--database-url", db.url]) == 0
    assert_books_equal_gateway(books(db, order))


# --- against a real HTTP peer: localstripe -------------------------------------------------------------


class LosesStripesAnswer:
    """Stripe refunds, then the answer is lost on the way back (a timeout after the write)."""

    def __init__(self, stripe_gateway):
        self.inner, self.name = stripe_gateway, stripe_gateway.name

    def refund(self, ref, amount_cents, idempotency_key):
        self.inner.refund(ref, amount_cents, idempotency_key)
        raise GatewayUnreachable("Stripe could not be reached to refund the payment (network error or timeout).")


def test_stripe_refund_end_to_end_and_a_lost_answer_found_again_by_its_key(
    db, admin, support, finance, pricing, settings, stripe_gateway, localstripe_url
):
    """localstripe ignores idempotency keys (a repeated create refunds again), so this test proves that
    reconcile finds a refund whose answer was lost by the key in its metadata, listing the PaymentIntent's
    refunds, and does not send it again; that Stripe itself replays a key is Stripe's documented behaviour."""
    from tests.conftest import pay_at_stripe

    with db.session() as s:
        customer = make_customer(s, admin)
        order = make_order(s, admin, customer, pricing, amount="100")
        payment = stripe_gateway.create_payment(orders._payment_request(s, order))
        orders.attach_payment(s, admin, order.id, payment)
        pay_at_stripe(localstripe_url, payment.ref)
        payment_ops.complete_from_gateway(s, support, order.id, stripe_gateway, settings=settings, reason="paid")

        done = refunds.refund_order(
            s, finance, order.public_id, stripe_gateway, settings=settings, reason="part", amount="20"
        )
        assert done.status is RefundStatus.SUCCEEDED and done.order_status is OrderStatus.PARTIALLY_REFUNDED
        (first,) = refunds.refunds_for(s, finance, order.id)
        assert first.gateway_refund_id.startswith("re_")
        found = stripe_gateway.find_refund(payment.ref, first.idempotency_key)
        assert (found.refund_id, found.amount_cents, found.state) == (
            first.gateway_refund_id,
            2000,
            RefundState.SUCCEEDED,
        )

        lost = refunds.refund_order(
            s, finance, order.public_id, LosesStripesAnswer(stripe_gateway), settings=settings, reason="more",
            amount="30",
        )  # fmt: skip
        assert lost.status is RefundStatus.REQUESTED

    for _ in range(2):
        report = refunds.reconcile_refunds(db, support, settings, gateway_for=lambda *a, **k: stripe_gateway)
    assert report.rows == []
    at_stripe = stripe_gateway.client.v1.refunds.list(params={"payment_intent": payment.ref}).data
    assert sorted(r.amount for r in at_stripe) == [2000, 3000]  # nothing sent twice
    with db.session() as s:
        assert [(r.amount_cents, r.status) for r in refunds.refunds_for(s, finance, order.id)] == [
            (2000, RefundStatus.SUCCEEDED),
            (3000, RefundStatus.SUCCEEDED),
        ]
        assert orders._get_order(s, order.id).status is OrderStatus.PARTIALLY_REFUNDED


def test_reconcile_from_stripe_events_finishes_pending_refunds_too(
    db, admin, support, finance, pricing, settings, stripe_gateway, localstripe_url
):
    """The cron'd ``reconcile --events`` is a bulk reconcile too: it finishes a refund whose answer was lost."""
    from billing_core.reconcile import stuck as reconcile
    from tests.conftest import pay_at_stripe

    with db.session() as s:
        order = make_order(s, admin, make_customer(s, admin), pricing, amount="100")
        payment = stripe_gateway.create_payment(orders._payment_request(s, order))
        orders.attach_payment(s, admin, order.id, payment)
        pay_at_stripe(localstripe_url, payment.ref)
        payment_ops.complete_from_gateway(s, support, order.id, stripe_gateway, settings=settings, reason="paid")
        lost = refunds.refund_order(
            s, finance, order.public_id, LosesStripesAnswer(stripe_gateway), settings=settings, reason="r",
            amount="15",
        )  # fmt: skip
        assert lost.status is RefundStatus.REQUESTED

    report = reconcile.reconcile_from_events(
        db, support, settings, stripe_gateway, gateway_for=lambda *a, **k: stripe_gateway
    )
    assert [(r.order, r.outcome) for r in report.refunds.rows] == [(order.public_id, "succeeded")]
    assert "Pending refunds checked: 1 (1 succeeded)." in report.summary()
    at_stripe = stripe_gateway.client.v1.refunds.list(params={"payment_intent": payment.ref}).data
    assert [r.amount for r in at_stripe] == [1500]
    with db.session() as s:
        assert [(r.amount_cents, r.status) for r in refunds.refunds_for(s, finance, order.id)] == [
            (1500, RefundStatus.SUCCEEDED)
        ]
        assert orders._get_order(s, order.id).status is OrderStatus.PARTIALLY_REFUNDED
