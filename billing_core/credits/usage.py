"""Usage imports: the router's daily usage per customer and model, drawn from the customer's credits.

Files are CSV, UTF-8 (with or without a BOM), comma separated, one header row. Headers are matched
case-insensitively, ignoring spaces, underscores and hyphens; the aliases below are all accepted.

    customer*   the customer's id (cus_...) or email   (aliases: customer id, account, email, user)
    day*        the UTC day of the usage, YYYY-MM-DD    (aliases: date, usage date)
    model*      the model used, at most 100 characters (aliases: model name, model id)
    credits*    credits drawn that day by that model, at most two decimals, 0 or more
                (aliases: credits used, usage, amount)

Each (customer, day, model) is booked once: the file states its total. A later file that states
another total books the difference as a ``usage_correction`` entry (never an edit); the same total
books nothing, so importing a file twice changes nothing. Usage draws promotional credits first
(``[credits] draw_order``); what no credit covers is booked anyway, drives the balance below zero,
and is flagged. ``parse_usage`` -> ``preview`` (read only) -> ``apply`` (one transaction).
"""

from __future__ import annotations

import csv
import enum
import hashlib
import io
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import CreditPolicy
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError, InvalidAmount
from billing_core.core.exports import to_csv_bytes
from billing_core.core.models import CreditPool, Customer, LedgerKind, UsageImport, UsageLine, utcnow
from billing_core.credits.ledger import PAID_FIRST, PROMOTIONAL_FIRST, Balance, _balance, _draw, _entry, _post, _share

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000  # lines read, blank ones included: 20 MB of newlines is ten million of them
MAX_COLUMNS = 100  # a usage file has four
MAX_MALFORMED = 1_000  # beyond this the file is not a usage file with a few bad lines
IN_BATCH = 500
MODEL_MAX_CHARS = 100
CUSTOMER_MAX_CHARS = 320
EARLIEST_DAY = date(2000, 1, 1)


class UsageFileError(BillingError):
    """The file as a whole cannot be read; nothing was changed."""


@dataclass(frozen=True)
class _Column:
    field: str
    label: str
    aliases: tuple[str, ...]


COLUMNS = (
    _Column("customer", "customer", ("customer", "customer id", "customer_id", "account", "email", "user")),
    _Column("day", "day", ("day", "date", "usage date")),
    _Column("model", "model", ("model", "model name", "model id")),
    _Column("credits", "credits", ("credits", "credits used", "usage", "amount")),
)


def _key(header: str) -> str:
    return re.sub(r"[\s_\-]+", "", header.strip().lower())


@dataclass(frozen=True)
class UsageRow:
    line: int
    customer: str  # as the file says it: an id or an email, lower-cased
    day: date
    model: str
    credits: int  # hundredths


@dataclass(frozen=True)
class Malformed:
    line: int
    reason: str


@dataclass(frozen=True)
class ParsedUsage:
    filename: str
    sha256: str
    rows: tuple[UsageRow, ...]
    malformed: tuple[Malformed, ...]


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_usage(data: bytes, filename: str, *, today: date | None = None) -> ParsedUsage:
    """Read a usage CSV; raise UsageFileError only when the file as a whole is unusable."""
    if not data.strip():
        raise UsageFileError(f"{filename} is empty.")
    if len(data) > MAX_BYTES:
        raise UsageFileError(
            f"{filename} is {len(data) / 1024 / 1024:.1f} MB; the most accepted is {MAX_BYTES // 1024 // 1024} MB. "
            "Split it by day and import the parts."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageFileError(
            f"{filename} is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start}); "
            "export it again as UTF-8 CSV."
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise UsageFileError(f"{filename} has no readable header row ({exc}).") from None
    if len(header) > MAX_COLUMNS:
        raise UsageFileError(
            f"{filename} has {len(header):,} columns in its header; a usage file has four "
            "(customer, day, model, credits)."
        )
    keys: dict[str, int] = {}
    for i, h in enumerate(header):
        keys.setdefault(_key(h), i)
    positions: dict[str, int] = {}
    for column in COLUMNS:
        index = next((keys[_key(a)] for a in column.aliases if _key(a) in keys), None)
        if index is not None:
            positions[column.field] = index
    missing = [c.label for c in COLUMNS if c.field not in positions]
    if missing:
        shown = ", ".join(_short(h.strip()) for h in header if h.strip())[:300]
        raise UsageFileError(
            f"{filename} does not look like a usage file: it is missing the column"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)} (found: {shown or 'no column names'})."
        )
    today = today or utcnow().date()
    rows: list[UsageRow] = []
    malformed: list[Malformed] = []
    first_line: dict[tuple[str, date, str], int] = {}
    count = 0
    while True:
        if len(malformed) > MAX_MALFORMED:
            first = malformed[0]
            raise UsageFileError(
                f"{filename} has more than {MAX_MALFORMED:,} malformed lines (the first, line {first.line}, "
                f"{first.reason}); export it again as a usage CSV."
            )
        count += 1  # every line counts, blank or unreadable: a file of empty lines is not free to read
        if count > MAX_ROWS:
            raise UsageFileError(f"{filename} has more than {MAX_ROWS:,} lines; split it by day and import the parts.")
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            malformed.append(Malformed(reader.line_num, f"not readable as CSV: {_short(str(exc), 120)}"))
            continue
        if not any(c.strip() for c in cells):
            continue
        line = reader.line_num
        if len(cells) != len(header):
            malformed.append(Malformed(line, f"has {len(cells)} fields, the header has {len(header)}"))
            continue
        try:
            row = _row(line, {name: cells[i].strip() for name, i in positions.items()}, today)
        except _BadRow as exc:
            malformed.append(Malformed(line, str(exc)))
            continue
        key = (row.customer, row.day, row.model)
        if key in first_line:
            malformed.append(Malformed(line, f"repeats line {first_line[key]} (the same customer, day and model)"))
            continue
        first_line[key] = line
        rows.append(row)
    return ParsedUsage(filename, hashlib.sha256(data).hexdigest(), tuple(rows), tuple(malformed))


class _BadRow(Exception):
    pass


def _row(line: int, cells: dict[str, str], today: date) -> UsageRow:
    customer = cells["customer"].lower()
    if not customer:
        raise _BadRow("empty customer")
    if len(customer) > CUSTOMER_MAX_CHARS:
        raise _BadRow(f"a customer is at most {CUSTOMER_MAX_CHARS} characters")
    model = cells["model"]
    if not model:
        raise _BadRow("empty model")
    if len(model) > MODEL_MAX_CHARS or any(ord(ch) < 32 or ch == "\x7f" for ch in model):
        raise _BadRow(f"a model is at most {MODEL_MAX_CHARS} printable characters")
    raw_day = cells["day"]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw_day):
        raise _BadRow(f"bad day {_short(raw_day)!r}; write it as YYYY-MM-DD")
    try:
        day = date.fromisoformat(raw_day)
    except ValueError:
        raise _BadRow(f"{raw_day} is not a calendar day") from None
    if not EARLIEST_DAY <= day <= today:
        raise _BadRow(f"{raw_day} is {'in the future' if day > today else 'before 2000'}")
    raw = cells["credits"]
    if not raw:
        raise _BadRow("empty credits")
    if not re.fullmatch(r"[\d.,]+", raw):
        raise _BadRow(f"bad credits {_short(raw)!r}: a number of credits, 0 or more, such as 12.5")
    if raw.strip("0.,") == "":
        credits = 0
    else:
        try:
            credits = money.parse_amount(raw)
        except InvalidAmount as exc:
            raise _BadRow(f"bad credits {_short(raw)!r}: {exc}") from None
    return UsageRow(line, customer, day, model, credits)


# --- preview ------------------------------------------------------------------------------------


class Verdict(enum.StrEnum):
    NEW = "will book"
    CORRECTION = "will correct"
    UNCHANGED = "already booked"
    UNKNOWN = "unknown customer"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class PreviewLine:
    line: int
    verdict: Verdict
    reason: str
    customer: str = ""
    day: date | None = None
    model: str = ""
    credits: int = 0  # the total the file states
    booked: int = 0  # what is booked now
    customer_id: int | None = None
    overdraws: bool = False  # booking it takes the customer's balance below zero

    @property
    def difference(self) -> int:
        return self.credits - self.booked


@dataclass
class UsagePreview:
    parsed: ParsedUsage
    lines: list[PreviewLine]
    previously_imported: str | None = None

    @property
    def counts(self) -> dict[Verdict, int]:
        counts = dict.fromkeys(Verdict, 0)
        for line in self.lines:
            counts[line.verdict] += 1
        return counts

    @property
    def to_book(self) -> list[PreviewLine]:
        return [line for line in self.lines if line.verdict in (Verdict.NEW, Verdict.CORRECTION)]

    @property
    def overdrawn(self) -> list[PreviewLine]:
        return [line for line in self.lines if line.overdraws]

    def to_csv(self) -> bytes:
        return to_csv_bytes(
            (
                {
                    "line": line.line,
                    "verdict": line.verdict.value,
                    "customer": line.customer,
                    "day": line.day.isoformat() if line.day else "",
                    "model": line.model,
                    "credits": money.format_plain(line.credits),
                    "booked": money.format_plain(line.booked),
                    "difference": money.format_plain(line.difference),
                    "overdraws": "yes" if line.overdraws else "",
                    "reason": line.reason,
                }
                for line in self.lines
            ),
            ["line", "verdict", "customer", "day", "model", "credits", "booked", "difference", "overdraws", "reason"],
        )


def _customers(session: Session, refs: set[str]) -> dict[str, int]:
    """The customer ids the file's references name (public ids and emails), sandbox customers left out."""
    found: dict[str, int] = {}
    refs_list = sorted(refs)
    for start in range(0, len(refs_list), IN_BATCH):
        chunk = refs_list[start : start + IN_BATCH]
        for column in (Customer.public_id, Customer.email):
            stmt = select(column, Customer.id).where(column.in_(chunk), Customer.sandbox.is_(False))
            found.update({ref: cid for ref, cid in session.execute(stmt)})
    return found


def _booked(session: Session, keys: list[tuple[int, date, str]], *, lock: bool = False) -> dict[tuple, UsageLine]:
    found: dict[tuple, UsageLine] = {}
    for start in range(0, len(keys), IN_BATCH):
        chunk = keys[start : start + IN_BATCH]
        stmt = select(UsageLine).where(tuple_(UsageLine.customer_id, UsageLine.day, UsageLine.model).in_(chunk))
        if lock:
            stmt = stmt.with_for_update()
        for line in session.scalars(stmt.execution_options(populate_existing=True)):
            found[(line.customer_id, line.day, line.model)] = line
    return found


def _previous_import(session: Session, sha256: str) -> str | None:
    earlier = session.scalar(
        select(UsageImport).where(UsageImport.sha256 == sha256).order_by(UsageImport.imported_at.desc()).limit(1)
    )
    if earlier is None:
        return None
    return (
        f"This file was imported on {earlier.imported_at:%Y-%m-%d %H:%M} UTC by {earlier.imported_by}; "
        "importing it again books only what changed since."
    )


def preview(session: Session, actor: Actor, parsed: ParsedUsage, policy: CreditPolicy | None = None) -> UsagePreview:
    """What applying the file would book, line by line; reads only."""
    require(actor, Action.IMPORT_USAGE)
    order = _order(policy or CreditPolicy())
    ids = _customers(session, {row.customer for row in parsed.rows})
    keys = [(ids[r.customer], r.day, r.model) for r in parsed.rows if r.customer in ids]
    booked = _booked(session, keys)
    balances = {cid: _balance(session, cid) for cid in sorted({k[0] for k in keys})}
    lines = [PreviewLine(m.line, Verdict.MALFORMED, m.reason) for m in parsed.malformed]
    for row in parsed.rows:
        seen = {"customer": row.customer, "day": row.day, "model": row.model, "credits": row.credits}
        cid = ids.get(row.customer)
        if cid is None:
            lines.append(PreviewLine(row.line, Verdict.UNKNOWN, "no such customer (id or email)", **seen))
            continue
        line = booked.get((cid, row.day, row.model))
        before = line.credits if line is not None else 0
        if line is not None and before == row.credits:
            lines.append(
                PreviewLine(
                    row.line, Verdict.UNCHANGED, "booked with this total", booked=before, customer_id=cid, **seen
                )
            )
            continue
        plan = _plan(balances[cid], line, row.credits, order)
        balances[cid] = plan.after
        verdict = Verdict.NEW if line is None else Verdict.CORRECTION
        why = (
            "new usage"
            if line is None
            else f"the file says {money.format_credits(row.credits)}, booked {money.format_credits(before)}"
        )
        lines.append(
            PreviewLine(row.line, verdict, why, booked=before, customer_id=cid, overdraws=plan.after.total < 0, **seen)
        )
    lines.sort(key=lambda x: x.line)
    return UsagePreview(parsed, lines, _previous_import(session, parsed.sha256))


def _order(policy: CreditPolicy):
    return PAID_FIRST if policy.draw_order == "paid_first" else PROMOTIONAL_FIRST


@dataclass(frozen=True)
class _Plan:
    """What booking a new total for one (customer, day, model) moves: per pool, and the line after."""

    promotional: int  # signed change of the promotional pool
    paid: int  # signed change of the paid pool
    paid_value_cents: int  # signed change of the paid credits' worth
    after: Balance
    line_credits: int
    line_promotional: int
    line_paid_value_cents: int


def _plan(balance: Balance, line: UsageLine | None, total: int, order) -> _Plan:
    drawn = line.credits if line is not None else 0
    drawn_promotional = line.promotional_credits if line is not None else 0
    drawn_value = line.paid_value_cents if line is not None else 0
    difference = total - drawn
    if difference >= 0:
        draw = _draw(balance, difference, order)
        promotional, paid, value = -draw.promotional, -draw.paid, -draw.paid_value_cents
    else:  # less than booked: give back paid credits first (they were drawn last), then promotional ones
        back = -difference
        drawn_paid = drawn - drawn_promotional
        paid = min(back, max(drawn_paid, 0))
        value = _share(drawn_value, paid, drawn_paid)
        promotional = back - paid
    after = Balance(balance.paid + paid, balance.promotional + promotional, balance.paid_value_cents + value)
    return _Plan(promotional, paid, value, after, total, drawn_promotional - promotional, drawn_value - value)


# --- apply ----------------------------------------------------------------------------------------


@dataclass
class UsageResult:
    preview: UsagePreview
    booked: int = 0  # lines booked for the first time
    corrected: int = 0
    unchanged: int = 0
    credits: int = 0  # hundredths drawn in all (corrections that gave back count negative)
    overdrawn: list[tuple[int, str]] = field(default_factory=list)  # (line, customer) that went below zero
    import_id: int | None = None

    def summary(self) -> str:
        if not (self.booked or self.corrected):
            return f"Nothing to book from {self.preview.parsed.filename}: every line is booked with its total already."
        text = (
            f"Booked {self.booked} usage lines and {self.corrected} corrections from {self.preview.parsed.filename} "
            f"({money.format_credits(self.credits)} credits)"
        )
        if self.overdrawn:
            text += f"; {len(self.overdrawn)} lines took a balance below zero (flagged)"
        return text + "."


def apply(
    database: Database,
    actor: Actor,
    parsed: ParsedUsage,
    *,
    policy: CreditPolicy | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> UsageResult:
    """Book every line of the file that is new or changed, in one transaction, and record the import.

    Each customer's balance row is locked (in customer order) before their lines are drawn, and the
    booked lines are read again under lock, so a refund, an adjustment or another import running at
    the same time is either before or after this one, never half. A file that books nothing is not recorded.
    """
    require(actor, Action.IMPORT_USAGE)
    policy = policy or CreditPolicy()
    order = _order(policy)
    with database.session() as session:
        shown = preview(session, actor, parsed, policy)
        result = UsageResult(shown)
        try:
            _book(session, actor, parsed, shown, result, order, progress)
        except _NothingToBook:
            pass  # rolled back: not even the import is recorded
    return result


class _NothingToBook(Exception):
    pass


def _book(
    session: Session,
    actor: Actor,
    parsed: ParsedUsage,
    shown: UsagePreview,
    result: UsageResult,
    order,
    progress: Callable[[int, int], None] | None,
) -> None:
    with transaction(session):
        rows = [line for line in shown.lines if line.customer_id is not None]
        by_customer: dict[int, list[PreviewLine]] = defaultdict(list)
        for line in rows:
            by_customer[line.customer_id].append(line)
        record = UsageImport(
            filename=parsed.filename[:255],
            sha256=parsed.sha256,
            imported_at=utcnow(),
            imported_by=actor.email,
            rows=len(parsed.rows) + len(parsed.malformed),
            summary={},
        )
        session.add(record)
        session.flush()
        now = utcnow()
        for done, cid in enumerate(sorted(by_customer), start=1):
            balance = _balance(session, cid, lock=True)
            lines = by_customer[cid]
            booked = _booked(session, [(cid, x.day, x.model) for x in lines], lock=True)
            entries = []
            for x in lines:
                line = booked.get((cid, x.day, x.model))
                if line is not None and line.credits == x.credits:
                    result.unchanged += 1
                    continue
                plan = _plan(balance, line, x.credits, order)
                balance = plan.after
                kind = LedgerKind.USAGE if line is None else LedgerKind.USAGE_CORRECTION
                note = f"usage {x.day.isoformat()} · {x.model}"
                common = {"by": actor.email, "at": now, "note": note}
                entries.append(_entry(cid, kind, CreditPool.PROMOTIONAL, plan.promotional, 0, **common))
                entries.append(_entry(cid, kind, CreditPool.PAID, plan.paid, plan.paid_value_cents, **common))
                overdrawn = balance.total < 0
                if line is None:
                    line = UsageLine(customer_id=cid, day=x.day, model=x.model)
                    session.add(line)
                    result.booked += 1
                else:
                    result.corrected += 1
                result.credits += x.credits - (line.credits or 0)
                line.credits = plan.line_credits
                line.promotional_credits = plan.line_promotional
                line.paid_value_cents = plan.line_paid_value_cents
                line.overdrawn = bool(line.overdrawn) or overdrawn
                line.import_id = record.id
                line.updated_at = now
                if overdrawn:
                    result.overdrawn.append((x.line, x.customer))
            _post(session, entries)
            if progress:
                progress(done, len(by_customer))
        if not (result.booked or result.corrected):
            raise _NothingToBook
        result.import_id = record.id
        record.summary = {
            "counts": {v.value: n for v, n in shown.counts.items()},
            "booked": result.booked,
            "corrected": result.corrected,
            "unchanged": result.unchanged,
            "credits": result.credits,
            "overdrawn": [{"line": line, "customer": who} for line, who in result.overdrawn[:1000]],
            "malformed": [{"line": m.line, "reason": m.reason} for m in parsed.malformed[:1000]],
        }
        audit.record(
            session,
            actor,
            Action.IMPORT_USAGE.value,
            "usage_import",
            record.id,
            reason=f"usage file {parsed.filename}"[:500],
            after={"sha256": parsed.sha256} | {k: v for k, v in record.summary.items() if k != "malformed"},
        )
