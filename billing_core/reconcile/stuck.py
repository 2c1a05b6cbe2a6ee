"""Bulk reconcile: ask the gateway about stuck orders and complete those it says were paid.

A run over a date range or from Stripe events also finishes every pending refund
(``refunds.reconcile_refunds``).

Two ways in: a date range of pending/expired orders (``reconcile``), or Stripe's
``payment_intent.succeeded`` events since the last run (``reconcile_from_events``). Both check each
order with the gateway (never trusting an event alone), record what it said, and complete through
``orders.complete_order``, whose compare-and-set makes a rerun or a concurrent manual completion
harmless: an order is credited once. Gateway calls happen outside database transactions.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import stripe
from sqlalchemy import Boolean, and_, bindparam, func, or_, select, text
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError, GatewayError, PaymentMismatch, StateConflict, shown_to_people
from billing_core.core.exports import to_csv_bytes
from billing_core.core.models import (
    COMPLETABLE,
    PAID_STATUSES,
    STUCK_PAID_WHERE,
    Order,
    OrderStatus,
    SyncCursor,
    UTCDateTime,
    utcnow,
)
from billing_core.orders import search
from billing_core.orders.gateway_actions import record_check
from billing_core.orders.lifecycle import _check_payment, _get_order, complete_order
from billing_core.orders.refunds import RefundReconcileReport, reconcile_refunds
from billing_core.orders.search import MatchCount, OrderRow
from billing_core.payments import Gateway, PaymentState, PaymentStatus, registry
from billing_core.pricing.catalog import Method

REASON = "bulk reconcile"
BATCH = 500
EVENTS_CURSOR = "stripe-events"
EVENTS_PAGE = 100

Progress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]
GatewayFor = Callable[..., Gateway]


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    WOULD_COMPLETE = "would complete"  # a dry run's answer where the run would complete the order
    UNPAID = "still unpaid"
    MISMATCH = "mismatched"
    ALREADY = "already completed"
    NOT_FOUND = "not found"  # an event for a payment with no order here (events path only)
    ERROR = "error"


@dataclass(frozen=True)
class StuckOrder:
    """The few columns reconcile needs about an order, so batches stay light."""

    id: int
    public_id: str
    method: Method
    status: OrderStatus
    provider_ref: str
    created_at: datetime


@dataclass(frozen=True)
class ReconcileRow:
    order: str
    method: str
    status_before: str
    gateway_state: str
    amount_cents: int | None
    currency: str
    outcome: Outcome
    message: str

    def as_dict(self) -> dict:
        return {
            "order": self.order,
            "method": self.method,
            "status before": self.status_before,
            "gateway state": self.gateway_state,
            "amount": "" if self.amount_cents is None else money.format_plain(self.amount_cents),
            "currency": self.currency,
            "outcome": self.outcome.value,
            "becomes": self.becomes,
            "message": self.message,
        }

    @property
    def becomes(self) -> str:
        """The order's status after the run (or, in a dry run, after the run it previews)."""
        if self.outcome in (Outcome.COMPLETED, Outcome.WOULD_COMPLETE):
            return OrderStatus.PAID.value
        return self.status_before


@dataclass
class ReconcileReport:
    total: int
    rows: list[ReconcileRow] = field(default_factory=list)
    stopped: bool = False
    refunds: RefundReconcileReport | None = None  # the pending refunds finished on the way
    dry_run: bool = False  # asked the gateway only: nothing was recorded or changed

    @property
    def counts(self) -> dict[Outcome, int]:
        counts = dict.fromkeys(Outcome, 0)
        for row in self.rows:
            counts[row.outcome] += 1
        return counts

    def summary(self) -> str:
        parts = [f"{n} {outcome.value}" for outcome, n in self.counts.items() if n]
        verb = "Dry run, nothing changed: asked about" if self.dry_run else "Checked"
        head = f"{verb} {len(self.rows)} of {self.total} orders"
        tail = " (stopped before the end; run again to finish)" if self.stopped else ""
        refunds = f" {self.refunds.summary()}" if self.refunds and self.refunds.rows else ""
        return f"{head}: {', '.join(parts) or 'nothing to do'}{tail}.{refunds}"

    def to_csv(self) -> bytes:
        return to_csv_bytes([row.as_dict() for row in self.rows], columns=list(_COLUMNS))


_COLUMNS = ReconcileRow("", "", "", "", None, "", Outcome.ERROR, "").as_dict().keys()


# --- selecting stuck orders ----------------------------------------------------------------------


def _stuck_filter(since: datetime, until: datetime, methods: list[Method] | None):
    if since >= until:
        raise BillingError("The start of the range must be before its end.")
    conditions = [
        Order.status.in_(COMPLETABLE),
        Order.sandbox.is_(False),
        Order.provider_ref.is_not(None),
        Order.created_at >= since,
        Order.created_at < until,
    ]
    if methods:
        conditions.append(Order.method.in_([Method(m) for m in methods]))
    return conditions


def select_stuck(
    session: Session,
    actor: Actor,
    *,
    since: datetime,
    until: datetime,
    methods: list[Method] | None = None,
    limit: int | None = None,
    after: tuple[datetime, int] | None = None,
) -> list[StuckOrder]:
    """Pending and expired real orders created in [since, until) with a gateway payment, oldest first.

    One keyset page: pass the last row's ``(created_at, id)`` as ``after`` for the next one.
    """
    require(actor, Action.READ_ORDERS)
    stmt = (
        select(Order.id, Order.public_id, Order.method, Order.status, Order.provider_ref, Order.created_at)
        .where(*_stuck_filter(since, until, methods))
        .order_by(Order.created_at, Order.id)
        .limit(limit or BATCH)
    )
    if after is not None:
        created, last_id = after
        stmt = stmt.where(or_(Order.created_at > created, and_(Order.created_at == created, Order.id > last_id)))
    return [StuckOrder(*row) for row in session.execute(stmt)]


def count_stuck(
    session: Session, actor: Actor, *, since: datetime, until: datetime, methods: list[Method] | None = None
) -> int:
    require(actor, Action.READ_ORDERS)
    return int(session.scalar(select(func.count()).select_from(Order).where(*_stuck_filter(since, until, methods))))


def iter_stuck(
    database: Database,
    actor: Actor,
    *,
    since: datetime,
    until: datetime,
    methods: list[Method] | None = None,
    batch: int = BATCH,
) -> Iterator[StuckOrder]:
    """Every stuck order in the range, read a batch at a time in short read transactions."""
    require(actor, Action.READ_ORDERS)  # here, not in the generator: a refused call raises at once
    return _iter_stuck(database, actor, since, until, methods, batch)


def _iter_stuck(
    database: Database, actor: Actor, since: datetime, until: datetime, methods: list[Method] | None, batch: int
) -> Iterator[StuckOrder]:
    after = None
    while True:
        with database.session() as session:
            page = select_stuck(session, actor, since=since, until=until, methods=methods, limit=batch, after=after)
        yield from page
        if len(page) < batch:
            return
        after = (page[-1].created_at, page[-1].id)


# --- paid at the gateway, unpaid here ---------------------------------------------------------------

STUCK_COUNT_CAP = 10_000


@dataclass(frozen=True)
class StuckPage:
    rows: list[OrderRow]
    next_after: tuple[datetime, int] | None  # pass back as ``after`` for the next page
    count: MatchCount


def stuck_paid_page(
    session: Session, actor: Actor, *, size: int = 50, after: tuple[datetime, int] | None = None
) -> StuckPage:
    """Pending or expired real orders whose latest gateway check said paid, oldest first, one keyset page.

    Read from the partial index that holds only such orders (models.STUCK_PAID_WHERE, written as
    literal SQL so SQLite's planner can match it to the index).
    """
    require(actor, Action.READ_ORDERS)
    if not 1 <= size <= search.MAX_PAGE_SIZE:
        raise BillingError(f"A page holds 1 to {search.MAX_PAGE_SIZE} orders.")
    params: dict = {"limit": size + 1, "cap": STUCK_COUNT_CAP + 1}
    keyset = ""
    if after is not None:
        keyset = "AND (created_at > :at OR (created_at = :at AND id > :id))"
        params |= {"at": after[0], "id": after[1]}
    ids = list(session.scalars(_stuck_sql(session, f"{keyset} ORDER BY created_at, id LIMIT :limit"), params))
    more = len(ids) > size
    ids = ids[:size]
    capped = _stuck_sql(session, "LIMIT :cap").columns(Order.id).subquery()
    counted = session.scalar(select(func.count()).select_from(capped), params)
    # The page's rows by primary key, put in the index's order here: an ORDER BY could lead the planner
    # to walk the whole created_at index looking for them.
    page = select(*search._PAGE_COLUMNS).where(Order.id.in_(ids))
    by_id = {row.id: row for row in session.execute(search._with_names(page))}
    found = [by_id[i] for i in ids if i in by_id]
    count = MatchCount(min(counted, STUCK_COUNT_CAP), counted > STUCK_COUNT_CAP)
    next_after = (found[-1].created_at, found[-1].id) if more else None
    return StuckPage(search._rows(found), next_after, count)


def _stuck_sql(session: Session, tail: str):
    """Ids of stuck orders from their partial index: its condition as literal SQL (a bound value would
    keep SQLite from matching it to the index), and on SQLite the index named, since without table
    statistics its planner would walk every pending order by status instead."""
    hint = " INDEXED BY ix_orders_stuck_paid_created_at" if session.get_bind().dialect.name == "sqlite" else ""
    sql = f"SELECT id FROM orders{hint} WHERE {STUCK_PAID_WHERE} AND sandbox = :real {tail}"  # noqa: S608 - fixed text
    typed = [bindparam("real", False, type_=Boolean())]
    if ":at" in tail:
        typed.append(bindparam("at", type_=UTCDateTime()))
    return text(sql).bindparams(*typed)


# --- one order ------------------------------------------------------------------------------------


def reconcile_one(
    database: Database, actor: Actor, settings: Settings, stuck: StuckOrder, gateway: Gateway
) -> ReconcileRow:
    """Check one order at its gateway, record the answer, and complete it if it was paid.

    Raises PermissionDenied for an actor who may not reconcile, before anything is asked or written;
    otherwise never raises: what went wrong with this order is its row's outcome.
    """
    require(actor, Action.RECONCILE)

    def row(outcome: Outcome, message: str, state: str = "", amount: int | None = None, currency: str = ""):
        return ReconcileRow(
            stuck.public_id, stuck.method.value, stuck.status.value, state, amount, currency, outcome, message
        )

    status = _ask(gateway, stuck)
    if isinstance(status, str):
        return row(Outcome.ERROR, status)

    seen = {"state": status.state.value, "amount": status.amount_cents, "currency": status.currency}
    with database.session() as session:
        try:
            with transaction(session):
                order = _get_order(session, stuck.id)
                record_check(session, actor, order, status)
                audit.record(
                    session,
                    actor,
                    "order.check_payment",
                    "order",
                    stuck.public_id,
                    reason=REASON,
                    after=status.as_dict(),
                )
                outcome, message = _verdict(order, status)
            if outcome is not Outcome.COMPLETED:
                return row(outcome, message, **seen)
            done = complete_order(session, actor, stuck.id, settings=settings, reason=REASON, payment=status)
            return row(Outcome.COMPLETED, f"Completed; invoice {done.invoice_number}.", **seen)
        except PaymentMismatch as exc:
            return row(Outcome.MISMATCH, str(exc), **seen)
        except StateConflict as exc:
            session.rollback()
            paid = _get_order(session, stuck.id).status in PAID_STATUSES
            return row(Outcome.ALREADY if paid else Outcome.ERROR, str(exc), **seen)
        except BillingError as exc:
            return row(Outcome.ERROR, str(exc), **seen)
        except Exception as exc:  # noqa: BLE001 - reported on the order's row; the run goes on
            return row(Outcome.ERROR, shown_to_people(exc, f"reconciling order {stuck.public_id}"), **seen)


def preview_one(
    database: Database, actor: Actor, settings: Settings, stuck: StuckOrder, gateway: Gateway
) -> ReconcileRow:
    """What ``reconcile_one`` would do with the order, by the same rule (``_verdict``), writing nothing."""
    require(actor, Action.RECONCILE)

    def row(outcome: Outcome, message: str, state: str = "", amount: int | None = None, currency: str = ""):
        return ReconcileRow(
            stuck.public_id, stuck.method.value, stuck.status.value, state, amount, currency, outcome, message
        )

    status = _ask(gateway, stuck)
    if isinstance(status, str):
        return row(Outcome.ERROR, status)
    seen = {"state": status.state.value, "amount": status.amount_cents, "currency": status.currency}
    with database.session() as session:
        outcome, message = _verdict(_get_order(session, stuck.id), status)
    if outcome is Outcome.COMPLETED:
        return row(Outcome.WOULD_COMPLETE, "The run would complete it and issue its invoice.", **seen)
    return row(outcome, message, **seen)


def _ask(gateway: Gateway, stuck: StuckOrder) -> PaymentStatus | str:
    """The gateway's answer about the order's payment, or why there is none (outside any transaction)."""
    try:
        return gateway.fetch_status(stuck.provider_ref)
    except BillingError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken answer must not end the run for everyone
        return shown_to_people(exc, f"asking the gateway about order {stuck.public_id}")


def _verdict(order: Order, status: PaymentStatus) -> tuple[Outcome, str]:
    """What reconcile makes of an order given the gateway's answer: the one rule of the run and its dry run.

    COMPLETED means "complete it": the payment succeeded for the order's amount and currency
    (``orders._check_payment``, the check ``complete_order`` makes again under its lock).
    """
    if order.status in PAID_STATUSES:
        return Outcome.ALREADY, f"Order {order.public_id} is already {order.status.value}."
    if order.status not in COMPLETABLE:
        return Outcome.ERROR, f"Order {order.public_id} is {order.status.value}; it cannot be completed."
    if status.state is not PaymentState.SUCCEEDED:
        detail = f": {status.detail}" if status.detail else ""
        return Outcome.UNPAID, f"The gateway says {status.state.value}{detail}."
    try:
        _check_payment(order, status)
    except PaymentMismatch as exc:
        return Outcome.MISMATCH, str(exc)
    return Outcome.COMPLETED, ""


class _Gateways:
    """One gateway per method for the run; a method with no API gives every order its reason."""

    def __init__(self, gateway_for: GatewayFor, settings: Settings, database: Database):
        self._for, self._settings, self._database = gateway_for, settings, database
        self._cache: dict[Method, Gateway | GatewayError] = {}

    def get(self, method: Method) -> Gateway | GatewayError:
        if method not in self._cache:
            try:
                self._cache[method] = self._for(method, self._settings, self._database)
            except GatewayError as exc:
                self._cache[method] = exc
        return self._cache[method]


def reconcile(
    database: Database,
    actor: Actor,
    settings: Settings,
    *,
    since: datetime,
    until: datetime,
    methods: list[Method] | None = None,
    gateway_for: GatewayFor = registry.gateway_for,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    dry_run: bool = False,
) -> ReconcileReport:
    """Check every stuck order created in [since, until) at its gateway and complete the paid ones.

    Safe to stop (``should_stop`` is asked between orders) and to run again: completed orders are
    no longer pending, so a rerun does not even select them. ``dry_run`` asks the gateway and says
    what each order would become (``preview_one``), recording nothing and finishing no refund.
    """
    require(actor, Action.RECONCILE)
    with database.session() as session:
        total = count_stuck(session, actor, since=since, until=until, methods=methods)
    report = ReconcileReport(total=total, dry_run=dry_run)
    one = preview_one if dry_run else reconcile_one
    gateways = _Gateways(gateway_for, settings, database)
    if progress:
        progress(0, total)
    for stuck in iter_stuck(database, actor, since=since, until=until, methods=methods):
        if should_stop and should_stop():
            report.stopped = True
            break
        gateway = gateways.get(stuck.method)
        if isinstance(gateway, GatewayError):
            state = stuck.status.value
            report.rows.append(
                ReconcileRow(stuck.public_id, stuck.method.value, state, "", None, "", Outcome.ERROR, str(gateway))
            )
        else:
            report.rows.append(one(database, actor, settings, stuck, gateway))
        if progress:
            progress(len(report.rows), max(total, len(report.rows)))
    if not report.stopped and not dry_run:
        report.refunds = reconcile_refunds(database, actor, settings, gateway_for=gateway_for)
    return report


# --- from Stripe events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    id: str
    created: int
    intent: str
    order: str | None


@dataclass(frozen=True)
class Cursor:
    """Stripe event times are whole seconds, so the cursor keeps the ids already handled in its last
    second: the next run asks for events at or after that second and skips those ids."""

    created: int = 0
    ids: tuple[str, ...] = ()

    def encode(self) -> str:
        ids = list(self.ids)
        while ids and len(f"{self.created} {','.join(ids)}") > 255:
            ids.pop(0)  # dropping an id only means its (idempotent) event may be checked again
        return f"{self.created} {','.join(ids)}".strip()

    @classmethod
    def decode(cls, position: str | None) -> Cursor:
        if not position:
            return cls()
        created, _, ids = position.partition(" ")
        return cls(int(created), tuple(i for i in ids.split(",") if i))

    def after(self, events: list[_Event]) -> Cursor:
        if not events:
            return self
        last = max(e.created for e in events)
        ids = tuple(e.id for e in events if e.created == last)
        return Cursor(last, (self.ids if last == self.created else ()) + ids)


def _load_cursor(session: Session, name: str = EVENTS_CURSOR) -> Cursor:
    return Cursor.decode(session.scalar(select(SyncCursor.position).where(SyncCursor.name == name)))


def _save_cursor(database: Database, cursor: Cursor, name: str = EVENTS_CURSOR) -> None:
    with database.session() as session, transaction(session):
        row = session.get(SyncCursor, name)
        if row is None:
            session.add(SyncCursor(name=name, position=cursor.encode(), updated_at=utcnow()))
        else:
            row.position, row.updated_at = cursor.encode(), utcnow()


def fetch_succeeded_events(gateway, cursor: Cursor) -> list[_Event]:
    """Every payment_intent.succeeded event at or after the cursor not yet handled, oldest first.

    Stripe lists newest first, so all pages are read (a few fields per event) before any is
    processed; processing oldest first is what lets the cursor advance page by page.
    """
    params: dict = {"type": "payment_intent.succeeded", "limit": EVENTS_PAGE}
    if cursor.created:
        params["created"] = {"gte": cursor.created}
    found: list[_Event] = []
    while True:
        try:
            page = gateway.client.v1.events.list(params=params)
        except stripe.StripeError as exc:
            raise GatewayError(
                f"Stripe events could not be listed: {getattr(exc, 'user_message', None) or exc.__class__.__name__}."
            ) from None
        for event in page.data:
            intent = event.to_dict()["data"]["object"]
            metadata = intent.get("metadata") or {}
            found.append(_Event(event.id, int(event.created), intent["id"], metadata.get("order")))
        if not page.has_more or not page.data:
            break
        params["starting_after"] = page.data[-1].id
    handled = set(cursor.ids)
    fresh = [e for e in found if e.created > cursor.created or (e.created == cursor.created and e.id not in handled)]
    return sorted(fresh, key=lambda e: (e.created, e.id))


def _order_for_event(session: Session, event: _Event) -> Order | None:
    conditions = [Order.provider_ref == event.intent]
    if event.order:
        conditions.append(Order.public_id == event.order)
    found = list(session.scalars(select(Order).where(or_(*conditions))))
    return next((o for o in found if o.provider_ref == event.intent), found[0] if found else None)


def reconcile_from_events(
    database: Database,
    actor: Actor,
    settings: Settings,
    stripe_gateway,
    *,
    gateway_for: GatewayFor = registry.gateway_for,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> ReconcileReport:
    """Complete the orders whose Stripe payments succeeded since the last run (cursor in the database),
    then finish every pending refund (``refunds.reconcile_refunds``), as a run over a date range does.

    Each order is still checked with ``fetch_status``: the event only says where to look.
    """
    require(actor, Action.RECONCILE)
    with database.session() as session:
        cursor = _load_cursor(session)
    events = fetch_succeeded_events(stripe_gateway, cursor)
    report = ReconcileReport(total=len(events))
    if progress:
        progress(0, len(events))
    for start in range(0, len(events), EVENTS_PAGE):
        page = events[start : start + EVENTS_PAGE]
        handled = []
        for event in page:
            if should_stop and should_stop():
                report.stopped = True
                break
            report.rows.append(_reconcile_event(database, actor, settings, stripe_gateway, event))
            handled.append(event)
            if progress:
                progress(len(report.rows), len(events))
        cursor = cursor.after(handled)
        _save_cursor(database, cursor)
        if report.stopped:
            break
    if not report.stopped:
        report.refunds = reconcile_refunds(database, actor, settings, gateway_for=gateway_for)
    return report


def _reconcile_event(database: Database, actor: Actor, settings: Settings, gateway, event: _Event) -> ReconcileRow:
    with database.session() as session:
        order = _order_for_event(session, event)
    if order is None:
        return ReconcileRow(
            event.order or "",
            Method.STRIPE.value,
            "",
            PaymentState.SUCCEEDED.value,
            None,
            "",
            Outcome.NOT_FOUND,
            f"No order here for Stripe payment {event.intent} (event {event.id}).",
        )
    if order.status not in COMPLETABLE:
        outcome = Outcome.ALREADY if order.status in PAID_STATUSES else Outcome.MISMATCH
        return ReconcileRow(
            order.public_id,
            order.method.value,
            order.status.value,
            PaymentState.SUCCEEDED.value,
            None,
            "",
            outcome,
            f"Stripe reports payment {event.intent} succeeded; the order is {order.status.value} here.",
        )
    stuck = StuckOrder(order.id, order.public_id, order.method, order.status, event.intent, order.created_at)
    return reconcile_one(database, actor, settings, stuck, gateway)
