"""Settlement file import: Airwallex and Alipay reports complete the orders they show as paid.

Files are CSV, UTF-8 (with or without a BOM), comma separated, one header row. Headers are matched
case-insensitively, ignoring spaces, underscores and hyphens; the aliases below are all accepted.
Amounts are decimal strings ("1,552.50", "20.70"; a currency symbol or sign is not), read exactly
to cents; cells are only ever text, so a cell such as ``=HYPERLINK(...)`` is a reference like any other.

Airwallex settlement report (columns marked * are required):
    Transaction ID*        Airwallex's id of the transaction; becomes the order's provider reference
    Merchant Order ID      our order id (ord_...)           | at least one of these two per row
    Payment Intent ID      Airwallex payment intent (int_...) |
    Currency*              ISO 4217 code of the gross amount
    Amount*                gross amount paid by the customer (aliases: Gross Amount, Transaction Amount)
    Fee, Net               Airwallex's fee and what was settled (kept for the record)
    Status                 only SETTLED / SUCCEEDED / PAID rows are payments; refunds etc. are skipped
    Settled At             when Airwallex settled it (kept as text)

Alipay (Alipay+ / cross-border) settlement file:
    partner_transaction_id our order id (aliases: out_trade_no, merchant order id)
    transaction_id*        Alipay's trade number (alias: trade_no); becomes the provider reference
    currency*              ISO 4217 code of the gross amount (alias: trans_currency)
    amount*                gross amount (aliases: trans_amount, total_amount)
    fee, settlement_amount Alipay's fee and the settled net amount (kept for the record)
    trans_type             only PAYMENT / TRADE rows are payments; REFUND etc. are skipped
    payment_time           when the customer paid (kept as text)

A row matches an order by provider reference (Payment Intent ID or Transaction ID against the
order's provider reference) or by our order id; its gross amount must equal the order's total and
its currency the order's currency. ``parse_settlement`` -> ``preview`` (read only) -> ``apply``.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError, InvalidAmount, StateConflict
from billing_core.core.exports import to_csv_bytes
from billing_core.core.models import COMPLETABLE, PAID_STATUSES, Order, OrderStatus, SettlementImport, utcnow
from billing_core.orders.lifecycle import complete_order
from billing_core.pricing.catalog import Method

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
IN_BATCH = 500
PROVIDERS = (Method.AIRWALLEX, Method.ALIPAY)

# The currencies Airwallex and Alipay settle in; anything else is a typo or a broken export.
CURRENCIES = frozenset(
    "USD EUR GBP CNY HKD JPY SGD AUD NZD CAD CHF SEK NOK DKK PLN CZK HUF KRW TWD THB MYR IDR PHP VND INR AED "
    "SAR ILS TRY ZAR BRL MXN".split()
)


class SettlementError(BillingError):
    """The file as a whole cannot be read; nothing was changed."""


@dataclass(frozen=True)
class _Column:
    field: str
    label: str
    aliases: tuple[str, ...]
    required: bool = False


def _key(header: str) -> str:
    return re.sub(r"[\s_\-]+", "", header.strip().lower())


_FORMATS: dict[Method, tuple[_Column, ...]] = {
    Method.AIRWALLEX: (
        _Column("transaction_id", "Transaction ID", ("transaction id", "txn id"), required=True),
        _Column("order_public_id", "Merchant Order ID", ("merchant order id", "order id")),
        _Column("provider_ref", "Payment Intent ID", ("payment intent id", "intent id")),
        _Column("currency", "Currency", ("currency", "transaction currency"), required=True),
        _Column("amount", "Amount", ("amount", "gross amount", "transaction amount"), required=True),
        _Column("fee", "Fee", ("fee", "fees")),
        _Column("net", "Net", ("net", "net amount")),
        _Column("kind", "Status", ("status",)),
        _Column("settled_at", "Settled At", ("settled at", "settlement date", "settled date")),
    ),
    Method.ALIPAY: (
        _Column("order_public_id", "partner_transaction_id", ("partner_transaction_id", "out_trade_no")),
        _Column("transaction_id", "transaction_id", ("transaction_id", "trade_no"), required=True),
        _Column("currency", "currency", ("currency", "trans_currency"), required=True),
        _Column("amount", "amount", ("amount", "trans_amount", "total_amount"), required=True),
        _Column("fee", "fee", ("fee",)),
        _Column("net", "settlement_amount", ("settlement_amount",)),
        _Column("kind", "trans_type", ("trans_type",)),
        _Column("settled_at", "payment_time", ("payment_time",)),
    ),
}
# Headers only one provider uses, to tell the files apart when the provider is not given.
_TELLS = {
    Method.AIRWALLEX: {_key(h) for h in ("Payment Intent ID", "Merchant Order ID", "Settled At")},
    Method.ALIPAY: {_key(h) for h in ("partner_transaction_id", "out_trade_no", "trans_type", "trade_no")},
}
# Status / trans_type values that mean money came in; any other row (refund, fee, chargeback) is skipped.
_PAYMENT_KINDS = frozenset({"", "settled", "succeeded", "success", "paid", "payment", "trade", "pay"})


@dataclass(frozen=True)
class SettlementRow:
    line: int
    transaction_id: str
    order_public_id: str  # our order id, or "" when the file does not say
    provider_ref: str  # the provider's payment reference other than the transaction id, or ""
    currency: str
    amount_cents: int | None  # gross, in hundredths of the currency unit (None: a non-payment row without one)
    fee_cents: int | None
    net_cents: int | None
    kind: str
    settled_at: str

    @property
    def is_payment(self) -> bool:
        return self.kind.strip().lower() in _PAYMENT_KINDS

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(r for r in (self.provider_ref, self.transaction_id) if r)


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


# --- parsing ------------------------------------------------------------------------------------


def parse_settlement(data: bytes, filename: str, provider: Method | str | None = None) -> ParsedFile:
    """Read a settlement CSV; raise SettlementError only when the file as a whole is unusable."""
    if not data.strip():
        raise SettlementError(f"{filename} is empty.")
    if len(data) > MAX_BYTES:
        raise SettlementError(
            f"{filename} is {len(data) / 1024 / 1024:.1f} MB; the most accepted is {MAX_BYTES // 1024 // 1024} MB. "
            "Split it by date and import the parts."
        )
    text = _decode(data, filename)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise SettlementError(f"{filename} has no readable header row ({exc}).") from None
    keys = [_key(h) for h in header]
    method = _provider(keys, provider, filename)
    positions = _columns(method, keys, header, filename)

    rows: list[SettlementRow] = []
    malformed: list[Malformed] = []
    count = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            malformed.append(Malformed(reader.line_num, f"not readable as CSV: {exc}"))
            continue
        if not any(c.strip() for c in cells):
            continue
        count += 1
        if count > MAX_ROWS:
            raise SettlementError(f"{filename} has more than {MAX_ROWS:,} rows; split it by date and import the parts.")
        line = reader.line_num
        if len(cells) != len(header):
            malformed.append(Malformed(line, f"has {len(cells)} fields, the header has {len(header)}"))
            continue
        try:
            rows.append(_row(line, {name: cells[i].strip() for name, i in positions.items()}))
        except _BadRow as exc:
            malformed.append(Malformed(line, str(exc)))
    return ParsedFile(method, filename, hashlib.sha256(data).hexdigest(), tuple(rows), tuple(malformed))


def _decode(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-8-sig")  # also plain UTF-8: the BOM is optional
    except UnicodeDecodeError as exc:
        raise SettlementError(
            f"{filename} is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start}). "
            "Export the report again as UTF-8 CSV (Alipay statements are often GBK; "
            "open it in a spreadsheet and save as “CSV UTF-8”)."
        ) from None


def _provider(keys: list[str], provider: Method | str | None, filename: str) -> Method:
    if provider:
        try:
            method = Method(str(provider).strip().lower())
        except ValueError:
            method = None
        if method not in PROVIDERS:
            raise SettlementError(f"Settlement files are imported for Airwallex or Alipay, not {provider!r}.")
        return method
    found = [m for m in PROVIDERS if _TELLS[m] & set(keys)]
    if len(found) != 1:
        raise SettlementError(
            f"Cannot tell from the columns of {filename} whether it is an Airwallex or an Alipay file; "
            "choose the provider."
        )
    return found[0]


def _columns(method: Method, keys: list[str], header: list[str], filename: str) -> dict[str, int]:
    positions: dict[str, int] = {}
    missing = []
    for column in _FORMATS[method]:
        index = next((keys.index(_key(a)) for a in column.aliases if _key(a) in keys), None)
        if index is not None:
            positions[column.field] = index
        elif column.required:
            missing.append(column.label)
    if missing:
        shown = ", ".join(h.strip() for h in header if h.strip())[:300]
        raise SettlementError(
            f"{filename} does not look like an {method.value.title()} settlement file: it is missing the "
            f"required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(found: {shown or 'no column names'})."
        )
    return positions


class _BadRow(Exception):
    pass


def _row(line: int, cells: dict[str, str]) -> SettlementRow:
    transaction_id = cells.get("transaction_id", "")
    order_public_id = cells.get("order_public_id", "")
    provider_ref = cells.get("provider_ref", "")
    if not transaction_id:
        raise _BadRow("empty transaction id")
    if any(len(v) > 255 for v in (transaction_id, order_public_id, provider_ref)):
        raise _BadRow("a reference is longer than 255 characters")
    kind, amount = cells.get("kind", ""), cells.get("amount", "")
    currency = cells.get("currency", "").upper()
    if not currency:
        raise _BadRow("empty currency")
    if currency not in CURRENCIES:
        raise _BadRow(f"unknown currency {_short(currency)!r}")
    return SettlementRow(
        line=line,
        transaction_id=transaction_id,
        order_public_id=order_public_id,
        provider_ref=provider_ref,
        currency=currency,
        # Refund and fee rows are reported, not imported: their (often negative) amounts need not parse.
        amount_cents=_amount(amount, "amount")
        if kind.lower() in _PAYMENT_KINDS
        else _optional_amount(amount, "amount"),
        fee_cents=_optional_amount(cells.get("fee", ""), "fee"),
        net_cents=_optional_amount(cells.get("net", ""), "net amount"),
        kind=kind,
        settled_at=cells.get("settled_at", "")[:64],
    )


def _amount(text: str, what: str) -> int:
    if not text:
        raise _BadRow(f"empty {what}")
    if not re.fullmatch(r"[\d.,]+", text):
        raise _BadRow(f"bad {what} {_short(text)!r}")
    try:
        return money.parse_amount(text)
    except InvalidAmount as exc:
        raise _BadRow(f"bad {what} {_short(text)!r}: {exc}") from None


def _optional_amount(text: str, what: str) -> int | None:
    """Fees and net amounts: optional, may be zero, and some exports sign fees negative."""
    text = text.removeprefix("-")
    if not text:
        return None
    if re.fullmatch(r"0+(\.0*)?", text):
        return 0
    return _amount(text, what)


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

    def as_dict(self) -> dict:
        return {
            "line": self.line,
            "verdict": self.verdict.value,
            "transaction id": self.transaction_id,
            "order": self.order_public_id,
            "amount": "" if self.amount_cents is None else money.format_plain(self.amount_cents),
            "currency": self.currency,
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


def _chunks(values: Iterable[str], size: int = IN_BATCH) -> Iterable[list[str]]:
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


def preview(session: Session, actor: Actor, parsed: ParsedFile) -> SettlementPreview:
    """What importing the file would do, row by row; reads only (a few batched queries)."""
    require(actor, Action.IMPORT_SETTLEMENT)
    payments = [r for r in parsed.rows if r.is_payment]
    by_ref = _load_orders(session, Order.provider_ref, (ref for r in payments for ref in r.refs))
    by_id = _load_orders(session, Order.public_id, (r.order_public_id for r in payments if r.order_public_id))
    lines = [PreviewLine(m.line, Verdict.MALFORMED, m.reason) for m in parsed.malformed]
    claimed: dict[int, int] = {}  # order id -> the first line that settles it
    for row in parsed.rows:
        lines.append(_judge(row, parsed.provider, by_ref, by_id, claimed))
    found_before = _previous_import(session, parsed.sha256)
    session.rollback()
    return SettlementPreview(parsed, tuple(sorted(lines, key=lambda line: line.line)), found_before)


def _judge(
    row: SettlementRow,
    provider: Method,
    by_ref: dict[str, _OrderFacts],
    by_id: dict[str, _OrderFacts],
    claimed: dict[int, int],
) -> PreviewLine:
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
        )

    if not row.is_payment:
        return verdict(Verdict.NOT_A_PAYMENT, f"{row.kind} is not a settled payment; skipped")
    by_reference = next((by_ref[r] for r in row.refs if r in by_ref), None)
    by_order_id = by_id.get(row.order_public_id) if row.order_public_id else None
    if by_reference and by_order_id and by_reference.id != by_order_id.id:
        return verdict(
            Verdict.MISMATCH,
            f"the payment reference belongs to order {by_reference.public_id}, "
            f"but the file names order {by_order_id.public_id}",
        )
    order = by_reference or by_order_id
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
        return verdict(Verdict.MISMATCH, f"paid in {row.currency}, but the order is in {order.currency}", order)
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
    if order.id in claimed:
        return verdict(Verdict.MISMATCH, f"line {claimed[order.id]} already settles this order (paid twice?)", order)
    claimed[order.id] = row.line
    return verdict(Verdict.WILL_COMPLETE, f"{order.status.value} order; the file shows it paid", order)


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
            | {"counts": summary["counts"]},
        )
    return record.id
