"""Revenue figures for the Revenue page: filters, the report (pandas frames from small rollup queries),
and the pricing what-if over history.

Everything here reads the rollup tables (billing_core.revenue.rollup), never orders into pandas, except the
what-if, which groups the paid orders of the range in the database by (amount, method, plan).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

import pandas as pd
from sqlalchemy import Date, String, bindparam, func, select, text, type_coerce
from sqlalchemy.orm import Session

from billing_core.access.roles import Action, Actor, require
from billing_core.core import countries, money
from billing_core.core.config import DEFAULT_REPORT_TIMEZONES
from billing_core.core.db import one_of
from billing_core.core.errors import BillingError
from billing_core.core.models import Customer, CustomerMonthly, CustomerTotal, Order, RevenueDaily, RevenueDailyCountry
from billing_core.pricing.catalog import Method, PlanId, Pricing, quote
from billing_core.revenue import rollup

PRESETS = {
    "last_7": "Last 7 days",
    "last_30": "Last 30 days",
    "last_90": "Last 90 days",
    "this_month": "This month",
    "last_month": "Last month",
    "ytd": "Year to date",
    "last_12_months": "Last 12 months",
    "all": "All time",
    "custom": "Custom dates",
}
DEFAULT_PRESET = "last_30"
BUCKETS = ("day", "week", "month")
KINDS = ("all", "new", "returning")
PLANS = tuple(p.value for p in PlanId)
METHODS = tuple(m.value for m in Method)
EARLIEST = date(2000, 1, 1)
TOP_CUSTOMERS = 10
TOP_COLUMNS = ["customer", "email", "country", "topups", "total_cents", "amount_cents"]
TOP_PER_MONTH = 100
TOP_CANDIDATES = 15_000  # the longer month lists' rows in all: 7,500 a month over two months
TOP_LIFETIME_CANDIDATES = 20_000  # beyond this many, grouping every customer of the months is as quick


# --- filters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What the page shows: local dates [start, end) in ``tz``; empty tuples mean every value."""

    start: date
    end: date
    preset: str = "custom"
    plans: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    kind: str = "all"
    tz: str = "UTC"
    bucket: str = "day"
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def previous(self) -> tuple[date, date]:
        """The period of the same length just before."""
        return self.start - timedelta(days=self.days), self.start


def today_in(tz: str) -> date:
    return datetime.now(UTC).astimezone(rollup._zone(tz)).date()


def preset_range(preset: str, today: date, first_day: date | None = None) -> tuple[date, date]:
    """[start, end) of a quick range, ending with ``today``; "all" starts on ``first_day`` (the first
    day with an order, see :func:`first_day`), or today when there is none."""
    tomorrow = today + timedelta(days=1)
    if preset in ("last_7", "last_30", "last_90"):
        return tomorrow - timedelta(days=int(preset.removeprefix("last_"))), tomorrow
    if preset == "this_month":
        return today.replace(day=1), tomorrow
    if preset == "last_month":
        end = today.replace(day=1)
        return (end - timedelta(days=1)).replace(day=1), end
    if preset == "ytd":
        return today.replace(month=1, day=1), tomorrow
    if preset == "last_12_months":
        return _add_months(today.replace(day=1), -11), tomorrow
    if preset == "all":
        return min(first_day or today, today), tomorrow
    raise ValueError(f"unknown range {preset!r}")


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def default_filters(today: date | None = None, tz: str = "UTC") -> Filters:
    start, end = preset_range(DEFAULT_PRESET, today or today_in(tz))
    return Filters(start, end, DEFAULT_PRESET, tz=tz)


def filters_to_query_params(filters: Filters) -> dict[str, str]:
    """The URL query string of a view; defaults are left out so links stay short."""
    params: dict[str, str] = {}
    if filters.preset == "custom":
        params["start"], params["end"] = filters.start.isoformat(), filters.end.isoformat()
    else:
        params["range"] = filters.preset
    for key, values in (("plan", filters.plans), ("method", filters.methods), ("country", filters.countries)):
        if values:
            params[key] = ",".join(values)
    if filters.kind != "all":
        params["kind"] = filters.kind
    if filters.tz != "UTC":
        params["tz"] = filters.tz
    if filters.bucket != "day":
        params["bucket"] = filters.bucket
    return params


def filters_from_query_params(
    params: Mapping[str, str],
    *,
    today: date | None = None,
    timezones: Iterable[str] = DEFAULT_REPORT_TIMEZONES,
    first_days: Mapping[str, date | None] | None = None,
) -> Filters:
    """Filters from a URL query string. A bad value falls back to its default and leaves a note.
    ``first_days`` (time zone -> :func:`first_day`) is where "all time" starts."""
    notes: list[str] = []

    def get(key: str) -> str:
        value = params.get(key, "")
        return (value[-1] if isinstance(value, list) and value else value or "").strip()[:200]

    zones = tuple(timezones)
    tz = get("tz") or "UTC"
    if tz not in zones:
        notes.append(f"Time zone {tz!r} is not one the reports keep; showing UTC.")
        tz = "UTC" if "UTC" in zones else zones[0]
    today = today or today_in(tz)

    def choice(key: str, allowed: tuple[str, ...], default: str) -> str:
        value = get(key) or default
        if value not in allowed:
            notes.append(f"{key} {value!r} is not one of {', '.join(allowed)}; showing {default}.")
            return default
        return value

    def many(key: str, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
        raw = get(key)
        values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
        if allowed is None:  # countries: codes or names
            codes = [countries.code_of(v) for v in values]
            good = tuple(dict.fromkeys(c for c in codes if c is not None))
            known = sum(c is not None for c in codes)
        else:
            good = tuple(v for v in values if v in allowed)
            known = len(good)
        if known != len(values):
            notes.append(f"Ignored unknown {key} values in the link: {raw!r}.")
        return good

    preset = get("range")
    start_text, end_text = get("start"), get("end")
    if preset and preset != "custom":
        if preset not in PRESETS:
            notes.append(f"Range {preset!r} is unknown; showing {PRESETS[DEFAULT_PRESET].lower()}.")
            preset = DEFAULT_PRESET
        start, end = preset_range(preset, today, (first_days or {}).get(tz))
    elif start_text or end_text:
        try:
            start, end = date.fromisoformat(start_text), date.fromisoformat(end_text)
            if not (EARLIEST <= start < end <= date(2100, 1, 1)):
                raise ValueError
            preset = "custom"
        except ValueError:
            notes.append(
                f"Dates start={start_text!r} end={end_text!r} are not a range of YYYY-MM-DD days; "
                f"showing {PRESETS[DEFAULT_PRESET].lower()}."
            )
            preset = DEFAULT_PRESET
            start, end = preset_range(preset, today)
    else:
        preset = DEFAULT_PRESET
        start, end = preset_range(preset, today)
    return Filters(
        start=start,
        end=end,
        preset=preset,
        plans=many("plan", PLANS),
        methods=many("method", METHODS),
        countries=many("country", None),
        kind=choice("kind", KINDS, "all"),
        tz=tz,
        bucket=choice("bucket", BUCKETS, "day"),
        notes=tuple(notes),
    )


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    created: int = 0
    paid: int = 0
    amount_cents: int = 0
    fee_cents: int = 0
    total_cents: int = 0
    credits: int = 0
    refund_count: int = 0
    refunded_cents: int = 0

    @property
    def success_rate(self) -> float | None:
        """Paid top-ups per created order in the period (both by their own day)."""
        return self.paid / self.created if self.created else None

    @property
    def average_cents(self) -> int | None:
        """Average top-up amount, rounded half-up to the cent."""
        return money.from_decimal(money.to_decimal(self.amount_cents) / self.paid) if self.paid else None

    @property
    def net_cents(self) -> int:
        """Charged (top-ups and fees) less refunded."""
        return self.total_cents - self.refunded_cents


@dataclass(frozen=True)
class RevenueReport:
    filters: Filters
    start: date  # the start shown (for "all time", the first day with data)
    current: Totals
    previous: Totals
    series: pd.DataFrame  # period, period_end, partial, plan, topups, revenue_cents
    plans: pd.DataFrame  # plan, topups, revenue_cents, topup_share, revenue_share
    methods: pd.DataFrame  # method, topups, revenue_cents, fee_cents, revenue_share
    kinds: pd.DataFrame  # kind, topups, revenue_cents, revenue_share
    top_customers: pd.DataFrame  # customer, email, country, topups, total_cents, amount_cents (may be left out)
    top_exact: bool  # the candidate bound proved the list without reading every customer
    top_months: tuple[date, date]  # first and last UTC month the top customers cover

    first_day: date | None = None  # the first day with an order in the filters' time zone

    @property
    def has_previous(self) -> bool:
        """Whether there is an earlier period to compare with: some order came before the start."""
        return self.first_day is not None and self.first_day < self.start


def _source(filters: Filters):
    return RevenueDailyCountry if filters.countries else RevenueDaily


def _where(filters: Filters, start: date, end: date) -> list:
    table = _source(filters)
    where = [table.tz == filters.tz, table.day >= start, table.day < end]
    if filters.countries:
        where.append(RevenueDailyCountry.country.in_(filters.countries))
    if filters.plans:
        where.append(table.plan.in_(filters.plans))
    if filters.methods:
        where.append(table.method.in_(filters.methods))
    if filters.kind != "all":
        where.append(table.kind == filters.kind)
    return where


def _sums(table) -> list:
    return [func.coalesce(func.sum(getattr(table, m)), 0).label(m) for m in rollup.MEASURES]


def _totals(row) -> Totals:
    m = row._mapping
    return Totals(
        int(m["created_count"]),
        int(m["paid_count"]),
        int(m["amount_cents"]),
        int(m["fee_cents"]),
        int(m["total_cents"]),
        int(m["credits"]),
        int(m["refund_count"]),
        int(m["refunded_cents"]),
    )


def revenue_report(
    session: Session, actor: Actor, filters: Filters, *, with_top_customers: bool = True
) -> RevenueReport:
    """Every figure of the Revenue page for ``filters``, from the rollup (a few small queries).

    Top customers read ``customer_monthly`` and ``customer_totals``, which grow with the number of
    customers; the page asks for them separately (``top_customers``) so the other figures never wait.
    """
    require(actor, Action.READ_REVENUE)
    table = _source(filters)
    first = first_day(session, actor, filters.tz)
    start = max(filters.start, first) if filters.preset == "all" and first else filters.start
    scoped = replace(filters, start=start)
    # Plan and day come back as plain text: converting thousands of rows to enums and dates costs more
    # than the query.
    plan, day = type_coerce(table.plan, String), type_coerce(table.day, String)
    series_rows = session.execute(
        select(day, plan, func.sum(table.paid_count), func.sum(table.amount_cents))
        .where(*_where(scoped, start, filters.end), table.paid_count > 0)
        .group_by(table.day, table.plan)
    ).all()
    split_rows = session.execute(
        select(type_coerce(table.method, String), type_coerce(table.kind, String), *_sums(table))
        .where(*_where(scoped, start, filters.end))
        .group_by(table.method, table.kind)
    ).all()
    prev_start, prev_end = scoped.previous()
    previous = _totals(session.execute(select(*_sums(table)).where(*_where(scoped, prev_start, prev_end))).one())

    current = Totals(*(sum(int(r[2 + i]) for r in split_rows) for i in range(len(rollup.MEASURES))))
    by_method: dict[str, list[int]] = {m: [0, 0, 0] for m in METHODS}
    by_kind: dict[str, list[int]] = {k: [0, 0] for k in ("new", "returning")}
    paid_i, amount_i, fee_i = (2 + rollup.MEASURES.index(m) for m in ("paid_count", "amount_cents", "fee_cents"))
    for r in split_rows:
        figures = (int(r[paid_i]), int(r[amount_i]), int(r[fee_i]))
        by_method[r[0]] = [a + b for a, b in zip(by_method[r[0]], figures, strict=True)]
        by_kind[r[1]] = [a + b for a, b in zip(by_kind[r[1]], figures[:2], strict=True)]
    series, by_plan = _series(series_rows, filters.bucket, start, filters.end)
    first_month, last_month = start.replace(day=1), (filters.end - timedelta(days=1)).replace(day=1)
    if with_top_customers:
        top, exact = top_customers(session, actor, first_month, last_month)
    else:
        top, exact = pd.DataFrame(columns=TOP_COLUMNS), False
    return RevenueReport(
        filters=filters,
        start=start,
        current=current,
        previous=previous,
        series=series,
        plans=_shares("plan", {p: by_plan.get(p, [0, 0]) for p in PLANS}, ["topups", "revenue_cents"]),
        methods=_shares("method", by_method, ["topups", "revenue_cents", "fee_cents"]),
        kinds=_shares("kind", by_kind, ["topups", "revenue_cents"]),
        top_customers=top,
        top_exact=exact,
        top_months=(first_month, last_month),
        first_day=first,
    )


def first_day(session: Session, actor: Actor, tz: str) -> date | None:
    """The local day in ``tz`` of the first order (sandbox aside), or None: the smallest key of the
    rollup's (tz, day, ...) primary key, one index seek whatever the number of orders."""
    require(actor, Action.READ_REVENUE)
    first = session.scalar(select(func.min(RevenueDaily.day)).where(RevenueDaily.tz == tz))
    return _as_date(first) if first else None


def bucket_start(day: date, bucket: str) -> date:
    if bucket == "week":
        return day - timedelta(days=day.weekday())  # weeks start on Monday
    if bucket == "month":
        return day.replace(day=1)
    return day


def bucket_in_range(day: date, bucket: str, start: date, end: date) -> tuple[date, date, bool]:
    """The first and last day of ``day``'s bucket that lie in the range [start, end), and whether the
    range cuts the bucket (a partial week or month: its figures are not a whole period's)."""
    first = bucket_start(day, bucket)
    after = _add_months(first, 1) if bucket == "month" else first + timedelta(days=7 if bucket == "week" else 1)
    shown_first, shown_after = max(first, start), min(after, end)
    return shown_first, shown_after - timedelta(days=1), (shown_first, shown_after) != (first, after)


def _series(rows, bucket: str, start: date, end: date) -> tuple[pd.DataFrame, dict[str, list[int]]]:
    """Top-ups and revenue per period and plan (catalog order), and per plan over the whole range.
    Periods are cut to the range: a week of a range starting on a Thursday starts on that Thursday."""
    periods: dict[tuple[date, str], list[int]] = {}
    by_plan: dict[str, list[int]] = {}
    buckets: dict[object, tuple[date, date, bool]] = {}
    for day, plan, topups, revenue in rows:
        bucket_of_day = buckets.get(day)
        if bucket_of_day is None:
            bucket_of_day = buckets[day] = bucket_in_range(_as_date(day), bucket, start, end)
        cell = periods.setdefault((bucket_of_day, plan), [0, 0])
        cell[0] += int(topups)
        cell[1] += int(revenue)
        total = by_plan.setdefault(plan, [0, 0])
        total[0] += int(topups)
        total[1] += int(revenue)
    order = {p: i for i, p in enumerate(PLANS)}
    keys = sorted(periods, key=lambda k: (k[0][0], order[k[1]]))
    frame = pd.DataFrame(
        [(*period, plan, *periods[(period, plan)]) for period, plan in keys],
        columns=["period", "period_end", "partial", "plan", "topups", "revenue_cents"],
    )
    return frame.astype({"partial": "bool", "topups": "int64", "revenue_cents": "int64"}), by_plan


def period_label(first: date, last: date, partial: bool, bucket: str) -> str:
    """'2026-09-03' for a day, '2026-09-03 – 2026-09-06 (partial)' for a week or month the range cuts."""
    if bucket == "day":
        return first.isoformat()
    return f"{first} – {last}" + (" (partial)" if partial else "")


def _as_date(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _shares(key: str, rows: dict[str, list[int]], columns: list[str]) -> pd.DataFrame:
    """One row per value in catalog order, with its share of top-ups and of revenue."""
    topups = sum(r[0] for r in rows.values())
    revenue = sum(r[1] for r in rows.values())
    return pd.DataFrame(
        [
            (name, *figures, figures[0] / topups if topups else 0.0, figures[1] / revenue if revenue else 0.0)
            for name, figures in rows.items()
        ],
        columns=[key, *columns, "topup_share", "revenue_share"],
    )


def top_customers(session: Session, actor: Actor, first_month: date, last_month: date) -> tuple[pd.DataFrame, bool]:
    """The ten best customers by amount charged over whole UTC months (always exact), and whether
    bounds proved them from a few customers (True) or every customer of the months was grouped (False).

    Each month's best customers (an index range each) are the candidates. What a candidate shows
    in those lists is at most its total, so the tenth best of those partial sums is a floor under
    the true tenth best; the candidates' exact sums raise it. Ceilings rule customers out:
    - a customer outside every month's list has at most the sum of the lists' last totals;
      when that is below the floor, the ten are among the candidates, and only candidates whose
      own ceiling (what they show, plus the last total of each list they miss) reaches the floor
      are summed exactly;
    - nobody pays more in some months than over all time: only customers whose lifetime total
      (``customer_totals``, an index range) reaches the floor can be in the ten; when they are not
      too many, they are summed exactly, each joined to its months by primary key.
    Lists of 100 a month come first; when they prove nothing, longer ones (TOP_CANDIDATES rows in
    all) lower the first ceiling. Failing all, every customer of the months is grouped. The answer
    is exact on every path; ties go to the lower customer id.
    """
    require(actor, Action.READ_REVENUE)
    months = []
    month = first_month
    while month <= last_month:
        months.append(month)
        month = _add_months(month, 1)
    if not months:
        return pd.DataFrame(columns=TOP_COLUMNS), True
    floor = 0  # never above the true tenth best
    crowded = -1  # the highest floor known to be reached by more than TOP_LIFETIME_CANDIDATES lifetimes

    def few_reach(value: int) -> bool:
        """Whether few enough lifetimes reach ``value`` to sum them (counted once per new floor)."""
        nonlocal crowded
        if value <= crowded:
            return False
        if _lifetimes_reaching(session, value) <= TOP_LIFETIME_CANDIDATES:
            return True
        crowded = value
        return False

    best: list[tuple[int, ...]] | None = None
    for limit in sorted({TOP_PER_MONTH, max(TOP_PER_MONTH, TOP_CANDIDATES // len(months))}):
        shown, most, ceiling = _month_lists(session, months, limit)
        partial = sorted(shown.values(), reverse=True)
        floor = max(floor, partial[TOP_CUSTOMERS - 1] if len(partial) >= TOP_CUSTOMERS else 0)
        # Only candidates whose ceiling reaches the floor can be in the ten.
        candidates = {c for c, ceiling_c in most.items() if ceiling_c >= floor}
        if not ceiling or ceiling < floor:
            best = _top_of(session, candidates, first_month, last_month)
        elif floor and few_reach(floor):
            best = _top_reaching(session, floor, first_month, last_month)
        else:
            candidates_best = _top_of(session, candidates, first_month, last_month)
            tenth = candidates_best[-1][2] if len(candidates_best) == TOP_CUSTOMERS else 0
            if ceiling < tenth:
                best = candidates_best
            elif tenth > floor:
                floor = tenth
                if few_reach(floor):
                    best = _top_reaching(session, floor, first_month, last_month)
        if best is not None:
            break
    proved = best is not None
    if best is None:
        # Grouped from the (month, total_cents) index alone, which also holds customer_id on SQLite;
        # the other sums are read for the ten only.
        cm = CustomerMonthly
        ten = session.scalars(
            select(cm.customer_id)
            .where(cm.month >= first_month, cm.month <= last_month)
            .group_by(cm.customer_id)
            .order_by(func.sum(cm.total_cents).desc(), cm.customer_id)
            .limit(TOP_CUSTOMERS)
        ).all()
        best = _top_of(session, set(ten), first_month, last_month)
    people = {
        c.id: c
        for c in session.execute(
            select(Customer.id, Customer.name, Customer.email, Customer.country).where(
                Customer.id.in_([r[0] for r in best])
            )
        )
    }
    rows = [(people[r[0]].name, people[r[0]].email, people[r[0]].country, *r[1:]) for r in best]
    return pd.DataFrame(rows, columns=TOP_COLUMNS), proved


def _month_lists(session: Session, months: list[date], limit: int) -> tuple[dict[int, int], dict[int, int], int]:
    """Each month's ``limit`` best customers. Returns per listed customer the sum of what the lists
    show (a floor on its total) and a ceiling on its total (that sum plus the last total of each full
    list it is missing from), and the ceiling on any customer outside every list (the sum of the
    full lists' last totals; 0 when no list is full, as then the lists hold every customer)."""
    one_month = (
        "SELECT * FROM (SELECT customer_id, month, total_cents FROM customer_monthly WHERE month = :m{i} "
        "ORDER BY total_cents DESC LIMIT {limit}) AS t{i}"
    )
    sql = " UNION ALL ".join(one_month.format(i=i, limit=limit) for i in range(len(months)))
    ranked = session.execute(
        text(sql).bindparams(*(bindparam(f"m{i}", m, type_=Date) for i, m in enumerate(months)))
    ).all()
    per_month: dict[object, list[int]] = {}
    for _, m, total in ranked:
        per_month.setdefault(m, []).append(int(total))
    last = {m: min(v) if len(v) >= limit else 0 for m, v in per_month.items()}
    ceiling = sum(last.values())
    shown: dict[int, int] = {}
    covered: dict[int, int] = {}  # the last totals of the lists a customer is in
    for customer_id, m, total in ranked:
        shown[customer_id] = shown.get(customer_id, 0) + int(total)
        covered[customer_id] = covered.get(customer_id, 0) + last[m]
    return shown, {c: shown[c] + ceiling - covered[c] for c in shown}, ceiling


def _rank(row: tuple[int, ...]) -> tuple[int, int]:
    """Best first: the larger total, then the lower customer id."""
    return -row[2], row[0]


def _monthly_sums() -> tuple:
    cm = CustomerMonthly
    return func.sum(cm.paid_count), func.sum(cm.total_cents), func.sum(cm.amount_cents)


def _lifetimes_reaching(session: Session, floor: int) -> int:
    """How many customers have a lifetime total of at least ``floor`` (counted up to the cap, plus one)."""
    reaching = select(CustomerTotal.customer_id).where(CustomerTotal.total_cents >= floor)
    return session.scalar(select(func.count()).select_from(reaching.limit(TOP_LIFETIME_CANDIDATES + 1).subquery()))


def _top_reaching(session: Session, tenth: int, first_month: date, last_month: date) -> list[tuple[int, ...]]:
    """The ten best over the months among customers whose lifetime total is at least ``tenth``."""
    cm, ct = CustomerMonthly, CustomerTotal
    # IN (subquery), not a join: SQLite then walks the lifetime index and looks each customer's months
    # up by primary key, instead of reading every row of the months.
    reaching = select(ct.customer_id).where(ct.total_cents >= tenth)
    rows = session.execute(
        select(cm.customer_id, *_monthly_sums())
        .where(cm.customer_id.in_(reaching), cm.month >= first_month, cm.month <= last_month)
        .group_by(cm.customer_id)
        .order_by(func.sum(cm.total_cents).desc(), cm.customer_id)
        .limit(TOP_CUSTOMERS)
    ).all()
    return [tuple(int(v) for v in r) for r in rows]


def _top_of(session: Session, customers: set[int], first_month: date, last_month: date) -> list[tuple[int, ...]]:
    """The ten best of ``customers`` over the months: (customer_id, top-ups, total, amount), best first."""
    if not customers:
        return []
    cm = CustomerMonthly
    which = one_of(cm.customer_id, customers, session.get_bind().dialect.name)  # one parameter, not thousands
    rows = session.execute(
        select(cm.customer_id, *_monthly_sums())
        .where(which, cm.month >= first_month, cm.month <= last_month)
        .group_by(cm.customer_id)
    ).all()
    # Integers, not the Decimals PostgreSQL's sum() gives: a Decimal bound against a bigint column
    # compares as numeric, which no index serves.
    return sorted((tuple(int(v) for v in r) for r in rows), key=_rank)[:TOP_CUSTOMERS]


# --- pricing what-if over history ----------------------------------------------------------------


def utc_bounds(filters: Filters) -> tuple[datetime, datetime]:
    zone = rollup._zone(filters.tz)
    start, end = (datetime.combine(d, clock_time(), zone).astimezone(UTC) for d in (filters.start, filters.end))
    return start, end


def pricing_whatif(session: Session, actor: Actor, filters: Filters, pricing: Pricing) -> pd.DataFrame:
    """Fees, credits and charges of the range's paid orders under ``pricing``, beside what they were, by plan.

    The database groups the paid orders by (amount, method, plan); each distinct pair is quoted once
    and weighted by its count. Orders the proposal would refuse (an amount or method it does not
    accept) count as lost: nothing charged, no credits. The new/returning filter does not apply.
    """
    require(actor, Action.READ_REVENUE)
    start, end = utc_bounds(filters)
    o = Order
    stmt = select(
        o.amount_cents,
        o.method,
        o.plan,
        func.count(),
        func.sum(o.fee_cents),
        func.sum(o.credits),
        func.sum(o.total_cents),
    ).where(o.sandbox.is_(False), o.paid_at.is_not(None), o.paid_at >= start, o.paid_at < end)
    if filters.plans:
        stmt = stmt.where(o.plan.in_(filters.plans))
    if filters.methods:
        stmt = stmt.where(o.method.in_(filters.methods))
    if filters.countries:
        stmt = stmt.join(Customer, Customer.id == o.customer_id).where(Customer.country.in_(filters.countries))
    stmt = stmt.group_by(o.amount_cents, o.method, o.plan)
    totals: dict[str, dict[str, int]] = {}
    for amount, method, plan, count, fees, credits, charged in session.execute(stmt):
        row = totals.setdefault(plan.value, dict.fromkeys(_WHATIF_FIELDS, 0))
        row["orders"] += count
        row["fee_now"] += int(fees)
        row["credits_now"] += int(credits)
        row["charged_now"] += int(charged)
        try:
            q = quote(int(amount), method, pricing)
        except BillingError:
            row["refused"] += count
            continue
        row["fee_then"] += q.fee_cents * count
        row["credits_then"] += q.credits * count
        row["charged_then"] += q.total_cents * count
    frame = pd.DataFrame(
        [{"plan": plan, **totals.get(plan, dict.fromkeys(_WHATIF_FIELDS, 0))} for plan in PLANS if plan in totals],
        columns=["plan", *_WHATIF_FIELDS],
    )
    for name in ("fee", "credits", "charged"):
        frame[f"{name}_diff"] = frame[f"{name}_then"] - frame[f"{name}_now"]
    return frame


_WHATIF_FIELDS = (
    "orders",
    "refused",
    "fee_now",
    "fee_then",
    "credits_now",
    "credits_then",
    "charged_now",
    "charged_then",
)


# --- what the page shows, as rows ----------------------------------------------------------------


def revenue_table(series: pd.DataFrame) -> pd.DataFrame:
    """The chart's figures as a table: one row per period (its first and last day in the range and
    whether the range cuts it), revenue (cents) per plan, total and top-ups."""
    columns = ["period", "period_end", "partial", *PLANS, "total_cents", "topups"]
    if series.empty:
        return pd.DataFrame(columns=columns)
    index = ["period", "period_end", "partial"]
    table = series.pivot_table(index=index, columns="plan", values="revenue_cents", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=list(PLANS), fill_value=0).astype("int64")
    table["total_cents"] = table.sum(axis=1)
    table["topups"] = series.groupby(index)["topups"].sum()
    return table.reset_index()[columns]


def _filter_values(filters: Filters) -> dict[str, str]:
    """What made the figures, in words a CSV reader keeps beside them: every value, or 'all'."""
    return {
        "time zone": filters.tz,
        "plans": " ".join(filters.plans) or "all",
        "methods": " ".join(filters.methods) or "all",
        "countries": " ".join(filters.countries) or "all",
        "customers": filters.kind,
    }


def revenue_csv_rows(report: RevenueReport) -> list[dict[str, object]]:
    """The table beneath the chart as CSV rows: plain dollar amounts exact to the cent, each period's
    first and last day and whether the range cuts it, and the filters that made it in every row."""
    rows = []
    for record in revenue_table(report.series).to_dict("records"):
        row: dict[str, object] = {
            "period start": str(record["period"]),
            "period end": str(record["period_end"]),
            "partial period": "yes" if record["partial"] else "no",
        }
        row |= {f"{plan} (USD)": money.format_plain(int(record[plan])) for plan in PLANS}
        row |= {"total (USD)": money.format_plain(int(record["total_cents"])), "top-ups": int(record["topups"])}
        rows.append(row | _filter_values(report.filters))
    return rows


def csv_file_name(report: RevenueReport) -> str:
    """revenue_2026-09-03_2026-09-30_week_UTC_plan-pro-max_method-stripe_country-DE_new.csv: the
    range shown, the bucket and every filter that is set, in characters any file system keeps."""
    f = report.filters
    last = f.end - timedelta(days=1)
    parts = ["revenue", report.start.isoformat(), last.isoformat(), f.bucket, f.tz.replace("/", "-")]
    for name, values in (("plan", f.plans), ("method", f.methods), ("country", f.countries)):
        if values:
            parts.append("-".join((name, *values)))
    if f.kind != "all":
        parts.append(f.kind)
    return "_".join(parts) + ".csv"
