import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from billing_core.access.roles import Actor, Role
from billing_core.core.errors import BillingError, InvalidAmount, PaymentMismatch, PermissionDenied, StateConflict
from billing_core.core.models import (
    AuditEvent,
    Invoice,
    InvoiceSeries,
    LedgerEntry,
    Order,
    OrderStatus,
    utcnow,
)
from billing_core.orders import lifecycle as orders
from billing_core.payments import PaymentState
from billing_core.pricing.catalog import PlanId, quote
from tests.helpers import make_customer, make_order, paid


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_order_is_priced_by_the_quote_not_the_caller(session, admin, pricing):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing, amount="$1,500.00", method="stripe")
    expected = quote(150000, "stripe", pricing)
    assert (order.plan, order.amount_cents, order.fee_cents, order.total_cents, order.credits) == (
        PlanId.MAX,
        150000,
        expected.fee_cents,
        expected.total_cents,
        expected.credits,
    )
    assert order.status is OrderStatus.PENDING
    assert order.pricing_version == pricing.version
    assert order.expires_at - order.created_at == orders.ORDER_TTL


def test_invalid_amount_creates_nothing(session, admin, pricing):
    customer = make_customer(session, admin)
    with pytest.raises(InvalidAmount):
        make_order(session, admin, customer, pricing, amount="4.99")
    assert count(session, Order) == 0


def test_completion_grants_credits_issues_invoice_and_audits(session, admin, support, pricing, settings):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing)
    done = orders.complete_order(session, support, order.id, settings=settings, reason="ticket 42", payment=paid(order))

    year = utcnow().year
    assert done.invoice_number == f"INV-{year}-000001"
    assert done.credits == 50000 and done.balance == 50000
    session.expire_all()
    order = orders._get_order(session, order.public_id)
    assert order.status is OrderStatus.PAID
    assert order.completed_by == support.email and order.paid_amount_cents == order.total_cents
    invoice = orders._invoice_for(session, order.id)
    assert invoice.total_cents == order.total_cents and invoice.subtotal_cents == 50000
    assert invoice.buyer["name"] == "Zoë Müller" and invoice.seller["name"] == settings.company.name
    assert not invoice.sandbox
    events = [e for e in session.scalars(select(AuditEvent)) if e.action == "order.complete"]
    assert len(events) == 1
    assert events[0].actor_email == support.email and events[0].reason == "ticket 42"
    assert events[0].before["status"] == "pending" and events[0].after["status"] == "paid"


def test_second_completion_of_same_order_grants_no_credits(session, admin, support, pricing, settings):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing)
    orders.complete_order(session, support, order.id, settings=settings, reason="first", payment=paid(order))
    with pytest.raises(StateConflict, match="already paid"):
        orders.complete_order(session, support, order.id, settings=settings, reason="again", payment=paid(order))
    assert orders._customer_balance(session, customer.id) == 50000
    assert count(session, Invoice) == 1
    assert count(session, LedgerEntry) == 1


def test_ledger_refuses_a_second_topup_entry_for_an_order(session, admin, support, pricing, settings):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing)
    orders.complete_order(session, support, order.id, settings=settings, reason="ok", payment=paid(order))
    # Even if the status check were bypassed, the database itself refuses a second top-up entry.
    with session.begin():
        session.execute(update(Order).where(Order.id == order.id).values(status=OrderStatus.PENDING))
    with pytest.raises(StateConflict, match="already been credited"):
        orders.complete_order(session, support, order.id, settings=settings, reason="again", payment=paid(order))
    assert orders._customer_balance(session, customer.id) == 50000
    assert count(session, Invoice) == 1
    assert session.scalar(select(InvoiceSeries.next_number)) == 2  # the number taken was rolled back


@pytest.mark.parametrize(
    ("report", "message"),
    [
        (lambda o: paid(o, amount_cents=o.total_cents - 1), "is for \\$527.49"),
        (lambda o: paid(o, currency="EUR"), "made in EUR"),
        (lambda o: paid(o, state=PaymentState.PENDING), "is pending, not succeeded"),
        (lambda o: paid(o, state=PaymentState.FAILED), "is failed, not succeeded"),
    ],
)
def test_gateway_disagreement_changes_nothing(session, admin, support, pricing, settings, report, message):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing)
    with pytest.raises(PaymentMismatch, match=message):
        orders.complete_order(session, support, order.id, settings=settings, reason="x", payment=report(order))
    session.expire_all()
    assert orders._get_order(session, order.id).status is OrderStatus.PENDING
    assert count(session, LedgerEntry) == 0 and count(session, Invoice) == 0
    assert count(session, AuditEvent, AuditEvent.action == "order.complete") == 0


def test_payment_of_another_order_is_refused(session, admin, support, pricing, settings):
    customer = make_customer(session, admin)
    first = make_order(session, admin, customer, pricing)
    second = make_order(session, admin, customer, pricing)
    with pytest.raises(PaymentMismatch, match="belongs to order"):
        orders.complete_order(session, support, second.id, settings=settings, reason="x", payment=paid(first))


def test_expired_order_paid_at_gateway_can_still_be_completed(session, admin, support, pricing, settings):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing)
    with session.begin():
        session.execute(update(Order).where(Order.id == order.id).values(status=OrderStatus.EXPIRED))
    done = orders.complete_order(session, support, order.id, settings=settings, reason="late", payment=paid(order))
    assert done.balance == 50000


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (OrderStatus.FAILED, "is failed"),
        (OrderStatus.CANCELLED, "is cancelled"),
        (OrderStatus.REFUNDED, "is already paid.*refunded since"),  # one answer on every completion path
    ],
)
def test_closed_orders_cannot_be_completed(session, admin, support, pricing, settings, status, says):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing)
    with session.begin():
        session.execute(update(Order).where(Order.id == order.id).values(status=status))
    with pytest.raises(StateConflict, match=says):
        orders.complete_order(session, support, order.id, settings=settings, reason="x", payment=paid(order))


def test_manual_completion_needs_finance_and_a_reference(session, admin, support, finance, pricing, settings):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing, method="alipay")
    with pytest.raises(PermissionDenied, match="support role may not order.complete_manual"):
        orders.complete_order(session, support, order.id, settings=settings, reason="x", manual_reference="2026")
    with pytest.raises(BillingError, match="needs the gateway's payment or a provider reference"):
        orders.complete_order(session, finance, order.id, settings=settings, reason="x", manual_reference="  ")
    with pytest.raises(BillingError, match="Give a reason"):
        orders.complete_order(session, finance, order.id, settings=settings, reason=" ", manual_reference="T1")
    done = orders.complete_order(
        session, finance, order.id, settings=settings, reason="bank statement", manual_reference="2026112722001"
    )
    assert orders._get_order(session, order.id).provider_ref == "2026112722001"
    assert done.credits == order.credits


def test_unknown_order_is_not_found(session, support, settings):
    with pytest.raises(BillingError, match="no order 'ord_missing'"):
        orders.complete_order(session, support, "ord_missing", settings=settings, reason="x", manual_reference="r")


def test_sandbox_orders_use_their_own_series_and_never_the_real_one(session, admin, analyst, pricing, settings):
    real = make_customer(session, admin, email="real@example.com")
    real_order = make_order(session, admin, real, pricing)
    sandbox = make_customer(session, analyst, email="sandbox@example.com", sandbox=True)
    sandbox_order = make_order(session, analyst, sandbox, pricing)
    assert sandbox_order.sandbox
    first = orders.complete_order(
        session, analyst, sandbox_order.id, settings=settings, reason="sim", payment=paid(sandbox_order)
    )
    second = orders.complete_order(
        session, admin, real_order.id, settings=settings, reason="ok", payment=paid(real_order)
    )
    year = utcnow().year
    assert first.invoice_number == f"SBX-{year}-000001"
    assert second.invoice_number == f"INV-{year}-000001"


def test_analyst_may_run_sandbox_but_not_touch_real_orders(session, admin, analyst, pricing, settings):
    customer = make_customer(session, admin)
    with pytest.raises(PermissionDenied):
        make_order(session, analyst, customer, pricing)
    order = make_order(session, admin, customer, pricing)
    with pytest.raises(PermissionDenied):
        orders.complete_order(session, analyst, order.id, settings=settings, reason="x", payment=paid(order))
    with pytest.raises(PermissionDenied):
        make_customer(session, analyst, email="new@example.com")


def test_failed_payment_marks_order_failed_with_audit(session, admin, support, pricing):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing)
    orders.fail_order(session, support, order.id, payment=paid(order, state=PaymentState.FAILED), reason="declined")
    assert orders._get_order(session, order.id).status is OrderStatus.FAILED
    assert count(session, AuditEvent, AuditEvent.action == "order.fail") == 1
    with pytest.raises(PaymentMismatch):
        orders.fail_order(session, support, order.id, payment=paid(order), reason="x")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not-an-email"}, "valid email"),
        ({"name": "  "}, "customer's name"),
        ({"country": "Germany"}, "two-letter"),
    ],
)
def test_bad_customer_details_are_refused(session, admin, fields, message):
    values = {"email": "a@example.com", "name": "A", "country": "DE"} | fields
    with pytest.raises(BillingError, match=message):
        orders.create_customer(session, admin, **values)


def test_duplicate_email_is_refused_case_insensitively(session, admin):
    make_customer(session, admin, email="Zoe@Example.com")
    with pytest.raises(StateConflict, match="already exists"):
        make_customer(session, admin, email="zoe@example.COM")


# --- exactly once under concurrency -------------------------------------------------------------


def _max_connections_in_use(db):
    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def out(*_):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])

    def back(*_):
        with lock:
            state["now"] -= 1

    event.listen(db.engine, "checkout", out)
    event.listen(db.engine, "checkin", back)
    return state


def test_sixteen_agents_completing_one_order_grant_credits_once(db, admin, pricing, settings):
    with db.session() as s:
        customer = make_customer(s, admin)
        order = make_order(s, admin, customer, pricing)
    proof = paid(order)
    agents = [Actor(f"agent{i}@company.test", Role.SUPPORT) for i in range(16)]
    start = threading.Barrier(16)

    def attempt(actor):
        with db.session() as s:
            start.wait()
            try:
                return orders.complete_order(s, actor, order.id, settings=settings, reason="ticket", payment=proof)
            except StateConflict:
                return None

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, agents))

    assert sum(r is not None for r in results) == 1
    with db.session() as s:
        assert count(s, LedgerEntry) == 1
        assert count(s, Invoice) == 1
        assert orders._customer_balance(s, customer.id) == order.credits
        assert s.scalar(select(InvoiceSeries.next_number)) == 2
        assert count(s, AuditEvent, AuditEvent.action == "order.complete") == 1


def test_eight_workers_number_500_invoices_without_gap_or_repeat(db, admin, pricing, settings):
    with db.session() as s:
        customers = [make_customer(s, admin, email=f"c{i}@example.com") for i in range(20)]
        pending = [make_order(s, admin, customers[i % 20], pricing, amount="20") for i in range(500)]
    usage = _max_connections_in_use(db)
    start = threading.Barrier(8)

    def worker(batch):
        start.wait()
        with db.session() as s:
            return [
                orders.complete_order(s, admin, o.id, settings=settings, reason="bulk", payment=paid(o)).invoice_number
                for o in batch
            ]

    with ThreadPoolExecutor(8) as pool:
        numbers = [n for batch in pool.map(worker, [pending[i::8] for i in range(8)]) for n in batch]

    year = utcnow().year
    assert sorted(numbers) == [f"INV-{year}-{i:06d}" for i in range(1, 501)]
    with db.session() as s:
        sequences = sorted(s.scalars(select(Invoice.sequence)))
        assert sequences == list(range(1, 501))
        assert s.scalar(select(InvoiceSeries.next_number)) == 501
        assert count(s, LedgerEntry) == 500
    assert usage["max"] >= 4, "the workers did not hold database connections at the same time"


def test_completion_after_year_end_starts_a_new_series(session, admin, support, pricing, settings, monkeypatch):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing)
    later = utcnow().replace(year=utcnow().year + 1, month=1, day=1) + timedelta(hours=1)
    monkeypatch.setattr(orders, "utcnow", lambda: later)
    done = orders.complete_order(session, support, order.id, settings=settings, reason="x", payment=paid(order))
    assert done.invoice_number == f"INV-{later.year}-000001"
