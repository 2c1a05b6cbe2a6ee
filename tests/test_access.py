"""Every state-changing function against every role: allowed ones audit, refused ones change nothing; and
every public function of billing_core that reaches data checks the acting person first (found by introspection)."""

import argparse
import importlib
import inspect
import pkgutil
import re
import subprocess
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import event, func, select

import billing_core
from billing_core.access import audit
from billing_core.access.roles import PAGES, PERMISSIONS, Action, Actor, Role, may_open, pages_for
from billing_core.cli import credits as cli_credits
from billing_core.cli import invoices as cli_invoices
from billing_core.cli import refunds as cli_refunds
from billing_core.core.config import Settings
from billing_core.core.errors import PermissionDenied
from billing_core.core.models import ApprovalKind, AuditEvent, Order, OrderStatus, Refund, RefundStatus
from billing_core.credits import approvals, expiry, liability, usage
from billing_core.demo import seeding as demo
from billing_core.invoices import batch, new_details, numbering, storage, tasks
from billing_core.invoices import deep_check as bills_check
from billing_core.invoices import review as bills
from billing_core.orders import customers, refunds, sandbox, search
from billing_core.orders import detail as order_detail
from billing_core.orders import gateway_actions as payment_ops
from billing_core.orders import lifecycle as orders
from billing_core.payments import PaymentState
from billing_core.payments.simulated import Outcome, SimulatedGateway
from billing_core.pricing.catalog import Method
from billing_core.reconcile import settlement
from billing_core.reconcile import stuck as reconcile
from billing_core.revenue import report as reports
from billing_core.revenue import rollup
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


def _paid_for_refund(ctx):
    """The order paid (by an admin), the audit floor above it: what is refunded below."""
    ctx.gateway.settle(ctx.order.provider_ref, Outcome.SUCCEED)
    admin = Actor("ada@company.test", Role.ADMIN)
    payment_ops.complete_from_gateway(ctx.session, admin, ctx.order.id, ctx.gateway, settings=ctx.settings, reason="r")


def _four_eyes(ctx) -> Settings:
    """Every refund waits for approval and so does every manual completion."""
    policy = replace(ctx.settings.credits, refund_approval_above_cents=0, manual_completion_approval=True)
    return replace(ctx.settings, credits=policy)


def _propose_refund(ctx, actor):
    _paid_for_refund(ctx)
    ctx.audit_floor = ctx.session.scalar(select(func.max(AuditEvent.id)))
    sent = refunds.refund_order(ctx.session, actor, ctx.order.id, ctx.gateway, settings=_four_eyes(ctx), reason="r")
    assert sent.kind is ApprovalKind.REFUND
    return sent


def _approve_refund(ctx, actor):
    _paid_for_refund(ctx)
    proposer = Actor("fran@company.test", Role.FINANCE)
    sent = refunds.refund_order(ctx.session, proposer, ctx.order.id, ctx.gateway, settings=_four_eyes(ctx), reason="r")
    ctx.audit_floor = ctx.session.scalar(select(func.max(AuditEvent.id)))
    done = approvals.approve(
        ctx.session, actor, sent.approval_id, settings=ctx.settings, gateway_for=lambda order: ctx.gateway
    )
    assert ctx.session.get(Refund, done.refund_id).status is RefundStatus.SUCCEEDED
    return done


def _propose_completion(ctx, actor):
    sent = orders.complete_order(
        ctx.session, actor, ctx.order.id, settings=_four_eyes(ctx), reason="r", manual_reference="T"
    )
    assert sent.kind is ApprovalKind.COMPLETION
    return sent


def _approve_completion(ctx, actor):
    proposer = Actor("fran@company.test", Role.FINANCE)
    sent = orders.complete_order(
        ctx.session, proposer, ctx.order.id, settings=_four_eyes(ctx), reason="r", manual_reference="T"
    )
    ctx.audit_floor = ctx.session.scalar(select(func.max(AuditEvent.id)))
    done = approvals.approve(ctx.session, actor, sent.approval_id, settings=ctx.settings)
    assert ctx.session.get(Order, ctx.order.id).status is OrderStatus.PAID
    return done


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
    (_propose_refund, {F, AD}),
    (_approve_refund, {F, AD}),
    (_propose_completion, {F, AD}),
    (_approve_completion, {F, AD}),
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
    payment = ctx.gateway.create_payment(orders._payment_request(session, ctx.order))
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

    assert pages_for(who(S)) == ["orders", "customers", "credits"]
    assert pages_for(who(F)) == ["orders", "customers", "revenue", "invoices", "audit", "credits", "approvals"]
    assert pages_for(who(AN)) == ["simulator", "revenue"]
    assert pages_for(who(AD)) == [
        "simulator",
        "orders",
        "customers",
        "revenue",
        "invoices",
        "audit",
        "credits",
        "approvals",
    ]
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


# --- deny by default: every public function of billing_core that reaches data checks the actor ---------
#
# Found by introspection: a public function reaches data when a parameter is (or is annotated as) a
# session, database, engine, connection or actor, or its body opens a database, session or connection. Each must be
# in CHECKED, which calls it with every role its action refuses and with no actor, and asserts it is
# refused before a single SQL statement runs; or in NOT_CHECKED with the reason it needs no check.

_DATA_PARAMS = {"session", "database", "actor", "engine", "conn", "connection"}
_DATA_TYPES = re.compile(r"\b(Session|Database|Actor|Engine|Connection)\b")
_OPENS_DATA = re.compile(r"\.session\(|\bSession\(|\bDatabase\(|\bmake_engine\(|\.engine\b|\.connect\(|\.begin\(")


def _reaching_data() -> dict[str, object]:
    found = {}
    for info in pkgutil.walk_packages(billing_core.__path__, "billing_core."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, fn in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
                continue
            params = inspect.signature(fn).parameters.values()
            by_param = any(p.name in _DATA_PARAMS or _DATA_TYPES.search(str(p.annotation)) for p in params)
            if by_param or _OPENS_DATA.search(inspect.getsource(fn)):
                found[f"{module.__name__.removeprefix('billing_core.')}.{name}"] = fn
    return found


class _Env:
    """What the calls below are given. Refused calls never reach it, so most ids need not exist; the
    few whose role depends on the record (``reads_first``) get a real customer and order."""


_SINCE, _UNTIL = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
_FILTERS = reports.default_filters(date(2026, 1, 31))


def _c(action: Action, call, *, reads_first: bool = False) -> tuple[Action, object, bool]:
    return action, call, reads_first


A = Action
CHECKED = {
    "access.audit.search_events": _c(A.READ_AUDIT, lambda e, a: audit.search_events(e.s, a, audit.AuditFilters())),
    "access.audit.known_values": _c(A.READ_AUDIT, lambda e, a: audit.known_values(e.s, a)),
    "access.audit.export_rows": _c(A.READ_AUDIT, lambda e, a: audit.export_rows(e.s, a, audit.AuditFilters())),
    "invoices.review.list_documents": _c(
        A.READ_BILLS, lambda e, a: bills.list_documents(e.s, a, bills.DocumentFilters())
    ),
    "invoices.review.iter_documents": _c(
        A.READ_BILLS, lambda e, a: bills.iter_documents(e.s, a, bills.DocumentFilters())
    ),
    "invoices.review.count_documents": _c(
        A.READ_BILLS, lambda e, a: bills.count_documents(e.s, a, bills.DocumentFilters())
    ),
    "invoices.review.documents_csv": _c(
        A.READ_BILLS, lambda e, a: bills.documents_csv(e.s, a, bills.DocumentFilters())
    ),
    "invoices.review.totals": _c(A.READ_BILLS, lambda e, a: bills.totals(e.s, a, bills.DocumentFilters())),
    "invoices.review.checks": _c(A.CHECK_BILLS, lambda e, a: bills.checks(e.s, a, root=e.root)),
    "invoices.review.find_document": _c(A.READ_BILLS, lambda e, a: bills.find_document(e.s, a, "INV-2026-000001")),
    "invoices.review.recent_jobs": _c(A.READ_BILLS, lambda e, a: bills.recent_jobs(e.s, a)),
    "invoices.review.get_job": _c(A.READ_BILLS, lambda e, a: bills.get_job(e.s, a, 1)),
    "invoices.review.launch_job": _c(A.REGENERATE_INVOICES, lambda e, a: bills.launch_job(e.settings, a, 1)),
    "invoices.review.cancel_job": _c(A.REGENERATE_INVOICES, lambda e, a: bills.cancel_job(e.s, a, 1)),
    "invoices.review.close_cancelled": _c(A.REGENERATE_INVOICES, lambda e, a: bills.close_cancelled(e.settings, a, 1)),
    "invoices.tasks.enqueue_job": _c(A.REGENERATE_INVOICES, lambda e, a: tasks.enqueue_job(e.settings, a, 1)),
    "invoices.tasks.queue_check": _c(A.CHECK_BILLS, lambda e, a: tasks.queue_check(e.settings, a, 1)),
    "invoices.tasks.close_after_cancel": _c(
        A.REGENERATE_INVOICES, lambda e, a: tasks.close_after_cancel(e.settings, a, 1)
    ),
    "invoices.review.resume_job": _c(A.REGENERATE_INVOICES, lambda e, a: bills.resume_job(e.s, a, 1)),
    "demo.seeding.seed": _c(A.SEED_DEMO, lambda e, a: demo.seed(e.db, orders=10, actor=a)),
    "demo.seeding.setup": _c(A.SEED_DEMO, lambda e, a: demo.setup(e.db, actor=a)),
    "demo.seeding.delete_all_data": _c(A.SEED_DEMO, lambda e, a: demo.delete_all_data(e.db, a)),
    "invoices.batch.select_invoices": _c(A.READ_BILLS, lambda e, a: batch.select_invoices(e.s, a)),
    "invoices.batch.dry_run": _c(
        A.READ_BILLS, lambda e, a: batch.dry_run(e.s, a, batch.Chosen({}, 1), settings=e.settings)
    ),
    "invoices.batch.start_job": _c(
        A.REGENERATE_INVOICES, lambda e, a: batch.start_job(e.s, a, batch.Chosen({}, 1), "r")
    ),
    "invoices.batch.run_job": _c(A.REGENERATE_INVOICES, lambda e, a: batch.run_job(e.db, a, 1, settings=e.settings)),
    "invoices.batch.write_zip": _c(A.REGENERATE_INVOICES, lambda e, a: batch.write_zip(e.db, a, 1, e.root)),
    "cli.invoices.cli_invoices": _c(
        A.READ_BILLS,
        lambda e, a: cli_invoices.cli_invoices(
            argparse.Namespace(invoices_command="verify"), a, database=e.db, settings=e.settings
        ),
    ),
    "invoices.batch.job_files": _c(A.READ_BILLS, lambda e, a: batch.job_files(e.s, a, 1)),
    "invoices.batch.verify": _c(A.READ_BILLS, lambda e, a: batch.verify(e.s, a, root=e.root)),
    "orders.detail.order_detail": _c(A.READ_ORDERS, lambda e, a: order_detail.order_detail(e.s, a, "ord_x")),
    "orders.lifecycle.create_customer": _c(
        A.CREATE_CUSTOMER, lambda e, a: orders.create_customer(e.s, a, email="n@example.com", name="N", country="FR")
    ),
    "orders.lifecycle.sandbox_customers": _c(A.SANDBOX, lambda e, a: orders.sandbox_customers(e.s, a)),
    # The role these need depends on whether the record is a sandbox one, so they read it first.
    "orders.lifecycle.create_order": _c(
        A.CREATE_ORDER,
        lambda e, a: orders.create_order(
            e.s, a, customer_id=e.customer.id, amount="20", method="stripe", pricing=e.pricing
        ),
        reads_first=True,
    ),
    "orders.lifecycle.attach_payment": _c(
        A.COMPLETE_ORDER, lambda e, a: orders.attach_payment(e.s, a, e.order.id, paid(e.order)), reads_first=True
    ),
    "orders.lifecycle.complete_order": _c(
        A.COMPLETE_ORDER,
        lambda e, a: orders.complete_order(e.s, a, e.order.id, settings=e.settings, reason="r", payment=paid(e.order)),
        reads_first=True,
    ),
    "orders.lifecycle.fail_order": _c(
        A.FAIL_ORDER,
        lambda e, a: orders.fail_order(
            e.s, a, e.order.id, payment=paid(e.order, state=PaymentState.FAILED), reason="r"
        ),
        reads_first=True,
    ),
    "orders.gateway_actions.record_check": _c(
        A.CHECK_PAYMENT, lambda e, a: payment_ops.record_check(e.s, a, e.order, paid(e.order))
    ),
    "orders.gateway_actions.check_payment": _c(
        A.CHECK_PAYMENT, lambda e, a: payment_ops.check_payment(e.s, a, "ord_x", None)
    ),
    "orders.gateway_actions.complete_from_gateway": _c(
        A.COMPLETE_ORDER,
        lambda e, a: payment_ops.complete_from_gateway(e.s, a, "ord_x", None, settings=e.settings, reason="r"),
    ),
    "orders.gateway_actions.resume_payment": _c(
        A.RESUME_PAYMENT, lambda e, a: payment_ops.resume_payment(e.s, a, "ord_x", None)
    ),
    "orders.gateway_actions.expire_order": _c(
        A.EXPIRE_ORDER, lambda e, a: payment_ops.expire_order(e.s, a, "ord_x", None, reason="r")
    ),
    "orders.gateway_actions.cancel_order": _c(
        A.CANCEL_ORDER, lambda e, a: payment_ops.cancel_order(e.s, a, "ord_x", None, reason="r")
    ),
    "orders.gateway_actions.checks_for": _c(A.READ_ORDERS, lambda e, a: payment_ops.checks_for(e.s, a, 1)),
    "orders.gateway_actions.check_payments": _c(
        A.CHECK_PAYMENT, lambda e, a: payment_ops.check_payments(e.db, a, e.settings, ["ord_x"])
    ),
    "reconcile.stuck.stuck_paid_page": _c(A.READ_ORDERS, lambda e, a: reconcile.stuck_paid_page(e.s, a)),
    "reconcile.stuck.preview_one": _c(
        A.RECONCILE,
        lambda e, a: reconcile.preview_one(
            e.db,
            a,
            e.settings,
            reconcile.StuckOrder(1, "ord_x", Method.STRIPE, OrderStatus.PENDING, "pi_x", _SINCE),
            None,
        ),
    ),
    "invoices.new_details.stale_documents": _c(A.READ_BILLS, lambda e, a: new_details.stale_documents(e.s, a, "cus_x")),
    "invoices.new_details.regenerate_with_new_details": _c(
        A.REGENERATE_INVOICES,
        lambda e, a: new_details.regenerate_with_new_details(e.db, a, e.settings, "cus_x", reason="r"),
    ),
    "orders.search.the_one_order": _c(A.READ_ORDERS, lambda e, a: search.the_one_order(e.s, a, "ord_x")),
    "reconcile.stuck.select_stuck": _c(
        A.READ_ORDERS, lambda e, a: reconcile.select_stuck(e.s, a, since=_SINCE, until=_UNTIL)
    ),
    "reconcile.stuck.count_stuck": _c(
        A.READ_ORDERS, lambda e, a: reconcile.count_stuck(e.s, a, since=_SINCE, until=_UNTIL)
    ),
    "reconcile.stuck.iter_stuck": _c(
        A.READ_ORDERS, lambda e, a: reconcile.iter_stuck(e.db, a, since=_SINCE, until=_UNTIL)
    ),
    "reconcile.stuck.reconcile_one": _c(
        A.RECONCILE,
        lambda e, a: reconcile.reconcile_one(
            e.db,
            a,
            e.settings,
            reconcile.StuckOrder(1, "ord_x", Method.STRIPE, OrderStatus.PENDING, "pi_x", _SINCE),
            None,
        ),
    ),
    "reconcile.stuck.reconcile": _c(
        A.RECONCILE, lambda e, a: reconcile.reconcile(e.db, a, e.settings, since=_SINCE, until=_UNTIL)
    ),
    "reconcile.stuck.reconcile_from_events": _c(
        A.RECONCILE, lambda e, a: reconcile.reconcile_from_events(e.db, a, e.settings, None)
    ),
    "orders.refunds.refund_order": _c(
        A.REFUND_ORDER, lambda e, a: refunds.refund_order(e.s, a, "ord_x", None, settings=e.settings, reason="r")
    ),
    "revenue.report.revenue_report": _c(A.READ_REVENUE, lambda e, a: reports.revenue_report(e.s, a, _FILTERS)),
    "revenue.report.top_customers": _c(
        A.READ_REVENUE, lambda e, a: reports.top_customers(e.s, a, _SINCE.date(), _SINCE.date())
    ),
    "revenue.report.pricing_whatif": _c(
        A.READ_REVENUE, lambda e, a: reports.pricing_whatif(e.s, a, _FILTERS, e.pricing)
    ),
    "revenue.report.first_day": _c(A.READ_REVENUE, lambda e, a: reports.first_day(e.s, a, "UTC")),
    "revenue.rollup.ensure_built": _c(A.REBUILD_REVENUE, lambda e, a: rollup.ensure_built(e.db, a)),
    "revenue.rollup.rebuild": _c(A.REBUILD_REVENUE, lambda e, a: rollup.rebuild(e.db, a)),
    "orders.sandbox.run_sandbox_topup": _c(
        A.SANDBOX,
        lambda e, a: sandbox.run_sandbox_topup(
            e.db, a, e.settings, customer_id=1, amount="20", method="stripe", outcome=Outcome.SUCCEED
        ),
    ),
    "orders.sandbox.sandbox_snapshot": _c(A.SANDBOX, lambda e, a: sandbox.sandbox_snapshot(e.s, a, 1)),
    "orders.search.search_orders": _c(A.READ_ORDERS, lambda e, a: search.search_orders(e.s, a, search.OrderQuery())),
    "orders.search.count_matches": _c(A.READ_ORDERS, lambda e, a: search.count_matches(e.s, a, search.OrderQuery())),
    "reconcile.settlement.preview": _c(A.IMPORT_SETTLEMENT, lambda e, a: settlement.preview(e.s, a, None)),
    "reconcile.settlement.apply": _c(A.IMPORT_SETTLEMENT, lambda e, a: settlement.apply(e.db, a, e.settings, None)),
    "invoices.review.summary": _c(A.READ_BILLS, lambda e, a: bills.summary(e.s, a, bills.DocumentFilters())),
    "invoices.deep_check.start": _c(A.CHECK_BILLS, lambda e, a: bills_check.start(e.s, a)),
    "invoices.deep_check.run": _c(A.CHECK_BILLS, lambda e, a: bills_check.run(e.db, a, 1, root=e.root)),
    "invoices.deep_check.launch": _c(A.CHECK_BILLS, lambda e, a: bills_check.launch(e.settings, a, 1)),
    "cli.invoices.cli_check": _c(A.CHECK_BILLS, lambda e, a: cli_invoices.cli_check(e.db, a, e.settings)),
    "invoices.deep_check.latest": _c(A.READ_BILLS, lambda e, a: bills_check.latest(e.s, a)),
    "invoices.deep_check.last_finished": _c(A.READ_BILLS, lambda e, a: bills_check.last_finished(e.s, a)),
    "invoices.deep_check.series_check": _c(A.READ_BILLS, lambda e, a: bills_check.series_check(e.s, a)),
    "credits.liability.roll_forward": _c(A.READ_CREDITS, lambda e, a: liability.roll_forward(e.s, a)),
    "credits.liability.customers_in_month": _c(
        A.READ_CREDITS, lambda e, a: liability.customers_in_month(e.s, a, date(2026, 1, 1))
    ),
    "credits.liability.ledger_closing": _c(
        A.READ_CREDITS, lambda e, a: liability.ledger_closing(e.s, a, date(2026, 1, 1))
    ),
    "credits.approvals.propose_adjustment": _c(
        A.PROPOSE_ADJUSTMENT,
        lambda e, a: approvals.propose_adjustment(
            e.s, a, "cus_x", credits="5", pool="paid", reason="r", note=None, settings=e.settings
        ),
    ),
    "credits.approvals.approve": _c(A.APPROVE_CHANGES, lambda e, a: approvals.approve(e.s, a, 1, settings=e.settings)),
    "credits.approvals.reject": _c(A.APPROVE_CHANGES, lambda e, a: approvals.reject(e.s, a, 1, reason="r")),
    "credits.approvals.expire_stale": _c(A.APPROVE_CHANGES, lambda e, a: approvals.expire_stale(e.s, a)),
    "credits.approvals.queue": _c(A.APPROVE_CHANGES, lambda e, a: approvals.queue(e.s, a)),
    "credits.approvals.proposal": _c(A.APPROVE_CHANGES, lambda e, a: approvals.proposal(e.s, a, 1)),
    "credits.approvals.waiting_count": _c(A.APPROVE_CHANGES, lambda e, a: approvals.waiting_count(e.s, a)),
    "credits.approvals.proposals_for": _c(A.PROPOSE_ADJUSTMENT, lambda e, a: approvals.proposals_for(e.s, a, "cus_x")),
    "credits.expiry.plan": _c(A.EXPIRE_CREDITS, lambda e, a: expiry.plan(e.s, a, e.settings.credits)),
    "credits.expiry.soon": _c(A.READ_CREDITS, lambda e, a: expiry.soon(e.s, a, e.settings.credits)),
    "credits.expiry.book": _c(A.EXPIRE_CREDITS, lambda e, a: expiry.book(e.db, a, e.settings.credits)),
    "cli.credits.cli_expire": _c(
        A.EXPIRE_CREDITS,
        lambda e, a: cli_credits.cli_expire(argparse.Namespace(dry_run=True, as_of=None, database_url=e.db.url), a),
    ),
    "credits.usage.preview": _c(A.IMPORT_USAGE, lambda e, a: usage.preview(e.s, a, None)),
    "credits.usage.apply": _c(A.IMPORT_USAGE, lambda e, a: usage.apply(e.db, a, None)),
    "cli.credits.cli_usage": _c(
        A.IMPORT_USAGE,
        lambda e, a: cli_credits.cli_usage(
            argparse.Namespace(file="x.csv", apply=False, csv=None, database_url=e.db.url), a
        ),
    ),
    "invoices.numbering.series_health": _c(A.READ_BILLS, lambda e, a: numbering.series_health(e.s, a)),
    "invoices.storage.files_for": _c(A.READ_BILLS, lambda e, a: storage.files_for(e.s, a, 1)),
    "invoices.storage.issued_pdf": _c(A.READ_BILLS, lambda e, a: storage.issued_pdf(e.db, a, 1, settings=e.settings)),
    "invoices.storage.store_version": _c(
        A.STORE_INVOICE_FILE, lambda e, a: storage.store_version(e.s, a, None, b"", "r", root=e.root)
    ),
    "orders.customers.find_customers": _c(A.READ_CUSTOMERS, lambda e, a: customers.find_customers(e.s, a, "nelson")),
    "orders.customers.customer_profile": _c(A.READ_CUSTOMERS, lambda e, a: customers.customer_profile(e.s, a, "cus_x")),
    "orders.customers.ledger_page": _c(A.READ_CUSTOMERS, lambda e, a: customers.ledger_page(e.s, a, 1)),
    "orders.customers.orders_page": _c(A.READ_CUSTOMERS, lambda e, a: customers.orders_page(e.s, a, 1)),
    "orders.customers.documents_page": _c(A.READ_CUSTOMERS, lambda e, a: customers.documents_page(e.s, a, 1)),
    "orders.customers.refunds_for": _c(A.READ_CUSTOMERS, lambda e, a: customers.refunds_for(e.s, a, 1)),
    "orders.customers.audit_events_for": _c(A.READ_CUSTOMERS, lambda e, a: customers.audit_events_for(e.s, a, 1)),
    "orders.customers.update_billing_details": _c(
        A.EDIT_CUSTOMER,
        lambda e, a: customers.update_billing_details(
            e.s, a, "cus_x", reason="r", address=None, company=None, tax_id=None, country="DE"
        ),
    ),
    "orders.refunds.plan_refund": _c(A.REFUND_ORDER, lambda e, a: refunds.plan_refund(e.s, a, "ord_x", None)),
    "orders.refunds.refunds_for": _c(A.VIEW_REFUNDS, lambda e, a: refunds.refunds_for(e.s, a, 1)),
    "orders.refunds.reconcile_refunds": _c(A.RECONCILE, lambda e, a: refunds.reconcile_refunds(e.db, a, e.settings)),
    "cli.refunds.cli_refunds": _c(
        A.RECONCILE, lambda e, a: cli_refunds.cli_refunds(argparse.Namespace(order=None, database_url=e.db.url), a)
    ),
}

NOT_CHECKED = {
    "access.roles.may": "the check itself",
    "access.roles.require": "the check itself",
    "access.roles.may_open": "the check itself",
    "access.roles.pages_for": "the check itself",
    "access.audit.record": "writes the audit event of a change, inside that change's checked transaction",
    "core.db.transaction": "opens a transaction on the caller's session; reads and writes nothing itself",
    "core.db.migrate": "applies the schema; no personal or financial data",
    "core.db.is_empty": "whether any order exists, for the first run; no personal or financial data",
    "core.db.remembered": "a dict on the caller's session for reads made in its transaction; reads nothing itself",
    "payments.registry.gateway_for": "builds a gateway client; reads and writes nothing",
    "revenue.rollup.version": "the rollup's change counter; no personal or financial data",
    "revenue.rollup.kept_timezones": "the zone names the rollup is kept for; no personal or financial data",
    "invoices.background.start_process": "starts a process for a caller that checked the actor; it checks again",
    "cli.main.cmd_worker": "command line: runs tasks, each of which checks the role of the person who queued it",
    "cli.main.cmd_search": "command line: passes its --actor, as support, to the checked search functions above",
    "cli.reconcile.cli_reconcile": "command line: passes its --actor to the checked functions above",
    "cli.settlement.cli_settlement": "command line: passes its --actor to the checked functions above",
    "cli.invoices.run_launched_job": "command line: passes the actor a page launched it for to batch.run_job",
    "bench.invoices.invoice_rows": "benchmark: its own temporary database, as the benchmark's actor",
    "bench.workers.empty_queue": "empties procrastinate's task tables of a benchmark's or test's own database",
    "bench.reconcile.reconcile_rows": "benchmark: its own temporary database, as the benchmark's actor",
    "bench.revenue.revenue_rows": "benchmark: its own temporary database, as the benchmark's actor",
    "bench.credits.credit_rows": "benchmark: its own temporary database, as the benchmark's actor",
    "bench.page_data.picks": "benchmark: reads the values it types from its own seeded database",
    "core.db.make_engine": "builds an engine for the Database class; reads and writes nothing itself",
    "core.db.read": "runs a statement for the search functions above, which check the actor before they call it",
    "cli.main.cmd_migrate": "command line: applies the schema; no personal or financial data",
    "cli.main.cmd_seed": "command line: passes its --actor to the checked demo.seeding.seed",
    "cli.main.cmd_setup": "command line: passes its --actor to the checked demo.seeding.setup",
    "cli.main.cmd_rollup": "command line: passes its --actor to the checked rollup.rebuild",
    "cli.main.cmd_invoices": "command line: passes its --actor to the checked cli.invoices functions",
    "cli.invoices.run_check": "command line: passes the actor a page launched it for to the checked deep_check.run",
    "bench.invoices.run_measured_job": "benchmark: its own temporary database, as the benchmark's actor",
    "bench.page_data.seeded": "benchmark: seeds its own temporary database",
    "bench.page_data.scans_replaced": "benchmark: as the benchmark's finance actor, on the database it measures",
    "bench.search.search_rows": "benchmark: its own temporary database, as the benchmark's actor",
    "bench.workers.worker_rows": "benchmark: its own temporary database, as the benchmark's actor",
    "bench.run.reused_large": "benchmark: counts the orders of the database it was given to measure on",
    "bench.page_data.reused": "benchmark: adds its audit history to the database it was given to measure on",
    "invoices.totals.record": "adds a document's bills totals inside the issuing transaction that checked the actor",
    "invoices.totals.rebuild": "recomputes the bills totals inside rollup.rebuild, which checks revenue.rebuild",
    "orders.customer_index.best_matches": "the customers a text names, for find_customers and search_orders, "
    "which check reading customers or orders",
    "orders.search.resolve": "what the typed text is where the data decides (an id's start, an email domain), "
    "for find_customers, search_orders and the_one_order, which check the actor",
}


def test_every_public_function_that_reaches_data_checks_the_actor_or_says_why_not():
    found = set(_reaching_data())
    unlisted = found - set(CHECKED) - set(NOT_CHECKED)
    assert not unlisted, f"public functions of billing_core reaching data with no role check listed: {sorted(unlisted)}"
    stale = (set(CHECKED) | set(NOT_CHECKED)) - found
    assert not stale, f"listed but no longer public functions reaching data: {sorted(stale)}"
    assert not set(CHECKED) & set(NOT_CHECKED)


def test_every_checked_function_takes_the_acting_person():
    functions = _reaching_data()
    assert [name for name in CHECKED if "actor" not in inspect.signature(functions[name]).parameters] == []


class _Statements:
    """Every SQL statement sent on the engine while counting."""

    def __init__(self, engine):
        self.sent: list[str] = []
        self._engine = engine

    def __call__(self, conn, cursor, statement, *args):
        self.sent.append(statement)

    def __enter__(self):
        event.listen(self._engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        event.remove(self._engine, "before_cursor_execute", self)

    def writes(self) -> list[str]:
        return [s for s in self.sent if s.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}]


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_a_role_without_the_permission_is_refused_before_anything_happens(
    db, session, admin, pricing, settings, tmp_path, monkeypatch, name
):
    action, call, reads_first = CHECKED[name]
    env = _Env()
    env.s, env.db, env.pricing, env.root = session, db, pricing, tmp_path / "files"
    env.settings = Settings(database_url=db.url, invoice_dir=env.root)
    if reads_first:
        env.customer = make_customer(session, admin)
        env.order = make_order(session, admin, env.customer, pricing)
    else:
        env.customer = env.order = Order(id=1, public_id="ord_x", total_cents=2000, currency="USD")
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("a process was started"))
    refused = [Actor(f"{role.value}@company.test", role) for role in Role if role not in PERMISSIONS[action]]
    assert refused, f"{action} is allowed to every role: nothing to refuse"
    for actor in [*refused, None]:
        expected = "Sign in first" if actor is None else f"The {actor.role.value} role may not {action.value};"
        with _Statements(db.engine) as statements, pytest.raises(PermissionDenied, match=expected):
            call(env, actor)
        session.rollback()
        if reads_first:
            assert statements.writes() == [], f"{name} wrote before refusing {actor}"
        else:
            assert statements.sent == [], f"{name} ran SQL before refusing {actor}: {statements.sent[:3]}"
    assert not env.root.exists(), f"{name} wrote files before refusing"


def test_each_page_opens_for_the_roles_that_may_read_what_it_shows():
    reads = {
        "simulator": Action.SANDBOX,
        "orders": Action.READ_ORDERS,
        "customers": Action.READ_CUSTOMERS,
        "revenue": Action.READ_REVENUE,
        "invoices": Action.READ_BILLS,
        "audit": Action.READ_AUDIT,
        "credits": Action.READ_CREDITS,
        "approvals": Action.APPROVE_CHANGES,
    }
    assert set(reads) == set(PAGES)
    assert {page: PERMISSIONS[action] for page, action in reads.items()} == {p: e.roles for p, e in PAGES.items()}
