"""Every state-changing function against every role: allowed ones audit, refused ones change nothing."""

import pytest
from sqlalchemy import func, select

from billing_core import audit, orders, payment_ops, refunds
from billing_core.access import Actor, Role, may_open, pages_for
from billing_core.errors import PermissionDenied
from billing_core.models import AuditEvent
from billing_core.payments.simulated import Outcome, SimulatedGateway
from tests.helpers import make_customer, make_order, paid

S, F, AN, AD = Role.SUPPORT, Role.FINANCE, Role.ANALYST, Role.ADMIN


def _create_customer(ctx, actor):
    return orders.create_customer(ctx.session, actor, email="new@example.com", name="N", country="FR")


def _create_sandbox_customer(ctx, actor):
    return orders.create_customer(ctx.session, actor, email="sbx@example.com", name="S", country="FR", sandbox=True)


def _create_order(ctx, actor):
    return make_order(ctx.session, actor, ctx.customer, ctx.pricing)


def _create_sandbox_order(ctx, actor):
    return make_order(ctx.session, actor, ctx.sandbox_customer, ctx.pricing)


def _attach_payment(ctx, actor):
    return orders.attach_payment(ctx.session, actor, ctx.order.id, paid(ctx.order))


def _complete(ctx, actor):
    return orders.complete_order(
        ctx.session, actor, ctx.order.id, settings=ctx.settings, reason="r", payment=paid(ctx.order)
    )


def _complete_manually(ctx, actor):
    return orders.complete_order(
        ctx.session, actor, ctx.order.id, settings=ctx.settings, reason="r", manual_reference="T"
    )


def _complete_sandbox(ctx, actor):
    order = ctx.sandbox_order
    return orders.complete_order(ctx.session, actor, order.id, settings=ctx.settings, reason="r", payment=paid(order))


def _fail(ctx, actor):
    from billing_core.payments import PaymentState

    return orders.fail_order(
        ctx.session, actor, ctx.order.id, payment=paid(ctx.order, state=PaymentState.FAILED), reason="r"
    )


def _check(ctx, actor):
    return payment_ops.check_payment(ctx.session, actor, ctx.order.id, ctx.gateway)


def _resume(ctx, actor):
    return payment_ops.resume_payment(ctx.session, actor, ctx.order.id, ctx.gateway)


def _expire(ctx, actor):
    return payment_ops.expire_order(ctx.session, actor, ctx.order.id, ctx.gateway, reason="r")


def _cancel(ctx, actor):
    return payment_ops.cancel_order(ctx.session, actor, ctx.order.id, ctx.gateway, reason="r")


def _refund(ctx, actor):
    ctx.gateway.settle(ctx.order.provider_ref, Outcome.SUCCEED)
    admin = Actor("ada@company.test", Role.ADMIN)
    payment_ops.complete_from_gateway(ctx.session, admin, ctx.order.id, ctx.gateway, settings=ctx.settings, reason="r")
    first = ctx.session.scalar(select(func.max(AuditEvent.id)))
    ctx.audit_floor = first
    return refunds.refund_order(ctx.session, actor, ctx.order.id, ctx.gateway, settings=ctx.settings, reason="r")


TABLE = [
    (_create_customer, {AD}),
    (_create_sandbox_customer, {AN, AD}),
    (_create_order, {AD}),
    (_create_sandbox_order, {AN, AD}),
    (_attach_payment, {S, F, AD}),
    (_complete, {S, F, AD}),
    (_complete_manually, {F, AD}),
    (_complete_sandbox, {AN, AD}),
    (_fail, {S, F, AD}),
    (_check, {S, F, AD}),
    (_resume, {S, F, AD}),
    (_expire, {S, F, AD}),
    (_cancel, {S, F, AD}),
    (_refund, {F, AD}),
]


class Ctx:
    pass


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("action", "allowed"), TABLE, ids=[fn.__name__.strip("_") for fn, _ in TABLE])
def test_every_change_checks_the_role_and_audits(db, session, admin, pricing, settings, action, allowed, role):
    ctx = Ctx()
    ctx.session, ctx.pricing, ctx.settings = session, pricing, settings
    ctx.customer = make_customer(session, admin)
    ctx.sandbox_customer = make_customer(session, admin, email="box@example.com", sandbox=True)
    ctx.order = make_order(session, admin, ctx.customer, pricing)
    ctx.sandbox_order = make_order(session, admin, ctx.sandbox_customer, pricing)
    ctx.gateway = SimulatedGateway(db)
    payment = ctx.gateway.create_payment(orders.payment_request(session, ctx.order))
    ctx.order = orders.attach_payment(session, admin, ctx.order.id, payment)
    ctx.audit_floor = None
    events_before = session.scalar(select(func.max(AuditEvent.id)))
    actor = Actor(f"{role.value}@company.test", role)

    if role in allowed:
        action(ctx, actor)
        floor = ctx.audit_floor or events_before
        new = list(session.scalars(select(AuditEvent).where(AuditEvent.id > floor)))
        assert new, "an allowed change must write an audit event"
        assert {(e.actor_email, e.actor_role) for e in new} == {(actor.email, role)}
    else:
        with pytest.raises(PermissionDenied, match=f"The {role.value} role may not"):
            action(ctx, actor)
        session.rollback()
        floor = ctx.audit_floor or events_before
        assert session.scalar(select(func.max(AuditEvent.id))) == floor


def test_no_actor_is_refused(session, admin, pricing):
    customer = make_customer(session, admin)
    with pytest.raises(PermissionDenied, match="Sign in first"):
        orders.create_order(session, None, customer_id=customer.id, amount="20", method="stripe", pricing=pricing)


def test_pages_by_role():
    def who(role):
        return Actor("x@company.test", role)

    assert pages_for(who(S)) == ["orders", "customers"]
    assert pages_for(who(F)) == ["orders", "customers", "revenue", "invoices", "audit"]
    assert pages_for(who(AN)) == ["simulator", "revenue"]
    assert pages_for(who(AD)) == ["simulator", "orders", "customers", "revenue", "invoices", "audit"]
    assert not may_open(None, "simulator")
    assert not may_open(who(AD), "no-such-page")


@pytest.mark.parametrize("role", list(Role))
def test_only_finance_and_admin_read_the_audit_log(session, admin, role):
    make_customer(session, admin)
    actor = Actor(f"{role.value}@company.test", role)
    reads = [
        lambda: audit.search_events(session, actor, audit.AuditFilters()),
        lambda: audit.known_values(session, actor),
        lambda: audit.export_rows(session, actor, audit.AuditFilters()),
    ]
    for read in reads:
        if role in {F, AD}:
            read()
        else:
            with pytest.raises(PermissionDenied, match=f"The {role.value} role may not audit.read"):
                read()
