"""The liability roll-forward: what the company owes customers in unused credits, month by month.

Per UTC month and pool: opening + top-ups + grants − usage − refunds − expiry = closing, in credits and
in USD at the price paid (promotional credits are worth nothing: they were never revenue). Expired paid
credits are breakage. Read from ``credit_monthly``, which every ledger entry moves in its own transaction
(billing_core.credits.ledger), so the page reads a few hundred rows whatever the number of entries; the
drill-down to customers reads one month of ``customer_credit_monthly`` by its primary key, a page at a time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing_core.access.roles import Action, Actor, require
from billing_core.core.errors import BillingError
from billing_core.core.exports import to_csv_bytes
from billing_core.core.models import CreditMonthly, CreditPool, Customer, CustomerCreditMonthly, LedgerEntry, LedgerKind
from billing_core.core.money import format_plain

# Which ledger kinds make each column; signs as the ledger keeps them (debits negative).
MOVEMENTS: dict[str, tuple[LedgerKind, ...]] = {
    "topups": (LedgerKind.TOPUP,),
    "grants": (LedgerKind.ADJUSTMENT,),
    "usage": (LedgerKind.USAGE, LedgerKind.USAGE_CORRECTION),
    "refunds": (LedgerKind.REFUND,),
    "expiry": (LedgerKind.EXPIRY,),
}
_COLUMN_OF = {kind: name for name, kinds in MOVEMENTS.items() for kind in kinds}
MAX_MONTHS = 240
DRILL_PAGE = 50


@dataclass(frozen=True)
class Figures:
    """One roll-forward line in one unit (hundredths of a credit, or cents at the price paid).

    Movements are as the roll-forward reads them: usage, refunds and expiry are what they took away
    (positive), grants are net (goodwill grants less correction debits)."""

    opening: int = 0
    topups: int = 0
    grants: int = 0
    usage: int = 0
    refunds: int = 0
    expiry: int = 0

    @property
    def closing(self) -> int:
        return self.opening + self.topups + self.grants - self.usage - self.refunds - self.expiry


@dataclass(frozen=True)
class MonthLine:
    month: date
    pool: CreditPool
    credits: Figures
    usd: Figures  # cents at the price paid

    @property
    def breakage_cents(self) -> int:
        """Expired paid credits at the price paid: kept by the company, no longer owed."""
        return self.usd.expiry if self.pool is CreditPool.PAID else 0


def _figures(opening: int, moved: dict[str, int]) -> Figures:
    return Figures(
        opening=opening,
        topups=moved.get("topups", 0),
        grants=moved.get("grants", 0),
        usage=-moved.get("usage", 0),
        refunds=-moved.get("refunds", 0),
        expiry=-moved.get("expiry", 0),
    )


def _months(first: date, last: date) -> list[date]:
    months, month = [], first
    while month <= last:
        months.append(month)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return months


def roll_forward(
    session: Session, actor: Actor, *, since: date | None = None, until: date | None = None
) -> list[MonthLine]:
    """Every month from ``since`` (default: the first with an entry) to ``until`` (default: the last),
    paid then promotional; the opening of the first month is everything before it."""
    require(actor, Action.READ_CREDITS)
    until_month = until.replace(day=1) if until else None
    stmt = select(
        CreditMonthly.month, CreditMonthly.pool, CreditMonthly.kind, CreditMonthly.credits, CreditMonthly.value_cents
    )
    if until_month:
        stmt = stmt.where(CreditMonthly.month <= until_month)
    moved: dict[tuple[date, CreditPool], dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for month, pool, kind, credits, value in session.execute(stmt):
        cell = moved[(month, CreditPool(pool))][_COLUMN_OF[LedgerKind(kind)]]
        cell[0] += credits
        cell[1] += value
    if not moved and not (since and until_month):
        return []
    first = min((m for m, _ in moved), default=since.replace(day=1) if since else None)
    last = until_month or max(m for m, _ in moved)
    start = since.replace(day=1) if since else first
    months = _months(min(first, start), last)
    if len(_months(start, last)) > MAX_MONTHS:
        raise BillingError(f"Show at most {MAX_MONTHS} months at a time.")
    lines: list[MonthLine] = []
    opening = {pool: [0, 0] for pool in CreditPool}
    for month in months:
        for pool in (CreditPool.PAID, CreditPool.PROMOTIONAL):
            cells = moved.get((month, pool), {})
            credits = _figures(opening[pool][0], {k: v[0] for k, v in cells.items()})
            usd = _figures(opening[pool][1], {k: v[1] for k, v in cells.items()})
            opening[pool] = [credits.closing, usd.closing]
            if month >= start:
                lines.append(MonthLine(month, pool, credits, usd))
    return lines


def newest_first(lines: list[MonthLine]) -> list[MonthLine]:
    """The lines as finance reads them on screen: this month on top, each month's pools in their order."""
    return sorted(lines, key=lambda line: line.month, reverse=True)  # a stable sort keeps paid before promotional


def owed_now(lines: list[MonthLine]) -> dict[CreditPool, MonthLine]:
    """Each pool's line of the last month shown: its closing is what is owed at that month's end (so far)."""
    last = max(line.month for line in lines)
    return {line.pool: line for line in lines if line.month == last}


CSV_COLUMNS = [
    "month",
    "pool",
    *(f"{name}_credits" for name in ("opening", *MOVEMENTS, "closing")),
    *(f"{name}_usd" for name in ("opening", *MOVEMENTS, "closing")),
    "breakage_usd",
]


def roll_forward_csv(lines: list[MonthLine]) -> bytes:
    def row(line: MonthLine) -> dict:
        out: dict[str, str] = {"month": line.month.strftime("%Y-%m"), "pool": line.pool.value}
        for unit, figures in (("credits", line.credits), ("usd", line.usd)):
            for name in ("opening", *MOVEMENTS, "closing"):
                out[f"{name}_{unit}"] = format_plain(getattr(figures, name))
        out["breakage_usd"] = format_plain(line.breakage_cents)
        return out

    return to_csv_bytes((row(line) for line in lines), CSV_COLUMNS)


# --- drill-down ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerLine:
    customer_id: int
    public_id: str
    name: str
    email: str
    moved: dict[CreditPool, Figures] = field(default_factory=dict)  # credits per pool in the month (opening set)


def customers_in_month(
    session: Session, actor: Actor, month: date, *, after_customer_id: int = 0, size: int = DRILL_PAGE
) -> tuple[list[CustomerLine], int | None]:
    """The customers whose credits moved in ``month``, by customer id, a page at a time: each one's
    opening and movements per pool (credits). Returns the page and the cursor of the next one."""
    require(actor, Action.READ_CREDITS)
    if not 1 <= size <= 500:
        raise BillingError("A page holds 1 to 500 customers.")
    month = month.replace(day=1)
    ids = list(
        session.scalars(
            select(CustomerCreditMonthly.customer_id)
            .where(CustomerCreditMonthly.month == month, CustomerCreditMonthly.customer_id > after_customer_id)
            .group_by(CustomerCreditMonthly.customer_id)
            .order_by(CustomerCreditMonthly.customer_id)
            .limit(size + 1)
        )
    )
    more = len(ids) > size
    ids = ids[:size]
    if not ids:
        return [], None
    c = CustomerCreditMonthly
    rows = session.execute(
        select(c.customer_id, c.month, c.pool, c.kind, func.sum(c.credits))
        .where(c.customer_id.in_(ids), c.month <= month)
        .group_by(c.customer_id, c.month, c.pool, c.kind)
    ).all()
    opening: dict[tuple[int, CreditPool], int] = defaultdict(int)
    moved: dict[tuple[int, CreditPool], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for customer_id, row_month, pool, kind, credits in rows:
        key = (customer_id, CreditPool(pool))
        if row_month < month:
            opening[key] += int(credits)
        else:
            moved[key][_COLUMN_OF[LedgerKind(kind)]] += int(credits)
    people = {
        r.id: r
        for r in session.execute(
            select(Customer.id, Customer.public_id, Customer.name, Customer.email).where(Customer.id.in_(ids))
        )
    }
    lines = [
        CustomerLine(
            cid,
            people[cid].public_id,
            people[cid].name,
            people[cid].email,
            {pool: _figures(opening[(cid, pool)], moved[(cid, pool)]) for pool in CreditPool},
        )
        for cid in ids
    ]
    return lines, (ids[-1] if more else None)


# --- the proof: the ledger itself ----------------------------------------------------------------


def ledger_closing(session: Session, actor: Actor, month: date) -> dict[CreditPool, tuple[int, int]]:
    """The ledger's own sums (credits, cents at the price paid) per pool at the end of ``month``: a full
    scan of the entries, which the roll-forward's closing must equal to the cent."""
    require(actor, Action.READ_CREDITS)
    month = month.replace(day=1)
    end = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    stmt = (
        select(LedgerEntry.pool, func.sum(LedgerEntry.credits), func.sum(LedgerEntry.value_cents))
        .where(LedgerEntry.created_at < datetime(end.year, end.month, end.day, tzinfo=UTC))
        .group_by(LedgerEntry.pool)
    )
    found = {CreditPool(pool): (int(c), int(v)) for pool, c, v in session.execute(stmt)}
    return {pool: found.get(pool, (0, 0)) for pool in CreditPool}
