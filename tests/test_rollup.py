"""The revenue rollup: kept exact by every creation, payment and refund, and equal to a rebuild."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billing_core.access.roles import Actor, Role
from billing_core.core.errors import PermissionDenied
from billing_core.core.models import (
    AuditEvent,
    Customer,
    CustomerMonthly,
    CustomerTotal,
    Order,
    Refund,
    RefundStatus,
    RevenueDaily,
    RevenueDailyCountry,
    RevenueState,
)
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.payments.simulated import Outcome, SimulatedGateway
from billing_core.revenue import rollup
from tests.helpers import make_customer

ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai")


class Clock:
    """Stands in for utcnow() in orders and refunds, so payments and refunds land on chosen instants."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    monkeypatch.setattr(orders, "utcnow", clock)
    monkeypatch.setattr(refunds, "utcnow", clock)
    return clock


@pytest.fixture
def gateway(db):
    return SimulatedGateway(db)


def open_order(session, admin, customer, pricing, gateway, at: datetime, amount="500", method="stripe") -> Order:
    order = orders.create_order(
        session, admin, customer_id=customer.id, amount=amount, method=method, pricing=pricing, now=at
    )
    payment = gateway.create_payment(orders._payment_request(session, order))
    orders.attach_payment(session, admin, order.id, payment)
    return orders._get_order(session, order.id)


def pay(session, support, order, gateway, settings, clock, at: datetime) -> None:
    gateway.settle(order.provider_ref, Outcome.SUCCEED)
    clock.now = at
    orders.complete_order(
        session, support, order.id, settings=settings, reason="paid", payment=gateway.fetch_status(order.provider_ref)
    )


def refund(session, finance, order, gateway, settings, clock, at: datetime, amount=None) -> None:
    clock.now = at
    # Every refund is sent at once here (none waits for approval), so Max orders are refunded whole too.
    sent_at_once = replace(settings, credits=replace(settings.credits, refund_approval_above_cents=10**12))
    done = refunds.refund_order(
        session, finance, order.id, gateway, settings=sent_at_once, reason="asked", amount=amount, override=True
    )
    assert isinstance(done, refunds.Refunded)


def recomputed(session) -> tuple[dict, dict]:
    """The rollup's definition, applied in Python to every order and refund."""
    country = {c.id: c.country for c in session.scalars(select(Customer))}
    all_orders = [o for o in session.scalars(select(Order)) if not o.sandbox]
    paid = sorted((o for o in all_orders if o.paid_at), key=lambda o: (o.paid_at, o.id))
    first_paid: dict[int, Order] = {}
    for o in paid:
        first_paid.setdefault(o.customer_id, o)
    kind_paid = {o.id: "new" if first_paid[o.customer_id].id == o.id else "returning" for o in paid}
    daily: dict[tuple, Counter] = defaultdict(Counter)
    monthly: dict[tuple, Counter] = defaultdict(Counter)

    def add(moment, o, kind, **measures):
        for tz in ZONES:
            key = (tz, country[o.customer_id], rollup.local_day(moment, tz), o.plan.value, o.method.value, kind)
            daily[key].update(measures)

    for o in all_orders:
        before = first_paid.get(o.customer_id)
        add(o.created_at, o, "returning" if before and before.paid_at < o.created_at else "new", created_count=1)
    for o in paid:
        add(
            o.paid_at,
            o,
            kind_paid[o.id],
            paid_count=1,
            amount_cents=o.amount_cents,
            fee_cents=o.fee_cents,
            total_cents=o.total_cents,
            credits=o.credits,
        )
        monthly[(o.customer_id, rollup.month_of(o.paid_at))].update(
            paid_count=1, total_cents=o.total_cents, amount_cents=o.amount_cents
        )
    by_id = {o.id: o for o in all_orders}
    for r in session.scalars(select(Refund).where(Refund.status == RefundStatus.SUCCEEDED)):
        if r.order_id in by_id:
            o = by_id[r.order_id]
            add(r.refunded_at, o, kind_paid[o.id], refund_count=1, refunded_cents=r.amount_cents)
    return {k: dict(v) for k, v in daily.items()}, {k: dict(v) for k, v in monthly.items()}


def lifetime(monthly: dict) -> dict:
    """Per customer, the months' measures added up."""
    out: dict[int, Counter] = defaultdict(Counter)
    for (customer_id, _month), measures in monthly.items():
        out[customer_id].update(measures)
    return {k: dict(v) for k, v in out.items()}


def stored(session) -> tuple[dict, dict, dict, dict]:
    session.expire_all()

    def measures(row, names):
        return {m: getattr(row, m) for m in names if getattr(row, m)}

    country = {
        (r.tz, r.country, r.day, r.plan.value, r.method.value, r.kind.value): measures(r, rollup.MEASURES)
        for r in session.scalars(select(RevenueDailyCountry))
    }
    daily = {
        (r.tz, r.day, r.plan.value, r.method.value, r.kind.value): measures(r, rollup.MEASURES)
        for r in session.scalars(select(RevenueDaily))
    }
    monthly = {
        (r.customer_id, r.month): measures(r, rollup.MONTHLY_MEASURES) for r in session.scalars(select(CustomerMonthly))
    }
    totals = {r.customer_id: measures(r, rollup.MONTHLY_MEASURES) for r in session.scalars(select(CustomerTotal))}
    return country, daily, monthly, totals


def without_country(by_country: dict) -> dict:
    out: dict[tuple, Counter] = defaultdict(Counter)
    for (tz, _country, *rest), measures in by_country.items():
        out[(tz, *rest)].update(measures)
    return {k: dict(v) for k, v in out.items()}


@pytest.fixture
def random_history(session, admin, support, finance, pricing, settings, gateway, clock):
    """A seeded random mix of customers, creations, payments, partial and full refunds, and sandbox runs."""
    rng = random.Random(20261127)
    customers = [
        make_customer(session, admin, email=f"c{i}@example.com", country=rng.choice(["DE", "US", "CN"]))
        for i in range(6)
    ]
    sandbox = make_customer(session, admin, email="sb@example.com", sandbox=True)
    start = datetime(2026, 3, 7, 20, tzinfo=UTC)
    paid_orders: list[Order] = []
    for step in range(40):
        at = start + timedelta(hours=step * 5, minutes=rng.randrange(60))
        customer = rng.choice(customers)
        amount = rng.choice(["20", "100", "500", "1500", "37.50"])
        method = rng.choice(["stripe", "airwallex", "alipay"])
        order = open_order(session, admin, customer, pricing, gateway, at, amount, method)
        if rng.random() < 0.75:
            pay(session, support, order, gateway, settings, clock, at + timedelta(minutes=rng.randrange(1, 600)))
            paid_orders.append(order)
        if paid_orders and rng.random() < 0.2:
            victim = rng.choice(paid_orders)
            victim = orders._get_order(session, victim.id)
            if victim.status.value in ("paid", "partially_refunded"):
                partial = rng.random() < 0.5 and victim.status.value == "paid"
                later = max(clock.now, victim.paid_at) + timedelta(hours=rng.randrange(1, 48))
                refund(session, finance, victim, gateway, settings, clock, later, "5.00" if partial else None)
    order = open_order(session, admin, sandbox, pricing, gateway, start)
    pay(session, admin, order, gateway, settings, clock, start + timedelta(hours=1))
    return session


def test_incremental_rollup_equals_a_recomputation_from_orders(random_history):
    session = random_history
    expected_country, expected_monthly = recomputed(session)
    country, daily, monthly, totals = stored(session)
    assert country == expected_country
    assert daily == without_country(expected_country)
    assert monthly == expected_monthly
    assert totals == lifetime(expected_monthly)
    assert len(totals) > 1
    assert sum(m.get("refund_count", 0) for m in daily.values()) > 0  # the mix did refund


def test_rebuild_equals_incremental(random_history, db, admin):
    session = random_history
    before = stored(session)
    version = rollup.version(session)
    session.rollback()
    rebuilt = rollup.rebuild(db, admin)
    assert rebuilt.timezones == ZONES
    assert stored(session) == before
    assert rollup.version(session) > version


def test_sandbox_orders_never_count(session, admin, support, finance, pricing, settings, gateway, clock, db):
    customer = make_customer(session, admin, email="sb@example.com", sandbox=True)
    order = open_order(session, admin, customer, pricing, gateway, datetime(2026, 3, 2, tzinfo=UTC))
    pay(session, admin, order, gateway, settings, clock, datetime(2026, 3, 2, 1, tzinfo=UTC))
    refund(session, admin, orders._get_order(session, order.id), gateway, settings, clock, clock.now)
    assert stored(session) == ({}, {}, {}, {})
    session.rollback()
    rollup.rebuild(db, admin)
    assert stored(session) == ({}, {}, {}, {})


@pytest.mark.parametrize(
    ("paid_at", "zone", "day"),
    [
        # Berlin moved to summer time at 01:00 UTC on 29 March 2026: 22:30 UTC that evening is 00:30 next day.
        (datetime(2026, 3, 29, 22, 30, tzinfo=UTC), "Europe/Berlin", date(2026, 3, 30)),
        (datetime(2026, 3, 28, 22, 30, tzinfo=UTC), "Europe/Berlin", date(2026, 3, 28)),
        # New York moved to summer time on 8 March 2026: 04:30 UTC on the 9th is 00:30 local on the 9th.
        (datetime(2026, 3, 9, 4, 30, tzinfo=UTC), "America/New_York", date(2026, 3, 9)),
        (datetime(2026, 3, 8, 4, 30, tzinfo=UTC), "America/New_York", date(2026, 3, 7)),
        (datetime(2026, 3, 9, 15, 59, 59, 999999, tzinfo=UTC), "Asia/Shanghai", date(2026, 3, 9)),
        (datetime(2026, 3, 9, 16, 0, tzinfo=UTC), "Asia/Shanghai", date(2026, 3, 10)),
    ],
)
def test_local_days_are_exact_around_midnight(
    session, admin, support, pricing, settings, gateway, clock, db, paid_at, zone, day
):
    customer = make_customer(session, admin)
    order = open_order(session, admin, customer, pricing, gateway, paid_at - timedelta(seconds=1))
    pay(session, support, order, gateway, settings, clock, paid_at)

    def paid_days():
        session.expire_all()
        rows = session.scalars(select(RevenueDaily).where(RevenueDaily.tz == zone, RevenueDaily.paid_count > 0))
        return [r.day for r in rows]

    assert paid_days() == [day]
    session.rollback()
    rollup.rebuild(db, admin)
    assert paid_days() == [day]


def test_first_paid_order_is_new_and_later_ones_returning(session, admin, support, pricing, settings, gateway, clock):
    customer = make_customer(session, admin)
    first_at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    first = open_order(session, admin, customer, pricing, gateway, first_at)
    pay(session, support, first, gateway, settings, clock, first_at + timedelta(minutes=5))
    second = open_order(session, admin, customer, pricing, gateway, first_at + timedelta(hours=1))
    pay(session, support, second, gateway, settings, clock, first_at + timedelta(hours=2))
    session.expire_all()
    rows = session.scalars(select(RevenueDaily).where(RevenueDaily.tz == "UTC")).all()
    assert {(r.kind.value, r.created_count, r.paid_count) for r in rows} == {("new", 1, 1), ("returning", 1, 1)}


def test_ensure_built_rebuilds_once_and_for_changed_time_zones(session, admin, pricing, db):
    customer = make_customer(session, admin)
    orders.create_order(session, admin, customer_id=customer.id, amount="20", method="stripe", pricing=pricing)
    session.rollback()
    assert rollup.ensure_built(db, admin, ZONES) is not None
    assert rollup.ensure_built(db, admin, ZONES) is None
    assert rollup.ensure_built(db, admin, ("UTC", "Asia/Tokyo")) is not None
    assert rollup.kept_timezones(session) == ("UTC", "Asia/Tokyo")
    zones = {r.tz for r in session.scalars(select(RevenueDaily))}
    assert zones == {"UTC", "Asia/Tokyo"}


@pytest.mark.parametrize("role", list(Role))
def test_rebuild_checks_the_role_and_audits(db, role):
    actor = Actor(f"{role.value}@company.test", role)
    with db.session() as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
    if role in (Role.ANALYST, Role.FINANCE, Role.ADMIN):
        rollup.rebuild(db, actor, ("UTC",))
        with db.session() as s:
            event = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
            assert (event.action, event.actor_email) == ("revenue.rebuild", actor.email)
            assert rollup.kept_timezones(s) == ("UTC",)
    else:
        with pytest.raises(PermissionDenied):
            rollup.rebuild(db, actor, ("UTC",))
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(AuditEvent)) == before
            assert s.get(RevenueState, 1) is None
