"""One customer, whole: who they are best matching what support typed, and everything on the customer page.

``find_customers`` ranks customers for the search box (exact id, exact email, whole-word match, the start
of a word, inside a word) from the text index (billing_core.orders.customer_index). The rest reads one
customer's profile, balance and how it is made, ledger, orders, invoices and credit notes, refunds,
audit events and the Bills tab as the customer sees it; every list is one index range paged by a
keyset cursor, newest first.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import ColumnElement, Row, Select, and_, bindparam, func, or_, select, union_all
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.audit import REASON_MAX_CHARS
from billing_core.access.roles import Action, Actor, require
from billing_core.core.db import read, transaction
from billing_core.core.errors import BillingError, NotFound
from billing_core.core.models import (
    COMPLETABLE,
    AuditEvent,
    CreditPool,
    Customer,
    CustomerTotal,
    Invoice,
    InvoiceKind,
    LedgerEntry,
    LedgerKind,
    Order,
    OrderStatus,
    Refund,
)
from billing_core.orders import customer_index, prefixes, search
from billing_core.orders.customer_index import Layer
from billing_core.orders.typed_text import QueryKind, SearchError, interpret
from billing_core.pricing.catalog import Method, PlanId

MAX_PAGE_SIZE = 200
COMPANY_MAX_CHARS = 200  # customers.company
TAX_ID_MAX_CHARS = 40  # customers.tax_id
ADDRESS_MAX_CHARS = 1_000


class Match(enum.IntEnum):
    """How a customer matched what was typed, best first."""

    ID = 0
    EMAIL = 1
    WHOLE_WORD = 2
    WORD_START = 3
    INSIDE = 4
    ORDER = 5  # the customer of an order the text named
    DOMAIN = 6  # their email's domain is the text

    @property
    def label(self) -> str:
        return {
            Match.ID: "customer id",
            Match.EMAIL: "email",
            Match.WHOLE_WORD: "whole word",
            Match.WORD_START: "start of a word",
            Match.INSIDE: "inside a word",
            Match.ORDER: "their order",
            Match.DOMAIN: "email domain",
        }[self]


@dataclass(frozen=True)
class CustomerHit:
    public_id: str
    name: str
    email: str
    company: str | None
    country: str
    tax_id: str | None
    sandbox: bool
    match: Match


@dataclass(frozen=True)
class CustomerMatches:
    hits: list[CustomerHit]
    more: bool  # more customers match than are shown
    understood_as: str


# What a hit shows, read as plain rows (no objects to track: the list only shows them).
_HIT_COLUMNS = (Customer.id, *customer_index.SHOWN)
_LAYER_MATCH = {Layer.WHOLE: Match.WHOLE_WORD, Layer.PREFIX: Match.WORD_START, Layer.INSIDE: Match.INSIDE}


def find_customers(
    session: Session, actor: Actor, text: str, *, limit: int = 10, include_sandbox: bool = False
) -> CustomerMatches:
    """The customers best matching ``text``, best first (then by name); at most ``limit``."""
    require(actor, Action.READ_CUSTOMERS)
    meaning = interpret(text)
    dialect = session.get_bind().dialect.name
    found: dict[int, tuple[Match, Row]] = {}
    visible = customer_index.visible(include_sandbox)

    def add(condition: ColumnElement[bool], match: Match) -> None:
        if len(found) > limit:
            return
        for customer in session.execute(select(*_HIT_COLUMNS).where(condition, *visible).limit(limit + 1)):
            keep(customer, match)

    def add_equal(column: str, term: str, match: Match) -> None:
        if len(found) <= limit:
            for customer in read(session, _hits_equal(column, limit, include_sandbox), {"term": term}).all():
                keep(customer, match)

    def keep(customer, match: Match) -> None:
        if customer.id not in found or found[customer.id][0] > match:
            found[customer.id] = (match, customer)

    kind, term = search.resolve(session, meaning)
    if kind is QueryKind.TOO_SHORT:
        pass
    elif kind is QueryKind.CUSTOMER_ID:
        add_equal("public_id", term, Match.ID)
    elif kind is QueryKind.CUSTOMER_ID_PREFIX:
        add(prefixes.starts_with(Customer.public_id, term, dialect), Match.ID)
    elif kind in (QueryKind.ORDER_ID, QueryKind.ORDER_ID_PREFIX, QueryKind.PROVIDER_REF):
        if kind is QueryKind.ORDER_ID_PREFIX:
            named = prefixes.starts_with(Order.public_id, term, dialect)
        else:
            named = (Order.public_id if kind is QueryKind.ORDER_ID else Order.provider_ref) == term
        add(Customer.id.in_(select(Order.customer_id).where(named).limit(limit + 1)), Match.ORDER)
    elif kind is QueryKind.EMAIL_DOMAIN:
        add_equal("email_domain", term, Match.DOMAIN)
    elif kind is QueryKind.EMAIL_PART:
        add_equal("email", term, Match.EMAIL)
        if not found:
            _words(session, keep, customer_index.typed_words(term), limit, include_sandbox)
    elif kind is QueryKind.CUSTOMER:
        typed = customer_index.typed_words(term)
        if len(typed) == 1 and "@" in typed[0]:
            add_equal("email", typed[0], Match.EMAIL)
        if not _words(session, keep, typed, limit, include_sandbox):
            prefix = [prefixes.starts_with(Customer.email, term.lower(), dialect)]
            if len(term) <= search.MAX_NAME_CHARS:
                prefix.append(prefixes.name_starts_with(Customer.name, term, dialect))
            add(or_(*prefix), Match.WORD_START)
    ranked = sorted(found.values(), key=lambda pair: (pair[0], pair[1].name, pair[1].id))
    hits = [
        CustomerHit(c.public_id, c.name, c.email, c.company, c.country, c.tax_id, bool(c.sandbox), match)
        for match, c in ranked[:limit]
    ]
    return CustomerMatches(hits, len(ranked) > limit, kind.value)


def _words(session: Session, keep, typed: list[str], limit: int, include_sandbox: bool) -> bool:
    """Keep the best ``limit`` + 1 customers the words find (the first of those whose orders are
    listed: the same lookup); False when no index can answer the words."""
    best = customer_index.best_matches(session, typed, search.CUSTOMER_FANOUT + 1, include_sandbox=include_sandbox)
    if best is None:
        return False
    for customer in best[: limit + 1]:
        keep(customer.shown, _LAYER_MATCH[customer.layer])
    return True


@lru_cache(maxsize=64)
def _hits_equal(column: str, limit: int, include_sandbox: bool) -> Select:
    """The first ``limit`` + 1 customers (by id: the same ones every time, an email domain's from its
    index) whose ``column`` equals the parameter ``term``."""
    visible = customer_index.visible(include_sandbox)
    equal = getattr(Customer, column) == bindparam("term")
    return select(*_HIT_COLUMNS).where(equal, *visible).order_by(Customer.id).limit(limit + 1)


# --- one customer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    id: int
    public_id: str
    name: str
    email: str
    company: str | None
    country: str
    tax_id: str | None
    address: str | None
    sandbox: bool
    created_at: datetime
    balance: int  # hundredths of a credit: the sum of the ledger
    balance_by_kind: dict[LedgerKind, int]  # how the balance is made
    balance_by_pool: dict[CreditPool, int]  # paid (bought) and promotional (given) credits apart
    order_count: int
    paid_cents: int  # lifetime total charged on paid top-ups (the revenue rollup's customer total)


def _customer(session: Session, public_id: str) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.public_id == (public_id or "").strip().lower()))
    if customer is None:
        raise NotFound(f"There is no customer {(public_id or '')[:40]}.")
    return customer


def customer_profile(session: Session, actor: Actor, public_id: str) -> Profile:
    """Who the customer is and what they hold."""
    require(actor, Action.READ_CUSTOMERS)
    c = _customer(session, public_id)
    by_kind: dict[LedgerKind, int] = {}
    by_pool = {pool: 0 for pool in CreditPool}
    for kind, pool, total in session.execute(
        select(LedgerEntry.kind, LedgerEntry.pool, func.sum(LedgerEntry.credits))
        .where(LedgerEntry.customer_id == c.id)
        .group_by(LedgerEntry.kind, LedgerEntry.pool)
    ):
        by_kind[LedgerKind(kind)] = by_kind.get(LedgerKind(kind), 0) + int(total)
        by_pool[CreditPool(pool)] += int(total)
    orders = session.scalar(select(func.count()).select_from(Order).where(Order.customer_id == c.id)) or 0
    total = session.scalar(select(CustomerTotal.total_cents).where(CustomerTotal.customer_id == c.id)) or 0
    return Profile(
        id=c.id,
        public_id=c.public_id,
        name=c.name,
        email=c.email,
        company=c.company,
        country=c.country,
        tax_id=c.tax_id,
        address=c.address,
        sandbox=bool(c.sandbox),
        created_at=c.created_at,
        balance=sum(by_kind.values()),
        balance_by_kind=by_kind,
        balance_by_pool=by_pool,
        order_count=int(orders),
        paid_cents=int(total),
    )


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: the next page starts strictly after it, newest first."""

    at: datetime
    id: int


def _page_size(size: int) -> None:
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise SearchError(f"A page holds 1 to {MAX_PAGE_SIZE} rows.")


def _after(at_column, id_column, cursor: Cursor | None) -> list[ColumnElement[bool]]:
    if cursor is None:
        return []
    return [at_column <= cursor.at, or_(at_column < cursor.at, and_(at_column == cursor.at, id_column < cursor.id))]


def _paged(rows: list, size: int, at: str) -> tuple[list, Cursor | None]:
    more = len(rows) > size
    rows = rows[:size]
    return rows, (Cursor(getattr(rows[-1], at), rows[-1].id) if more else None)


@dataclass(frozen=True)
class LedgerRow:
    id: int
    created_at: datetime
    kind: LedgerKind
    credits: int
    order_public_id: str | None
    created_by: str
    pool: CreditPool = CreditPool.PAID
    note: str | None = None


def ledger_page(
    session: Session, actor: Actor, customer_id: int, *, size: int = 50, after: Cursor | None = None
) -> tuple[list[LedgerRow], Cursor | None]:
    """The customer's ledger entries, newest first."""
    require(actor, Action.READ_CUSTOMERS)
    _page_size(size)
    rows = session.execute(
        select(
            LedgerEntry.id,
            LedgerEntry.created_at,
            LedgerEntry.kind,
            LedgerEntry.credits,
            Order.public_id.label("order_public_id"),
            LedgerEntry.created_by,
            LedgerEntry.pool,
            LedgerEntry.note,
        )
        .outerjoin(Order, Order.id == LedgerEntry.order_id)
        .where(LedgerEntry.customer_id == customer_id, *_after(LedgerEntry.created_at, LedgerEntry.id, after))
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .limit(size + 1)
    ).all()
    page, cursor = _paged(rows, size, "created_at")
    return [
        LedgerRow(
            r.id,
            r.created_at,
            LedgerKind(r.kind),
            r.credits,
            r.order_public_id,
            r.created_by,
            CreditPool(r.pool),
            r.note,
        )
        for r in page
    ], cursor


@dataclass(frozen=True)
class CustomerOrder:
    id: int
    public_id: str
    created_at: datetime
    plan: PlanId
    method: Method
    amount_cents: int
    total_cents: int
    credits: int
    status: OrderStatus
    invoice_id: int | None
    invoice_number: str | None
    sandbox: bool

    @property
    def completable(self) -> bool:
        return self.status in COMPLETABLE


def orders_page(
    session: Session, actor: Actor, customer_id: int, *, size: int = 50, after: Cursor | None = None
) -> tuple[list[CustomerOrder], Cursor | None]:
    """The customer's orders with their invoice, newest first (the (customer_id, created_at) index)."""
    require(actor, Action.READ_CUSTOMERS)
    _page_size(size)
    rows = session.execute(
        select(
            Order.id,
            Order.public_id,
            Order.created_at,
            Order.plan,
            Order.method,
            Order.amount_cents,
            Order.total_cents,
            Order.credits,
            Order.status,
            Order.sandbox,
        )
        .where(Order.customer_id == customer_id, *_after(Order.created_at, Order.id, after))
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(size + 1)
    ).all()
    page, cursor = _paged(rows, size, "created_at")
    invoices = {
        order_id: (invoice_id, number)
        for order_id, invoice_id, number in session.execute(
            select(Invoice.order_id, Invoice.id, Invoice.number).where(
                Invoice.order_id.in_([r.id for r in page]), Invoice.kind == InvoiceKind.INVOICE
            )
        )
    }
    return [
        CustomerOrder(
            r.id,
            r.public_id,
            r.created_at,
            PlanId(r.plan),
            Method(r.method),
            r.amount_cents,
            r.total_cents,
            r.credits,
            OrderStatus(r.status),
            *invoices.get(r.id, (None, None)),
            bool(r.sandbox),
        )
        for r in page
    ], cursor


@dataclass(frozen=True)
class DocumentRow:
    id: int
    number: str
    kind: InvoiceKind
    issued_at: datetime
    total_cents: int
    order_public_id: str


def documents_page(
    session: Session, actor: Actor, customer_id: int, *, size: int = 50, after: Cursor | None = None
) -> tuple[list[DocumentRow], Cursor | None]:
    """The customer's invoices and credit notes, newest first: found through their orders by index."""
    require(actor, Action.READ_CUSTOMERS)
    _page_size(size)
    columns = (Invoice.id, Invoice.number, Invoice.kind, Invoice.issued_at, Invoice.total_cents, Order.public_id)
    invoices = (
        select(*columns)
        .join(Order, Order.id == Invoice.order_id)
        .where(Order.customer_id == customer_id, Invoice.kind == InvoiceKind.INVOICE)
    )
    credit_notes = (
        select(*columns)
        .join(Refund, Refund.credit_note_id == Invoice.id)
        .join(Order, Order.id == Refund.order_id)
        .where(Order.customer_id == customer_id)
    )
    both = invoices.union_all(credit_notes).subquery()
    rows = session.execute(
        select(both)
        .where(*_after(both.c.issued_at, both.c.id, after))
        .order_by(both.c.issued_at.desc(), both.c.id.desc())
        .limit(size + 1)
    ).all()
    page, cursor = _paged(rows, size, "issued_at")
    return [
        DocumentRow(r.id, r.number, InvoiceKind(r.kind), r.issued_at, r.total_cents, r.public_id) for r in page
    ], cursor


@dataclass(frozen=True)
class RefundRow:
    id: int
    created_at: datetime
    order_public_id: str
    amount_cents: int
    credits: int
    reason: str
    created_by: str


def refunds_for(session: Session, actor: Actor, customer_id: int, *, limit: int = 100) -> list[RefundRow]:
    """The customer's refunds, newest first (few: at most a few per order)."""
    require(actor, Action.READ_CUSTOMERS)
    rows = session.execute(
        select(
            Refund.id,
            Refund.created_at,
            Order.public_id,
            Refund.amount_cents,
            Refund.credits,
            Refund.reason,
            Refund.created_by,
        )
        .join(Order, Order.id == Refund.order_id)
        .where(Order.customer_id == customer_id)
        .order_by(Refund.created_at.desc(), Refund.id.desc())
        .limit(limit)
    ).all()
    return [RefundRow(*r) for r in rows]


@dataclass(frozen=True)
class EventRow:
    at: datetime
    actor: str
    action: str
    record: str
    reason: str | None


def audit_events_for(session: Session, actor: Actor, customer_id: int, *, limit: int = 50) -> list[EventRow]:
    """What was done to the customer and their orders, newest first."""
    require(actor, Action.READ_CUSTOMERS)
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"There is no customer {customer_id}.")
    # Two parts, each newest first by its own index and cut at ``limit``, then merged: one OR over both made
    # PostgreSQL walk the whole log by time (0.3 s at 1,000,000 events) for a customer with hundreds of orders.
    a = AuditEvent
    columns = (a.id, a.at, a.actor_email, a.action, a.entity_type, a.entity_id, a.reason)
    newest = (a.at.desc(), a.id.desc())
    own = select(*columns).where(a.entity_type == "customer", a.entity_id == customer.public_id)
    of_orders = (
        select(*columns)
        .join(Order, Order.public_id == a.entity_id)
        .where(a.entity_type == "order", Order.customer_id == customer_id)
    )
    parts = [part.order_by(*newest).limit(limit).subquery() for part in (own, of_orders)]
    both = union_all(*(select(*part.c) for part in parts)).subquery()
    rows = session.execute(select(both).order_by(both.c.at.desc(), both.c.id.desc()).limit(limit)).all()
    return [EventRow(r.at, r.actor_email, r.action, f"{r.entity_type} {r.entity_id}", r.reason) for r in rows]


# --- billing details -------------------------------------------------------------------------------

_COUNTRY = re.compile(r"^[A-Z]{2}$")


def update_billing_details(
    session: Session,
    actor: Actor,
    public_id: str,
    *,
    reason: str,
    address: str | None,
    company: str | None,
    tax_id: str | None,
    country: str,
) -> Profile:
    """Change where and to whom the customer is billed, with a reason and an audit event (before, after).

    Issued invoices keep the buyer frozen at issue; only documents issued from now on show the change.
    """
    require(actor, Action.EDIT_CUSTOMER)
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("Give a reason for the change; it is kept in the audit log.")
    if len(reason) > REASON_MAX_CHARS or len(address or "") > ADDRESS_MAX_CHARS or len(country or "") > 10:
        raise BillingError(
            f"The reason takes at most {REASON_MAX_CHARS:,} characters, the address {ADDRESS_MAX_CHARS:,}."
        )
    country = (country or "").strip().upper()
    if not _COUNTRY.match(country):
        raise BillingError("Country must be a two-letter ISO code, such as DE or JP.")
    changed = {
        "address": (address or "").strip() or None,
        "company": (company or "").strip() or None,
        "tax_id": (tax_id or "").strip() or None,
        "country": country,
    }
    if len(changed["company"] or "") > COMPANY_MAX_CHARS or len(changed["tax_id"] or "") > TAX_ID_MAX_CHARS:
        raise BillingError(
            f"The company takes at most {COMPANY_MAX_CHARS} characters, the tax id at most {TAX_ID_MAX_CHARS}."
        )
    with transaction(session):
        customer = session.scalar(
            select(Customer).where(Customer.public_id == (public_id or "").strip().lower()).with_for_update()
        )
        if customer is None:
            raise NotFound(f"There is no customer {(public_id or '')[:40]}.")
        before = {field: getattr(customer, field) for field in changed}
        if before == changed:
            raise BillingError("Nothing changed: these are already the customer's billing details.")
        for field, value in changed.items():
            setattr(customer, field, value)
        session.flush()
        audit.record(
            session,
            actor,
            "customer.edit_billing",
            "customer",
            customer.public_id,
            reason=reason,
            before=before,
            after=changed,
        )
    return customer_profile(session, actor, customer.public_id)


# --- the customer's own Bills tab -----------------------------------------------------------------


@dataclass(frozen=True)
class BillRow:
    """One line of the Bills tab as the product shows it to the customer."""

    order_public_id: str
    created_at: datetime
    description: str
    amount_cents: int
    total_cents: int
    credits: int
    status: str
    action: str  # "Complete Order", "Download invoice", or ""
    invoice_id: int | None


_CUSTOMER_STATUS = {
    OrderStatus.PENDING: "Unpaid",
    OrderStatus.PAID: "Paid",
    OrderStatus.FAILED: "Failed",
    OrderStatus.EXPIRED: "Unpaid",
    OrderStatus.CANCELLED: "Cancelled",
    OrderStatus.REFUNDED: "Refunded",
    OrderStatus.PARTIALLY_REFUNDED: "Partially refunded",
}


def bill_rows(orders: list[CustomerOrder]) -> list[BillRow]:
    """The Bills tab for a page of the customer's orders: unpaid ones offer Complete Order, paid ones the invoice."""
    rows = []
    for o in orders:
        if o.completable:
            action = "Complete Order"
        elif o.invoice_id is not None:
            action = "Download invoice"
        else:
            action = ""
        plan = "Custom amount" if o.plan is PlanId.CUSTOM else f"{o.plan.value.title()} plan"
        rows.append(
            BillRow(
                o.public_id,
                o.created_at,
                f"{plan} · credits top-up",
                o.amount_cents,
                o.total_cents,
                o.credits,
                _CUSTOMER_STATUS[o.status],
                action,
                o.invoice_id,
            )
        )
    return rows


__all__ = [
    "BillRow",
    "Cursor",
    "CustomerHit",
    "CustomerMatches",
    "CustomerOrder",
    "DocumentRow",
    "EventRow",
    "LedgerRow",
    "Match",
    "Profile",
    "RefundRow",
    "audit_events_for",
    "bill_rows",
    "customer_profile",
    "documents_page",
    "find_customers",
    "ledger_page",
    "orders_page",
    "refunds_for",
    "update_billing_details",
]
