"""Bills review: issued invoices and credit notes listed, totalled and checked in the database.

Also the app's side of batch regeneration: a job started from a page runs in its own process
(``python -m billing_core invoices run-job JOB_ID --actor EMAIL --role ROLE``, as the person who launched it)
and the page follows it through the job row.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.db import transaction
from billing_core.core.emails import EMAIL_MAX_CHARS
from billing_core.core.errors import BillingError, NotFound
from billing_core.core.exports import to_csv_bytes
from billing_core.core.models import (
    BillsDaily,
    Customer,
    Invoice,
    InvoiceFile,
    InvoiceKind,
    InvoiceSeries,
    Order,
    OrderStatus,
    RegenerationJob,
    RegenerationStatus,
    utcnow,
)
from billing_core.invoices import background, batch, storage
from billing_core.pricing.catalog import Method, PlanId

INVOICED_STATUSES = (OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.PARTIALLY_REFUNDED)
EXPORT_LIMIT = 100_000
NUMBER_MAX_CHARS = 60  # invoices.number
COUNT_CAP = 10_000  # filters the bills totals cannot answer are counted this far, never further
EXPORT_COLUMNS = (
    "number", "kind", "issued_at_utc", "customer", "customer_email", "country", "plan", "method",
    "subtotal", "fee", "tax", "total", "currency", "order", "refers_to", "latest_file_version",
)  # fmt: skip


# --- filters --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentFilters:
    """What to list: issue dates (UTC, both days included), plan, method, customer, buyer country,
    a number range within one series, document kind, and whether sandbox documents count."""

    since: date | None = None
    until: date | None = None
    plans: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    customer: str | None = None
    country: str | None = None
    number_from: str | None = None
    number_to: str | None = None
    kind: InvoiceKind | None = None
    include_sandbox: bool = False


def _one(kind, value: object, what: str):
    """A filter's plan, method or kind, or a clear refusal (not a ValueError) for a value it cannot be."""
    try:
        return kind(value)
    except ValueError:
        shown = str(value)[:40]
        raise BillingError(f"“{shown}” is not a {what}; choose one of {', '.join(k.value for k in kind)}.") from None


def split_number(number: str) -> tuple[str, int]:
    """'INV-2026-000042' -> ('INV-2026', 42): the series and the sequence within it."""
    text = number.strip() if len(number) <= NUMBER_MAX_CHARS else ""
    series, _, digits = text.rpartition("-")
    if not series or not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        raise BillingError(f"“{number.strip()[:NUMBER_MAX_CHARS]}” is not an invoice number such as INV-2026-000042.")
    return series, int(digits)


def _number_range(filters: DocumentFilters) -> list[ColumnElement[bool]]:
    ends = [split_number(n) for n in (filters.number_from, filters.number_to) if n and n.strip()]
    if not ends:
        return []
    if len({series for series, _ in ends}) > 1:
        raise BillingError("A number range must stay within one series: both ends need the same prefix.")
    conditions = [Invoice.series == ends[0][0]]
    if filters.number_from and filters.number_from.strip():
        conditions.append(Invoice.sequence >= split_number(filters.number_from)[1])
    if filters.number_to and filters.number_to.strip():
        conditions.append(Invoice.sequence <= split_number(filters.number_to)[1])
    if len(ends) == 2 and ends[0][1] > ends[1][1]:
        raise BillingError("The first number of the range is after the last.")
    return conditions


def _day_start(day: date) -> datetime:
    return datetime.combine(day, dtime.min, UTC)


def _conditions(session: Session, filters: DocumentFilters) -> list[ColumnElement[bool]]:
    if filters.since and filters.until and filters.since > filters.until:
        raise BillingError("The start date is after the end date.")
    conditions: list[ColumnElement[bool]] = []
    if not filters.include_sandbox:
        conditions.append(Invoice.sandbox.is_(False))
    if filters.since:
        conditions.append(Invoice.issued_at >= _day_start(filters.since))
    if filters.until:
        conditions.append(Invoice.issued_at < _day_start(filters.until + timedelta(days=1)))
    if filters.kind:
        conditions.append(Invoice.kind == _one(InvoiceKind, filters.kind, "kind"))
    if filters.plans:
        conditions.append(Order.plan.in_([_one(PlanId, p, "plan") for p in filters.plans]))
    if filters.methods:
        conditions.append(Order.method.in_([_one(Method, m, "method") for m in filters.methods]))
    if filters.customer and filters.customer.strip():
        who = filters.customer.strip()
        customer_id = (
            session.scalar(select(Customer.id).where(or_(Customer.public_id == who, Customer.email == who.lower())))
            if len(who) <= EMAIL_MAX_CHARS
            else None
        )
        if customer_id is None:
            shown = who if len(who) <= 40 else who[:39] + "…"  # never the whole of a long paste
            raise NotFound(f"No customer with the id or email “{shown}”.")
        conditions.append(Order.customer_id == customer_id)
    if filters.country and filters.country.strip():
        conditions.append(_buyer_country() == filters.country.strip().upper())
    conditions += _number_range(filters)
    return conditions


def _buyer_country() -> ColumnElement[str]:
    """The country frozen on the document at issue, not the customer's country today."""
    return Invoice.buyer["country"].as_string()


# --- the list -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: the next page starts strictly after it (newest first)."""

    issued_at: datetime
    id: int


@dataclass(frozen=True)
class DocumentRow:
    id: int
    number: str
    kind: InvoiceKind
    issued_at: datetime
    customer: str
    customer_email: str
    country: str
    plan: str
    method: str
    subtotal_cents: int
    fee_cents: int
    tax_cents: int
    total_cents: int
    currency: str
    order_public_id: str
    refers_to: str | None
    latest_version: int | None

    def export(self) -> dict:
        """One CSV row: amounts as decimal numbers (a spreadsheet sums them), no symbols."""
        return {
            "number": self.number,
            "kind": self.kind.value,
            "issued_at_utc": f"{self.issued_at:%Y-%m-%d %H:%M:%S}",
            "customer": self.customer,
            "customer_email": self.customer_email,
            "country": self.country,
            "plan": self.plan,
            "method": self.method,
            "subtotal": money.to_decimal(self.subtotal_cents),
            "fee": money.to_decimal(self.fee_cents),
            "tax": money.to_decimal(self.tax_cents),
            "total": money.to_decimal(self.total_cents),
            "currency": self.currency,
            "order": self.order_public_id,
            "refers_to": self.refers_to or "",
            "latest_file_version": self.latest_version or "",
        }


@dataclass(frozen=True)
class DocumentPage:
    rows: list[DocumentRow]
    next_cursor: Cursor | None


def _documents_select(session: Session, filters: DocumentFilters) -> Select:
    original = aliased(Invoice)
    latest = select(func.max(InvoiceFile.version)).where(InvoiceFile.invoice_id == Invoice.id).scalar_subquery()
    return (
        select(
            Invoice.id,
            Invoice.number,
            Invoice.kind,
            Invoice.issued_at,
            Customer.public_id,
            Customer.email,
            _buyer_country(),
            Order.plan,
            Order.method,
            Invoice.subtotal_cents,
            Invoice.fee_cents,
            Invoice.tax_cents,
            Invoice.total_cents,
            Invoice.currency,
            Order.public_id,
            original.number,
            latest,
        )
        .join(Order, Order.id == Invoice.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(original, original.id == Invoice.refers_to_id)
        .where(*_conditions(session, filters))
        .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
    )


def _row(r) -> DocumentRow:
    return DocumentRow(
        id=r[0],
        number=r[1],
        kind=r[2],
        issued_at=r[3],
        customer=r[4],
        customer_email=r[5],
        country=r[6] or "",
        plan=r[7].value,
        method=r[8].value,
        subtotal_cents=r[9],
        fee_cents=r[10],
        tax_cents=r[11],
        total_cents=r[12],
        currency=r[13],
        order_public_id=r[14],
        refers_to=r[15],
        latest_version=r[16],
    )


def _after(cursor: Cursor) -> ColumnElement[bool]:
    return or_(
        Invoice.issued_at < cursor.issued_at, and_(Invoice.issued_at == cursor.issued_at, Invoice.id < cursor.id)
    )


def list_documents(
    session: Session, actor: Actor, filters: DocumentFilters, page_size: int = 50, after: Cursor | None = None
) -> DocumentPage:
    """One page of matching invoices and credit notes, newest first; pass ``next_cursor`` back for more."""
    require(actor, Action.READ_BILLS)
    stmt = _documents_select(session, filters)
    if after is not None:
        stmt = stmt.where(_after(after))
    found = [_row(r) for r in session.execute(stmt.limit(page_size + 1))]
    rows = found[:page_size]
    more = len(found) > page_size
    return DocumentPage(rows, Cursor(rows[-1].issued_at, rows[-1].id) if more else None)


def iter_documents(
    session: Session, actor: Actor, filters: DocumentFilters, batch_size: int = 1_000
) -> Iterator[DocumentRow]:
    """Every matching document, newest first, fetched page by page."""
    require(actor, Action.READ_BILLS)  # here, not in the generator: a refused call raises at once
    return _iter_documents(session, actor, filters, batch_size)


def _iter_documents(session: Session, actor: Actor, filters: DocumentFilters, batch_size: int) -> Iterator[DocumentRow]:
    cursor = None
    while True:
        page = list_documents(session, actor, filters, batch_size, cursor)
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def count_documents(session: Session, actor: Actor, filters: DocumentFilters) -> int:
    require(actor, Action.READ_BILLS)
    stmt = _documents_select(session, filters).order_by(None).subquery()
    return session.scalar(select(func.count()).select_from(stmt)) or 0


def documents_csv(
    session: Session, actor: Actor, filters: DocumentFilters, limit: int = EXPORT_LIMIT
) -> tuple[bytes, int]:
    """The matching documents as spreadsheet-safe CSV (at most ``limit`` rows) and how many were written."""
    rows = []
    for row in iter_documents(session, actor, filters):
        if len(rows) == limit:
            break
        rows.append(row.export())
    return to_csv_bytes(rows, EXPORT_COLUMNS), len(rows)


# --- totals ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TotalRow:
    month: str  # YYYY-MM, UTC
    plan: str
    documents: int
    subtotal_cents: int
    fee_cents: int
    tax_cents: int
    total_cents: int


def _month(session: Session) -> ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("month", func.timezone("UTC", Invoice.issued_at)), "YYYY-MM")
    return func.strftime("%Y-%m", Invoice.issued_at)


def answered_by_totals(filters: DocumentFilters) -> bool:
    """Whether the bills totals (per day, plan, method, kind, series, sandbox) hold the answer for ``filters``:
    a customer, a buyer country or a number range are not among their dimensions."""
    beyond = (filters.customer, filters.country, filters.number_from, filters.number_to)
    return not any(value and value.strip() for value in beyond)


def _rollup_totals(session: Session, filters: DocumentFilters) -> list[TotalRow]:
    _conditions(session, filters)  # the same validation and messages as the list
    where: list[ColumnElement[bool]] = []
    if not filters.include_sandbox:
        where.append(BillsDaily.sandbox.is_(False))
    if filters.since:
        where.append(BillsDaily.day >= filters.since)
    if filters.until:
        where.append(BillsDaily.day <= filters.until)
    if filters.kind:
        where.append(BillsDaily.kind == _one(InvoiceKind, filters.kind, "kind"))
    if filters.plans:
        where.append(BillsDaily.plan.in_([_one(PlanId, p, "plan") for p in filters.plans]))
    if filters.methods:
        where.append(BillsDaily.method.in_([_one(Method, m, "method") for m in filters.methods]))
    if session.get_bind().dialect.name == "postgresql":
        month = func.to_char(BillsDaily.day, "YYYY-MM").label("month")
    else:
        month = func.substr(BillsDaily.day, 1, 7).label("month")
    stmt = (
        select(
            month,
            BillsDaily.plan,
            func.sum(BillsDaily.documents),
            func.sum(BillsDaily.subtotal_cents),
            func.sum(BillsDaily.fee_cents),
            func.sum(BillsDaily.tax_cents),
            func.sum(BillsDaily.total_cents),
        )
        .where(*where)
        .group_by(month, BillsDaily.plan)
        .order_by(month.desc(), BillsDaily.plan)
    )
    return _total_rows(session, stmt)


def _total_rows(session: Session, stmt: Select) -> list[TotalRow]:
    """Rows of (month, plan, count, subtotal, fee, tax, total); PostgreSQL sums bigints as numeric."""
    return [TotalRow(m, p.value, *(int(v) for v in sums)) for m, p, *sums in session.execute(stmt)]


def totals(session: Session, actor: Actor, filters: DocumentFilters) -> list[TotalRow]:
    """Count and sums of the matching documents per UTC month and plan (credit notes count negative).

    From the bills totals when they hold the answer (see ``answered_by_totals``), else from the documents."""
    require(actor, Action.READ_BILLS)
    if answered_by_totals(filters):
        return _rollup_totals(session, filters)
    return _scanned_totals(session, filters)


def _scanned_totals(session: Session, filters: DocumentFilters) -> list[TotalRow]:
    month = _month(session).label("month")
    stmt = (
        select(
            month,
            Order.plan,
            func.count(),
            func.sum(Invoice.subtotal_cents),
            func.sum(Invoice.fee_cents),
            func.sum(Invoice.tax_cents),
            func.sum(Invoice.total_cents),
        )
        .join(Order, Order.id == Invoice.order_id)
        .where(*_conditions(session, filters))
        .group_by(month, Order.plan)
        .order_by(month.desc(), Order.plan)
    )
    return [
        TotalRow(m, p.value, n, int(s), int(f), int(t), int(tot)) for m, p, n, s, f, t, tot in session.execute(stmt)
    ]


@dataclass(frozen=True)
class Summary:
    """What the bills review shows above the list: how many documents match, and their totals.

    ``capped``: more than ``documents`` match and counting them would mean reading them all (a filter the
    bills totals cannot answer); then ``rows`` is None, because totals would need every one of them."""

    documents: int
    capped: bool
    rows: list[TotalRow] | None

    @property
    def label(self) -> str:
        return f"{self.documents:,}+" if self.capped else f"{self.documents:,}"


def summary(session: Session, actor: Actor, filters: DocumentFilters, cap: int = COUNT_CAP) -> Summary:
    """Count and totals of the matching documents: from the bills totals for any filter they answer (a few
    thousand rows whatever the number of documents), else from at most ``cap`` + 1 matching documents."""
    require(actor, Action.READ_BILLS)
    if answered_by_totals(filters):
        rows = _rollup_totals(session, filters)
        return Summary(sum(r.documents for r in rows), False, rows)
    conditions = _conditions(session, filters)
    # Counted first, reading no more than it must: the order only when a condition needs it.
    counted = select(Invoice.id).where(*conditions)
    if filters.plans or filters.methods or (filters.customer and filters.customer.strip()):
        counted = counted.join(Order, Order.id == Invoice.order_id)
    found = session.scalar(select(func.count()).select_from(counted.limit(cap + 1).subquery())) or 0
    if found > cap:
        return Summary(cap, True, None)
    month = _month(session).label("month")
    matching = (
        select(
            month,
            Order.plan.label("plan"),
            Invoice.subtotal_cents,
            Invoice.fee_cents,
            Invoice.tax_cents,
            Invoice.total_cents,
        )
        .join(Order, Order.id == Invoice.order_id)
        .where(*conditions)
        .subquery()
    )
    c = matching.c
    stmt = (
        select(
            c.month,
            c.plan,
            func.count(),
            func.sum(c.subtotal_cents),
            func.sum(c.fee_cents),
            func.sum(c.tax_cents),
            func.sum(c.total_cents),
        )
        .group_by(c.month, c.plan)
        .order_by(c.month.desc(), c.plan)
    )
    rows = _total_rows(session, stmt)
    return Summary(found, False, rows)


# --- checks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    count: int
    examples: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.count == 0


def _paid_without_invoice(session: Session, limit: int) -> Check:
    has_invoice = select(Invoice.id).where(Invoice.order_id == Order.id, Invoice.kind == InvoiceKind.INVOICE).exists()
    where = (Order.status.in_(INVOICED_STATUSES), Order.sandbox.is_(False), ~has_invoice)
    count = session.scalar(select(func.count()).select_from(Order).where(*where)) or 0
    examples = list(session.scalars(select(Order.public_id).where(*where).order_by(Order.id).limit(limit)))
    return Check(
        "Paid order without an invoice",
        count,
        examples,
        "Every paid or refunded order has its invoice." if not count else f"{count:,} paid orders have no invoice.",
    )


def _total_mismatch(session: Session, limit: int) -> Check:
    where = (Invoice.kind == InvoiceKind.INVOICE, Invoice.total_cents != Order.total_cents)
    base = select(Invoice.number, Invoice.total_cents, Order.public_id, Order.total_cents).join(
        Order, Order.id == Invoice.order_id
    )
    count = session.scalar(
        select(func.count()).select_from(Invoice).join(Order, Order.id == Invoice.order_id).where(*where)
    )
    rows = session.execute(base.where(*where).order_by(Invoice.id).limit(limit))
    examples = [
        f"{number}: {money.format_cents(inv)} vs order {order} {money.format_cents(ordered)}"
        for number, inv, order, ordered in rows
    ]
    count = count or 0
    message = (
        "Every invoice total equals its order's total." if not count else f"{count:,} invoices differ from their order."
    )
    return Check("Invoice total differs from its order", count, examples, message)


def _series_gaps(session: Session, limit: int) -> Check:
    """Per series: numbers issued vs the highest vs distinct, the allocator's counter and health, and the
    holes (LAG)."""
    stats = session.execute(
        select(
            Invoice.series,
            func.count(),
            func.count(func.distinct(Invoice.sequence)),
            func.max(Invoice.sequence),
            func.max(InvoiceSeries.next_number),
            func.min(Invoice.sequence),
            func.max(InvoiceSeries.issued),
            func.max(InvoiceSeries.first_number),
            func.max(InvoiceSeries.last_number),
        )
        .outerjoin(InvoiceSeries, InvoiceSeries.series == Invoice.series)
        .group_by(Invoice.series)
        .order_by(Invoice.series)
    ).all()
    problems: list[str] = []
    troubled = 0
    for series, issued, distinct, highest, next_number, lowest, *kept in stats:
        allocated = max(highest, (next_number or 1) - 1)
        repeats, missing = issued - distinct, allocated - distinct
        if repeats or missing:
            troubled += 1
            problems.append(
                f"{series}: {issued:,} issued, highest {highest:,}, {missing:,} missing, {repeats:,} repeated"
            )
        elif tuple(kept) != (issued, lowest, highest):
            troubled += 1
            problems.append(
                f"{series}: its health says {kept[0]:,} issued, {kept[1]}–{kept[2]}; "
                f"stored are {issued:,}, {lowest}–{highest}"
            )
    if troubled:
        previous = func.lag(Invoice.sequence).over(partition_by=Invoice.series, order_by=Invoice.sequence)
        ordered = select(Invoice.series, Invoice.sequence, func.coalesce(previous, 0).label("previous")).subquery()
        holes = session.execute(
            select(ordered.c.series, ordered.c.previous, ordered.c.sequence)
            .where(ordered.c.sequence - ordered.c.previous > 1)
            .order_by(ordered.c.series, ordered.c.sequence)
            .limit(limit)
        )
        for series, before, after in holes:
            problems.append(f"{series}: missing {_span(before + 1, after - 1)}")
        for series, _, _, highest, next_number, *_ in stats:
            if next_number and next_number - 1 > highest:
                problems.append(f"{series}: missing {_span(highest + 1, next_number - 1)} (allocated, not stored)")
        problems.extend(f"{s}: sequence {q} appears more than once" for s, q in _repeats(session, limit))
    message = (
        f"The stored numbers of all {len(stats)} series are gapless."
        if not troubled
        else f"{troubled} series have gaps or repeats."
    )
    return Check("Gap or repeat in a number series", troubled, problems[: limit * 2], message)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}–{last}"


def _repeats(session: Session, limit: int) -> list[tuple[str, int]]:
    stmt = (
        select(Invoice.series, Invoice.sequence)
        .group_by(Invoice.series, Invoice.sequence)
        .having(func.count() > 1)
        .limit(limit)
    )
    return [(s, q) for s, q in session.execute(stmt)]


def _stored_files(session: Session, actor: Actor, root: storage.Store, sample: int) -> Check:
    """Re-hash the files of the invoices stored most recently (reading files is the slow part)."""
    stored = session.scalar(select(func.count()).select_from(InvoiceFile)) or 0
    recent = select(InvoiceFile.invoice_id).order_by(InvoiceFile.id.desc()).limit(sample).subquery()
    numbers = list(session.scalars(select(Invoice.number).where(Invoice.id.in_(select(recent.c.invoice_id)))))
    if not numbers:
        return Check("Stored file altered or missing", 0, [], "No invoice files are stored yet.")
    report = batch.verify(session, actor, batch.select_invoices(session, actor, numbers=numbers), root=root)
    bad = [f"missing {p}" for p in report.missing] + [f"altered {p}" for p in report.altered]
    bad += [f"e-invoice totals differ {p}" for p in report.mismatched]
    scope = f"{report.checked:,} files of the {len(numbers):,} most recently stored invoices ({stored:,} files in all)"
    message = f"Checked {scope}; use Verify for the rest." if not bad else f"{len(bad)} bad among {scope}."
    return Check("Stored file altered or missing", len(bad), bad[:sample], message)


def _totals_drift(session: Session, limit: int) -> Check:
    """The bills totals kept by issuing, against the same sums over every document."""
    everything = DocumentFilters(include_sandbox=True)
    expected = {(t.month, t.plan): t for t in _scanned_totals(session, everything)}
    kept = {(t.month, t.plan): t for t in _rollup_totals(session, everything)}
    differing = sorted(k for k in expected.keys() | kept.keys() if expected.get(k) != kept.get(k))
    examples = [
        f"{key[0]} {key[1]}: kept {_described(kept.get(key))}, documents {_described(expected.get(key))}"
        for key in differing[:limit]
    ]
    message = (
        "The bills totals equal the documents they count."
        if not differing
        else f"{len(differing):,} month and plan totals differ from their documents: run `rollup rebuild`."
    )
    return Check("Bills totals differ from the documents", len(differing), examples, message)


def _described(row: TotalRow | None) -> str:
    return "nothing" if row is None else f"{row.documents:,} documents, {money.format_cents(row.total_cents)}"


CHECKS = ("paid without invoice", "total mismatch", "series", "bills totals", "stored files")


def checks(
    session: Session,
    actor: Actor,
    *,
    root: Path | storage.Store,
    limit: int = 10,
    file_sample: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> list[Check]:
    """The deep check: every order and document read, what is wrong, how often, and a few examples.

    Seconds at a million orders: run it in the background (billing_core.invoices.deep_check), never on a page run.
    ``progress(done, total)`` is called after each of the ``len(CHECKS)`` steps."""
    require(actor, Action.CHECK_BILLS)
    root = storage.as_store(root)
    steps = (
        lambda: _paid_without_invoice(session, limit),
        lambda: _total_mismatch(session, limit),
        lambda: _series_gaps(session, limit),
        lambda: _totals_drift(session, limit),
        lambda: _stored_files(session, actor, root, file_sample),
    )
    found = []
    for done, step in enumerate(steps, start=1):
        found.append(step())
        if progress:
            progress(done, len(steps))
    return found


# --- one document ---------------------------------------------------------------------------------


def find_document(session: Session, actor: Actor, number: str) -> Invoice:
    require(actor, Action.READ_BILLS)
    invoice = session.scalar(select(Invoice).where(Invoice.number == number.strip()))
    if invoice is None:
        raise NotFound(f"No invoice or credit note numbered “{number.strip()}”.")
    return invoice


# --- regeneration jobs run from the app -----------------------------------------------------------


@dataclass(frozen=True)
class JobView:
    id: int
    status: RegenerationStatus
    created_at: datetime
    created_by: str
    reason: str
    done: int
    total: int
    finished_at: datetime | None
    zip_path: str | None
    error: str | None
    eta_seconds: float | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0


def _view(job: RegenerationJob, now: datetime) -> JobView:
    eta = None
    if job.status == RegenerationStatus.RUNNING and job.done:
        elapsed = (now - job.created_at).total_seconds()
        eta = elapsed / job.done * (job.total - job.done)
    return JobView(
        job.id, job.status, job.created_at, job.created_by, job.reason, job.done, job.total,
        job.finished_at, job.zip_path, job.error, eta,
    )  # fmt: skip


def recent_jobs(session: Session, actor: Actor, limit: int = 20) -> list[JobView]:
    require(actor, Action.READ_BILLS)
    now = utcnow()
    stmt = select(RegenerationJob).order_by(RegenerationJob.id.desc()).limit(limit)
    return [_view(job, now) for job in session.scalars(stmt)]


def get_job(session: Session, actor: Actor, job_id: int) -> JobView:
    require(actor, Action.READ_BILLS)
    job = session.get(RegenerationJob, job_id)
    if job is None:
        raise NotFound(f"No regeneration job {job_id}.")
    return _view(job, utcnow())


def launch_job(settings: Settings, actor: Actor, job_id: int, *, workers: int = 2) -> subprocess.Popen | None:
    """Run (or resume) a job in its own process, so it outlives the page run that started it; with the
    procrastinate engine, queue its chunks for the team's workers instead (no process here: None).

    The process acts as ``actor`` (passed on its command line) and checks the role again itself.
    """
    require(actor, Action.REGENERATE_INVOICES)
    if runs_on_workers(settings):
        from billing_core.invoices import tasks

        tasks.enqueue_job(settings, actor, job_id)
        return None
    args = ["billing_core", "invoices", "run-job", str(job_id), "--workers", str(workers)]
    return background.start_process(settings, actor, args, f"jobs/job-{job_id}.log")


def runs_on_workers(settings: Settings) -> bool:
    """Whether jobs run on a task engine's workers (any app instance sees them), not in this server's process."""
    return settings.task_engine == "procrastinate"


def close_cancelled(settings: Settings, actor: Actor, job_id: int) -> None:
    """After ``cancel_job``: on workers, queue the job's closing (it zips what was done once no chunk runs);
    a local process closes the job itself after its chunk in flight."""
    require(actor, Action.REGENERATE_INVOICES)
    if runs_on_workers(settings):
        from billing_core.invoices import tasks

        tasks.close_after_cancel(settings, actor, job_id)


def _locked_job(session: Session, job_id: int, expected: RegenerationStatus, rule: str) -> RegenerationJob:
    """The job, locked for this transaction, in the status the action expects."""
    job = session.get(RegenerationJob, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise NotFound(f"No regeneration job {job_id}.")
    if job.status != expected:
        raise BillingError(f"Job {job_id} is {job.status.value}; {rule}.")
    return job


def cancel_job(session: Session, actor: Actor, job_id: int) -> None:
    """Mark a running job cancelled; its process stops after the chunk in flight and leaves the job
    cancelled with what it did (and a ZIP of that); Resume continues it."""
    require(actor, Action.REGENERATE_INVOICES)
    with transaction(session):
        job = _locked_job(session, job_id, RegenerationStatus.RUNNING, "only a running job can be cancelled")
        job.status, job.finished_at = RegenerationStatus.CANCELLED, utcnow()
        audit.record(
            session, actor, "invoices.regenerate.cancel", "regeneration_job", job_id, reason=job.reason,
            before={"status": "running", "done": job.done}, after={"status": "cancelled", "done": job.done},
        )  # fmt: skip


def resume_job(session: Session, actor: Actor, job_id: int) -> None:
    """Make a cancelled job running again, to be launched: it continues with the invoices it has not done."""
    require(actor, Action.REGENERATE_INVOICES)
    with transaction(session):
        job = _locked_job(session, job_id, RegenerationStatus.CANCELLED, "only a cancelled job can be resumed")
        job.status, job.finished_at, job.zip_path = RegenerationStatus.RUNNING, None, None
        audit.record(
            session, actor, "invoices.regenerate.resume", "regeneration_job", job_id, reason=job.reason,
            before={"status": "cancelled", "done": job.done}, after={"status": "running", "done": job.done},
        )  # fmt: skip
