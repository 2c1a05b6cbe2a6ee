"""Settlement file import: Airwallex and Alipay reports complete the orders they show as paid.

The reports are read by ``billing_core.reconcile.settlement_formats`` (containers, encodings, header blocks and
one documented profile per report). Every row's kind comes from the file: only a payment row can
complete an order; a refund row is matched to the refunds in our books, and one we have no refund for
is flagged for finance; a fee, chargeback or failed payment is reported and skipped. A report with no
kind column completes nothing until the person importing it says what its rows are (``kind``).

A payment row matches an order by provider reference (Payment Intent ID, Transaction ID) or by our
order id; its gross amount must equal the order's total and its currency the order's currency (a row in
another currency is a mismatch with both amounts shown, never converted). ``parse_settlement`` ->
``preview`` (read only) -> ``apply``.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError, StateConflict
from billing_core.core.exports import to_csv_bytes
from billing_core.core.models import (
    COMPLETABLE,
    PAID_STATUSES,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    SettlementImport,
    utcnow,
)
from billing_core.orders.lifecycle import complete_order
from billing_core.pricing.catalog import Method
from billing_core.reconcile.settlement_formats import (
    MAX_BYTES,
    MAX_ROWS,
    BadCell,
    Profile,
    RowKind,
    SettlementError,
    parse_time,
    read_table,
    signed_cents,
)

__all__ = ["MAX_BYTES", "MAX_ROWS", "RowKind", "SettlementError"]

IN_BATCH = 500
PROVIDERS = (Method.AIRWALLEX, Method.ALIPAY)
# What a person may say the rows of a report without a kind column are.
CHOSEN_KINDS = (RowKind.PAYMENT, RowKind.REFUND)

# The currencies Airwallex and Alipay settle in; anything else is a typo or a broken export.
CURRENCIES = frozenset(
    "USD EUR GBP CNY HKD JPY SGD AUD NZD CAD CHF SEK NOK DKK PLN CZK HUF KRW TWD THB MYR IDR PHP VND INR AED "
    "SAR ILS TRY ZAR BRL MXN".split()
)


@dataclass(frozen=True)
class SettlementRow:
    line: int
    transaction_id: str
    order_public_id: str  # our order id, or "" when the file does not say
    provider_ref: str  # the provider's payment reference other than the transaction id, or ""
    currency: str
    amount_cents: int | None  # signed, in hundredths of the currency unit; a refund's is what it returned
    fee_cents: int | None
    net_cents: int | None
    kind: RowKind
    kind_text: str  # the file's own word for the kind ("P", "REFUND", "交易"), for the preview
    occurred_at: datetime | None  # UTC
    original_ref: str = ""  # a refund's original payment at the provider
    original_order_id: str = ""  # a refund's original order (our id)

    @property
    def is_payment(self) -> bool:
        return self.kind is RowKind.PAYMENT

    @property
    def refs(self) -> tuple[str, ...]:
        found = (self.original_ref, self.provider_ref, self.transaction_id)
        return tuple(r for r in found if r)

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(r for r in (self.original_order_id, self.order_public_id) if r)


@dataclass(frozen=True)
class Malformed:
    line: int
    reason: str


@dataclass(frozen=True)
class ParsedFile:
    provider: Method
    filename: str
    sha256: str
    rows: tuple[SettlementRow, ...]
    malformed: tuple[Malformed, ...]
    profile: Profile | None = None
    recognised: str = ""  # which report, container, encoding and time zone were recognised
    kind_stated: bool = True  # the file has a kind column
    chosen_kind: RowKind | None = None  # what the person said the rows are, where the file does not

    @property
    def needs_kind(self) -> bool:
        """No row can complete an order until somebody says what the rows of this file are."""
        return not self.kind_stated and self.chosen_kind is None


# --- parsing ------------------------------------------------------------------------------------


def parse_settlement(
    data: bytes, filename: str, provider: Method | str | None = None, kind: RowKind | str | None = None
) -> ParsedFile:
    """Read a settlement report; raise SettlementError only when the file as a whole is unusable.

    ``kind`` ("payment" or "refund") is what the person says the rows are, for a report without a kind
    column; a report that has one is read by it and ``kind`` is not used.
    """
    method = _provider(provider)
    chosen = _kind(kind)
    table = read_table(data, filename, method)
    profile = table.profile
    stated = "kind" in table.positions
    rows: list[SettlementRow] = []
    malformed: list[Malformed] = []
    count = 0
    for line, cells, problem in table.rows:
        count += 1  # every line counts, blank ones too: 20 MB of newlines is ten million of them
        if count > MAX_ROWS:
            raise SettlementError(
                f"{filename} has more than {MAX_ROWS:,} lines; split it by date and import the parts."
            )
        if cells is not None and not any(c.strip() for c in cells):
            continue
        if cells is None:
            malformed.append(Malformed(line, problem))
            continue
        width = len(table.header)
        if len(cells) > width and not any(c.strip() for c in cells[width:]):
            cells = cells[:width]  # a trailing delimiter after the last column
        if len(cells) != width:
            malformed.append(Malformed(line, f"has {len(cells)} fields, the header has {len(table.header)}"))
            continue
        values = {name: cells[i].strip() for name, i in table.positions.items()}
        try:
            rows.extend(_rows(line, values, table, None if stated else chosen))
        except BadCell as exc:
            malformed.append(Malformed(line, str(exc)))
    recognised = table.recognised
    if not stated:
        recognised += " · no kind column: " + (f"rows taken as {chosen.value}s" if chosen else "kind not stated")
    return ParsedFile(
        profile.provider,
        filename,
        hashlib.sha256(data).hexdigest(),
        tuple(rows),
        tuple(malformed),
        profile,
        recognised,
        stated,
        None if stated else chosen,
    )


def _provider(provider: Method | str | None) -> Method | None:
    if not provider:
        return None
    try:
        method = Method(str(provider).strip().lower())
    except ValueError:
        method = None
    if method not in PROVIDERS:
        raise SettlementError(f"Settlement files are imported for Airwallex or Alipay, not {str(provider)[:40]!r}.")
    return method


def _kind(kind: RowKind | str | None) -> RowKind | None:
    if kind is None or kind == "":
        return None
    try:
        chosen = RowKind(str(kind).strip().lower())
    except ValueError:
        chosen = None
    if chosen not in CHOSEN_KINDS:
        raise SettlementError(f"The rows of a report can be payments or refunds, not {str(kind)[:40]!r}.")
    return chosen


def _rows(line: int, cells: dict[str, str], table, chosen: RowKind | None) -> list[SettlementRow]:
    """The row as the file states it; an activity export's refunded amount is a second, refund row."""
    profile = table.profile
    # An activity export names the payment intent only: it is the transaction's id too.
    transaction_id = cells.get("transaction_id", cells.get("provider_ref", ""))
    order_public_id = cells.get("order_public_id", "")
    provider_ref = cells.get("provider_ref", "")
    original_ref, original_order_id = cells.get("original_ref", ""), cells.get("original_order_id", "")
    if not transaction_id:
        raise BadCell("empty transaction id")
    if any(len(v) > 255 for v in (transaction_id, order_public_id, provider_ref, original_ref, original_order_id)):
        raise BadCell("a reference is longer than 255 characters")
    kind_text = cells.get("kind", "")[:40]
    kind = profile.kind_of(kind_text) if "kind" in table.positions else (chosen or RowKind.UNSTATED)
    amount_text, currency = cells.get("amount", ""), cells.get("currency", "").upper() or table.currency
    if cells.get("trans_amount") and cells.get("trans_currency"):  # the order's own amount and currency
        amount_text, currency = cells["trans_amount"], cells["trans_currency"].upper()
    if not currency:
        raise BadCell("empty currency")
    if currency not in CURRENCIES:
        raise BadCell(f"unknown currency {_short(currency)!r}")
    amount = signed_cents(amount_text, "amount")
    net = signed_cents(cells.get("net", ""), "net amount")
    if kind is RowKind.PAYMENT:
        if amount is None:
            raise BadCell("empty amount")
        if amount <= 0:
            raise BadCell(f"a payment of {money.format_plain(amount)}: a payment's amount is more than zero")
    if kind is RowKind.REFUND:
        returned = net if profile.refund_from_net and net is not None else amount
        amount = abs(returned) if returned is not None else None
        if not amount:
            raise BadCell("a refund without an amount")
    fee = signed_cents(cells.get("fee", ""), "fee")
    when = parse_time(cells.get("time", ""), table.tz)
    row = SettlementRow(
        line,
        transaction_id,
        order_public_id,
        provider_ref,
        currency,
        amount,
        None if fee is None else abs(fee),
        net,
        kind,
        kind_text,
        when,
        original_ref,
        original_order_id,
    )
    refunded = signed_cents(cells.get("refunded", ""), "refunded amount")
    if not refunded:
        return [row]
    kinds = {"kind": RowKind.REFUND, "kind_text": "refunded amount"}
    return [row, replace(row, amount_cents=abs(refunded), fee_cents=None, net_cents=None, **kinds)]


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- preview ------------------------------------------------------------------------------------


class Verdict(enum.StrEnum):
    WILL_COMPLETE = "will complete"
    ALREADY_PAID = "already paid"
    MISMATCH = "mismatch"
    NOT_FOUND = "not found"
    MALFORMED = "malformed"
    NOT_A_PAYMENT = "not a payment"
    REFUND_IN_BOOKS = "refund in our books"
    REFUND_NOT_IN_BOOKS = "refund not in our books"  # for finance to look into
    KIND_NOT_STATED = "kind not stated"


# Lines finance must look at before or after applying: the file and our books disagree.
FLAGGED = (Verdict.MISMATCH, Verdict.MALFORMED, Verdict.NOT_FOUND, Verdict.REFUND_NOT_IN_BOOKS)


@dataclass(frozen=True)
class PreviewLine:
    line: int
    verdict: Verdict
    reason: str
    transaction_id: str = ""
    order_public_id: str = ""  # the matched order, else what the file said
    amount_cents: int | None = None
    currency: str = ""
    order_id: int | None = None
    kind: str = ""
    occurred_at: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "line": self.line,
            "verdict": self.verdict.value,
            "kind": self.kind,
            "transaction id": self.transaction_id,
            "order": self.order_public_id,
            "amount": "" if self.amount_cents is None else money.format_plain(self.amount_cents),
            "currency": self.currency,
            "time (UTC)": f"{self.occurred_at:%Y-%m-%d %H:%M:%S}" if self.occurred_at else "",
            "reason": self.reason,
        }


@dataclass(frozen=True)
class SettlementPreview:
    parsed: ParsedFile
    lines: tuple[PreviewLine, ...]
    previously_imported: str | None  # "This file was already imported on ... by ...", or None

    @property
    def counts(self) -> dict[Verdict, int]:
        counts = dict.fromkeys(Verdict, 0)
        for line in self.lines:
            counts[line.verdict] += 1
        return counts

    @property
    def to_complete(self) -> list[PreviewLine]:
        return [line for line in self.lines if line.verdict is Verdict.WILL_COMPLETE]

    @property
    def refunds_not_in_books(self) -> list[PreviewLine]:
        return [line for line in self.lines if line.verdict is Verdict.REFUND_NOT_IN_BOOKS]

    def to_csv(self) -> bytes:
        columns = list(PreviewLine(0, Verdict.MALFORMED, "").as_dict())
        return to_csv_bytes([line.as_dict() for line in self.lines], columns=columns)


@dataclass(frozen=True)
class _OrderFacts:
    id: int
    public_id: str
    provider_ref: str | None
    status: OrderStatus
    total_cents: int
    currency: str
    method: Method
    sandbox: bool


@dataclass(frozen=True)
class _RefundFacts:
    id: int
    order_id: int
    amount_cents: int
    status: RefundStatus
    ids: frozenset[str]  # the gateway's refund id and our idempotency key


def _chunks(values: Iterable, size: int = IN_BATCH) -> Iterable[list]:
    values = sorted(set(values))
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _load_orders(session: Session, column, values: Iterable[str]) -> dict[str, _OrderFacts]:
    found: dict[str, _OrderFacts] = {}
    for chunk in _chunks(values):
        stmt = select(
            Order.id,
            Order.public_id,
            Order.provider_ref,
            Order.status,
            Order.total_cents,
            Order.currency,
            Order.method,
            Order.sandbox,
        ).where(column.in_(chunk))
        for row in session.execute(stmt):
            facts = _OrderFacts(*row)
            found.setdefault(getattr(facts, column.key), facts)
    return found


def _load_refunds(session: Session, order_ids: Iterable[int]) -> dict[int, list[_RefundFacts]]:
    """Succeeded and pending refunds of these orders, oldest first."""
    found: dict[int, list[_RefundFacts]] = {}
    live = (RefundStatus.SUCCEEDED, RefundStatus.REQUESTED)
    for chunk in _chunks(order_ids):
        stmt = (
            select(Refund.id, Refund.order_id, Refund.amount_cents, Refund.status, Refund.gateway_refund_id)
            .add_columns(Refund.idempotency_key)
            .where(Refund.order_id.in_(chunk), Refund.status.in_(live))
            .order_by(Refund.created_at, Refund.id)
        )
        for rid, order_id, cents, status, gateway_id, key in session.execute(stmt):
            ids = frozenset(i for i in (gateway_id, key) if i)
            found.setdefault(order_id, []).append(_RefundFacts(rid, order_id, cents, status, ids))
    return found


def _previous_import(session: Session, sha256: str) -> str | None:
    earlier = session.scalar(
        select(SettlementImport).where(SettlementImport.sha256 == sha256).order_by(SettlementImport.imported_at)
    )
    if earlier is None:
        return None
    return (
        f"This file was already imported on {earlier.imported_at:%Y-%m-%d %H:%M} UTC by {earlier.imported_by} "
        f"({earlier.completed} orders completed then)."
    )


@dataclass
class _Books:
    """What the file's rows are judged against, read in a few batched queries."""

    by_ref: dict[str, _OrderFacts]
    by_id: dict[str, _OrderFacts]
    refunds: dict[int, list[_RefundFacts]]
    claimed: dict[int, int] = field(default_factory=dict)  # order id -> the first line that settles it
    refunds_claimed: dict[int, int] = field(default_factory=dict)  # refund id -> the line that matched it


def preview(session: Session, actor: Actor, parsed: ParsedFile) -> SettlementPreview:
    """What importing the file would do, row by row; reads only (a few batched queries)."""
    require(actor, Action.IMPORT_SETTLEMENT)
    looked_up = [r for r in parsed.rows if r.kind in (RowKind.PAYMENT, RowKind.REFUND)]
    by_ref = _load_orders(session, Order.provider_ref, (ref for r in looked_up for ref in r.refs))
    by_id = _load_orders(session, Order.public_id, (i for r in looked_up for i in r.order_ids))
    refunded = [r for r in looked_up if r.kind is RowKind.REFUND]
    orders = {o.id for o in (*by_ref.values(), *by_id.values())}
    books = _Books(by_ref, by_id, _load_refunds(session, orders) if refunded and orders else {})
    lines = [PreviewLine(m.line, Verdict.MALFORMED, m.reason) for m in parsed.malformed]
    for row in parsed.rows:
        lines.append(_judge(row, parsed.provider, books))
    found_before = _previous_import(session, parsed.sha256)
    session.rollback()
    return SettlementPreview(parsed, tuple(sorted(lines, key=lambda line: line.line)), found_before)


def _judge(row: SettlementRow, provider: Method, books: _Books) -> PreviewLine:
    def verdict(v: Verdict, reason: str, order: _OrderFacts | None = None) -> PreviewLine:
        return PreviewLine(
            row.line,
            v,
            reason,
            row.transaction_id,
            order.public_id if order else row.order_public_id,
            row.amount_cents,
            row.currency,
            order.id if order else None,
            row.kind_text or row.kind.value,
            row.occurred_at,
        )

    if row.kind is RowKind.UNSTATED:
        return verdict(
            Verdict.KIND_NOT_STATED,
            "the file does not say whether this row is a payment or a refund; say which its rows are to import it",
        )
    if row.kind is RowKind.OTHER:
        what = f"{row.kind_text!r}" if row.kind_text else "an empty kind"
        return verdict(Verdict.NOT_A_PAYMENT, f"{what} is neither a payment nor a refund; skipped")
    by_reference = next((books.by_ref[r] for r in row.refs if r in books.by_ref), None)
    by_order_id = next((books.by_id[i] for i in row.order_ids if i in books.by_id), None)
    if by_reference and by_order_id and by_reference.id != by_order_id.id:
        return verdict(
            Verdict.MISMATCH,
            f"the payment reference belongs to order {by_reference.public_id}, "
            f"but the file names order {by_order_id.public_id}",
        )
    order = by_reference or by_order_id
    if row.kind is RowKind.REFUND:
        return _judge_refund(row, order, books, verdict)
    if order is None:
        return verdict(Verdict.NOT_FOUND, "no order has this payment reference or order id")
    if order.sandbox:
        return verdict(Verdict.MISMATCH, "that is a sandbox order; settlement files are for real payments", order)
    if order.method is not provider:
        return verdict(
            Verdict.MISMATCH,
            f"the order was placed with {order.method.value.title()}, not {provider.value.title()}",
            order,
        )
    if row.currency != order.currency:
        return verdict(Verdict.MISMATCH, _other_currency("paid", row, order), order)
    if row.amount_cents != order.total_cents:
        return verdict(
            Verdict.MISMATCH,
            f"paid {money.format_cents(row.amount_cents, row.currency)}, "
            f"but the order's total is {money.format_cents(order.total_cents, order.currency)}",
            order,
        )
    if order.status in PAID_STATUSES:
        return verdict(Verdict.ALREADY_PAID, f"the order is already {order.status.value}; nothing to do", order)
    if order.status not in COMPLETABLE:
        return verdict(
            Verdict.MISMATCH, f"the order is {order.status.value} here, but the file says it was paid", order
        )
    # Only a line that would complete the order claims it: a wrong line before it claims nothing.
    if order.id in books.claimed:
        return verdict(
            Verdict.MISMATCH, f"line {books.claimed[order.id]} already settles this order (paid twice?)", order
        )
    books.claimed[order.id] = row.line
    return verdict(Verdict.WILL_COMPLETE, f"{order.status.value} order; the file shows it paid", order)


def _other_currency(what: str, row: SettlementRow, order: _OrderFacts) -> str:
    return (
        f"{what} {money.format_cents(row.amount_cents, row.currency)}, but the order is "
        f"{money.format_cents(order.total_cents, order.currency)}; amounts in another currency are not converted"
    )


def _judge_refund(row: SettlementRow, order: _OrderFacts | None, books: _Books, verdict) -> PreviewLine:
    """A refund at the provider: reported, never imported; one without a refund in our books is flagged."""
    if order is None:
        return verdict(
            Verdict.REFUND_NOT_IN_BOOKS,
            "the provider refunded a payment that matches no order here; finance: find the payment",
        )
    if row.currency != order.currency:
        return verdict(Verdict.MISMATCH, _other_currency("refunded", row, order), order)
    ours = [r for r in books.refunds.get(order.id, []) if r.id not in books.refunds_claimed]
    named = [r for r in ours if r.ids & {row.transaction_id, row.order_public_id}]
    same = [r for r in (named or ours) if r.amount_cents == row.amount_cents]
    if not same:
        have = ", ".join(money.format_cents(r.amount_cents, order.currency) for r in ours) or "none"
        return verdict(
            Verdict.REFUND_NOT_IN_BOOKS,
            f"the provider refunded {money.format_cents(row.amount_cents, row.currency)} of order "
            f"{order.public_id}, but our books have no such refund (unmatched refunds here: {have}); "
            "finance: record or query it",
            order,
        )
    books.refunds_claimed[same[0].id] = row.line
    pending = (
        " (still pending here: finish it with refunds reconcile)" if same[0].status is RefundStatus.REQUESTED else ""
    )
    return verdict(Verdict.REFUND_IN_BOOKS, f"matches our refund of the order{pending}; nothing to do", order)


# --- apply --------------------------------------------------------------------------------------


@dataclass
class SettlementResult:
    preview: SettlementPreview
    completed: list[str] = field(default_factory=list)  # order public ids
    already_paid: list[str] = field(default_factory=list)  # completed by someone else meanwhile
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message)
    import_id: int | None = None

    def summary(self) -> str:
        text = f"Completed {len(self.completed)} orders from {self.preview.parsed.filename}"
        if self.already_paid:
            text += f"; {len(self.already_paid)} were completed meanwhile by someone else"
        if self.errors:
            text += f"; {len(self.errors)} could not be completed"
        return text + "."


def apply(
    database: Database,
    actor: Actor,
    settings: Settings,
    parsed: ParsedFile,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> SettlementResult:
    """Complete every order the file shows paid (each in its own transaction) and record the import.

    Importing a file again completes nothing: its orders are already paid. A repeat that completes
    nothing is not recorded again.
    """
    require(actor, Action.IMPORT_SETTLEMENT)
    with database.session() as session:
        shown = preview(session, actor, parsed)
    result = SettlementResult(shown)
    todo = shown.to_complete
    with database.session() as session:
        for done, line in enumerate(todo, start=1):
            try:
                complete_order(
                    session,
                    actor,
                    line.order_id,
                    settings=settings,
                    reason=f"settlement file {parsed.filename} line {line.line}",
                    manual_reference=line.transaction_id,
                    from_file=True,
                )
                result.completed.append(line.order_public_id)
            except StateConflict as exc:
                session.rollback()
                if session.get(Order, line.order_id).status in PAID_STATUSES:
                    result.already_paid.append(line.order_public_id)
                else:
                    result.errors.append((line.line, str(exc)))
            except BillingError as exc:
                result.errors.append((line.line, str(exc)))
            if progress:
                progress(done, len(todo))
        if result.completed or shown.previously_imported is None:
            result.import_id = _record(session, actor, shown, result)
    return result


def _record(session: Session, actor: Actor, shown: SettlementPreview, result: SettlementResult) -> int:
    parsed = shown.parsed
    summary = {
        "counts": {v.value: n for v, n in shown.counts.items()},
        "completed": result.completed[:1000],
        "completed_meanwhile": result.already_paid[:1000],
        "errors": [{"line": line, "message": message} for line, message in result.errors[:1000]],
        "malformed": [{"line": m.line, "reason": m.reason} for m in parsed.malformed[:1000]],
        "refunds_not_in_books": [
            {"line": line.line, "order": line.order_public_id, "reason": line.reason}
            for line in shown.refunds_not_in_books[:1000]
        ],
        "recognised": parsed.recognised[:500],
    }
    with transaction(session):
        record = SettlementImport(
            provider=parsed.provider.value,
            filename=parsed.filename[:255],
            sha256=parsed.sha256,
            imported_at=utcnow(),
            imported_by=actor.email,
            rows=len(parsed.rows) + len(parsed.malformed),
            completed=len(result.completed),
            summary=summary,
        )
        session.add(record)
        session.flush()
        audit.record(
            session,
            actor,
            "settlement.import",
            "settlement_import",
            record.id,
            reason=f"settlement file {parsed.filename}",
            after={"sha256": parsed.sha256, "provider": parsed.provider.value, "completed": len(result.completed)}
            | {"counts": summary["counts"], "report": parsed.profile.name if parsed.profile else ""},
        )
    return record.id
