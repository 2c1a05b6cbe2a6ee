"""Revenue rollups: small tables of top-ups per local day, plan, method and new/returning customer.

Every order creation, payment and refund updates them in its own transaction (``record_*``, one
upsert row per reporting time zone), so the Revenue page reads a few thousand rows whatever the
number of orders. ``rebuild`` recomputes them from the orders in SQL; the two agree exactly.
Sandbox orders never count.

Definitions (the same in both paths):
- created measures fall on the order's creation day; the kind is 'returning' when the customer had
  a paid order before the order was created, else 'new';
- paid measures fall on the payment day; the kind is 'new' for the customer's first paid order
  (earliest ``paid_at``, then lowest id), else 'returning';
- refund measures fall on the day a refund succeeded (pending and failed ones never count), with the
  refunded order's plan, method and kind.

Days are exact local days in each time zone the rollup is kept for (``revenue_state.timezones``).
Two payments of one customer completed at the same moment in concurrent transactions may both
count as 'new' until the next rebuild; every sum stays exact.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, and_, exists, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core.config import DEFAULT_REPORT_TIMEZONES
from billing_core.core.db import Database
from billing_core.core.errors import BillingError
from billing_core.core.models import (
    Customer,
    CustomerKind,
    CustomerMonthly,
    CustomerTotal,
    Order,
    Refund,
    RevenueDaily,
    RevenueDailyCountry,
    RevenueState,
)
from billing_core.invoices import totals as bills_totals

MEASURES = (
    "created_count",
    "paid_count",
    "amount_cents",
    "fee_cents",
    "total_cents",
    "credits",
    "refund_count",
    "refunded_cents",
)
MONTHLY_MEASURES = ("paid_count", "total_cents", "amount_cents")
TABLES = ("revenue_daily", "revenue_daily_country", "customer_monthly", "customer_totals")
_STATE_ID = 1


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(moment: datetime, tz: str) -> date:
    """The calendar day ``moment`` falls on in time zone ``tz``."""
    return moment.astimezone(_zone(tz)).date()


def month_of(moment: datetime) -> date:
    """The first day of the UTC month of ``moment``."""
    return moment.astimezone(UTC).date().replace(day=1)


# --- kept current in the caller's transaction ----------------------------------------------------


def _record_created(session: Session, order: Order, customer: Customer) -> None:
    """Count a new order on its creation day."""
    if order.sandbox:
        return
    paid_before = session.scalar(
        select(
            exists().where(
                Order.customer_id == order.customer_id,
                Order.sandbox.is_(False),
                Order.paid_at.is_not(None),
                Order.paid_at < order.created_at,
            )
        )
    )
    kind = CustomerKind.RETURNING if paid_before else CustomerKind.NEW
    _add(session, order.created_at, order, customer.country, kind, {"created_count": 1})
    _bump(session)


def _record_paid(session: Session, order: Order, customer: Customer) -> None:
    """Count a payment on its day, in the customer's month and in the customer's total."""
    if order.sandbox or order.paid_at is None:
        return
    measures = {
        "paid_count": 1,
        "amount_cents": order.amount_cents,
        "fee_cents": order.fee_cents,
        "total_cents": order.total_cents,
        "credits": order.credits,
    }
    _add(session, order.paid_at, order, customer.country, _paid_kind(session, order), measures)
    row = {"customer_id": order.customer_id, "paid_count": 1}
    row |= {"total_cents": order.total_cents, "amount_cents": order.amount_cents}
    _upsert(session, CustomerMonthly, [row | {"month": month_of(order.paid_at)}], MONTHLY_MEASURES)
    _upsert(session, CustomerTotal, [row], MONTHLY_MEASURES)
    _bump(session)


def _record_refund(session: Session, order: Order, refund: Refund) -> None:
    """Count a succeeded refund on the day it succeeded, with the refunded order's plan, method and kind."""
    if order.sandbox or refund.refunded_at is None:
        return
    country = session.scalar(select(Customer.country).where(Customer.id == order.customer_id))
    measures = {"refund_count": 1, "refunded_cents": refund.amount_cents}
    _add(session, refund.refunded_at, order, country, _paid_kind(session, order), measures)
    _bump(session)


def _paid_kind(session: Session, order: Order) -> CustomerKind:
    earlier = session.scalar(
        select(
            exists().where(
                Order.customer_id == order.customer_id,
                Order.sandbox.is_(False),
                Order.paid_at.is_not(None),
                Order.id != order.id,
                or_(Order.paid_at < order.paid_at, and_(Order.paid_at == order.paid_at, Order.id < order.id)),
            )
        )
    )
    return CustomerKind.RETURNING if earlier else CustomerKind.NEW


def _add(session: Session, moment: datetime, order: Order, country: str, kind: CustomerKind, measures: dict) -> None:
    zones = kept_timezones(session)
    values = {m: measures.get(m, 0) for m in MEASURES}
    dims = {"plan": order.plan, "method": order.method, "kind": kind}
    days = [(tz, local_day(moment, tz)) for tz in zones]
    # Rows are always written in the same order (table, then zone), so concurrent writers never deadlock.
    _upsert(session, RevenueDaily, [{"tz": tz, "day": d, **dims, **values} for tz, d in days], MEASURES)
    rows = [{"tz": tz, "country": country, "day": d, **dims, **values} for tz, d in days]
    _upsert(session, RevenueDailyCountry, rows, MEASURES)


def _insert(dialect: str, table):
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _upsert(session: Session, model, rows: list[dict], measures: Sequence[str]) -> None:
    table = model.__table__
    stmt = _insert(session.get_bind().dialect.name, table).values(rows)
    keys = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={m: table.c[m] + stmt.excluded[m] for m in measures})
    session.execute(stmt)


def _bump(session: Session) -> None:
    """Bump the version every cache of revenue figures is keyed on (the last row each write touches)."""
    table = RevenueState.__table__
    stmt = _insert(session.get_bind().dialect.name, table).values(
        id=_STATE_ID, version=1, timezones=",".join(DEFAULT_REPORT_TIMEZONES), built=False
    )
    session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"version": table.c.version + 1}))


def kept_timezones(session: Session) -> tuple[str, ...]:
    zones = session.scalar(select(RevenueState.timezones).where(RevenueState.id == _STATE_ID))
    return tuple(zones.split(",")) if zones else DEFAULT_REPORT_TIMEZONES


def version(session: Session) -> int:
    """Changes whenever any revenue figure may have changed."""
    return session.scalar(select(RevenueState.version).where(RevenueState.id == _STATE_ID)) or 0


# --- rebuilt from the orders ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rebuilt:
    timezones: tuple[str, ...]
    daily_rows: int
    seconds: float
    bills_rows: int = 0  # the bills totals (billing_core.invoices.totals), rebuilt in the same transaction
    credit_rows: int = 0  # the credit balances and roll-forward (billing_core.credits.ledger), likewise


def ensure_built(
    database: Database, actor: Actor, timezones: Sequence[str] = DEFAULT_REPORT_TIMEZONES
) -> Rebuilt | None:
    """Rebuild when the rollup was never built or is kept for other time zones; None when it is current."""
    require(actor, Action.REBUILD_REVENUE)
    with database.session() as session:
        state = session.get(RevenueState, _STATE_ID)
        if state is not None and state.built and state.timezones == ",".join(timezones):
            return None
    return rebuild(database, actor, timezones, reason="first view, or the reporting time zones changed")


def rebuild(
    database: Database, actor: Actor, timezones: Sequence[str] | None = None, *, reason: str = "asked for"
) -> Rebuilt:
    """Recompute every rollup from the orders in one transaction (INSERT ... SELECT ... GROUP BY),
    the bills totals from the documents with them, audited. ``timezones`` default to the ones the rollup
    is kept for now."""
    require(actor, Action.REBUILD_REVENUE)
    started = time.perf_counter()
    with database.engine.connect() as conn:
        conn = conn.execution_options(write=True)
        with conn.begin():
            stored = conn.execute(select(RevenueState.timezones).where(RevenueState.id == _STATE_ID)).scalar()
            zones = tuple(timezones or (stored.split(",") if stored else DEFAULT_REPORT_TIMEZONES))
            for zone in zones:
                try:
                    _zone(zone)  # an unknown zone fails here, before anything is deleted
                except (ZoneInfoNotFoundError, ValueError):
                    raise BillingError(
                        f"{zone!r} is not an IANA time zone (like Europe/Berlin); nothing changed."
                    ) from None
            rows = _rebuild(conn, zones)
            bills_rows = bills_totals.rebuild(conn)
            from billing_core.credits import ledger  # credits post through the rollup helpers above

            credit_rows = ledger._rebuild(conn)
            with Session(bind=conn) as session:
                audit.record(
                    session,
                    actor,
                    Action.REBUILD_REVENUE.value,
                    "revenue_rollup",
                    1,
                    reason=reason,
                    before={"timezones": stored},
                    after={
                        "timezones": ",".join(zones),
                        "daily_rows": rows,
                        "bills_rows": bills_rows,
                        "credit_rows": credit_rows,
                    },
                )
                session.flush()
    return Rebuilt(zones, rows, time.perf_counter() - started, bills_rows, credit_rows)


def _rebuild(conn: Connection, zones: tuple[str, ...]) -> int:
    dialect = conn.dialect.name
    for table in TABLES:
        conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    if dialect == "sqlite":
        raw = conn.connection.driver_connection
        raw.create_function("local_day", 2, _SqliteLocalDay(), deterministic=True)

        def day(column: str) -> str:
            return f"local_day({column}, z.tz)"

        month = "substr(paid_at, 1, 7) || '-01'"
    else:

        def day(column: str) -> str:
            return f"CAST(({column} AT TIME ZONE z.tz) AS date)"

        month = "CAST(date_trunc('month', paid_at AT TIME ZONE 'UTC') AS date)"
    params = {f"tz{i}": zone for i, zone in enumerate(zones)}
    zone_rows = " UNION ALL ".join(f"SELECT CAST(:tz{i} AS VARCHAR(40)) AS tz" for i in range(len(zones)))
    measures = ", ".join(MEASURES)
    sums = ", ".join(f"sum({m})" for m in MEASURES)
    conn.execute(
        text(
            f"""
            WITH zones AS ({zone_rows}),
            firsts AS (
                SELECT customer_id, min(paid_at) AS first_paid FROM orders
                WHERE sandbox = false AND paid_at IS NOT NULL GROUP BY customer_id
            ),
            paid AS (
                SELECT o.id, c.country, o.plan, o.method, o.paid_at, o.amount_cents, o.fee_cents, o.total_cents,
                       o.credits,
                       CASE WHEN row_number() OVER (PARTITION BY o.customer_id ORDER BY o.paid_at, o.id) = 1
                            THEN 'new' ELSE 'returning' END AS kind
                FROM orders o JOIN customers c ON c.id = o.customer_id
                WHERE o.sandbox = false AND o.paid_at IS NOT NULL
            )
            INSERT INTO revenue_daily_country (tz, country, day, plan, method, kind, {measures})
            SELECT tz, country, day, plan, method, kind, {sums} FROM (
                SELECT z.tz, c.country, {day("o.created_at")} AS day, o.plan, o.method,
                       CASE WHEN f.first_paid < o.created_at THEN 'returning' ELSE 'new' END AS kind,
                       1 AS created_count, 0 AS paid_count, 0 AS amount_cents, 0 AS fee_cents, 0 AS total_cents,
                       0 AS credits, 0 AS refund_count, 0 AS refunded_cents
                FROM orders o JOIN customers c ON c.id = o.customer_id
                LEFT JOIN firsts f ON f.customer_id = o.customer_id
                CROSS JOIN zones z
                WHERE o.sandbox = false
                UNION ALL
                SELECT z.tz, p.country, {day("p.paid_at")}, p.plan, p.method, p.kind,
                       0, 1, p.amount_cents, p.fee_cents, p.total_cents, p.credits, 0, 0
                FROM paid p CROSS JOIN zones z
                UNION ALL
                SELECT z.tz, p.country, {day("r.refunded_at")}, p.plan, p.method, p.kind,
                       0, 0, 0, 0, 0, 0, 1, r.amount_cents
                FROM refunds r JOIN paid p ON p.id = r.order_id CROSS JOIN zones z
                WHERE r.status = 'succeeded'
            ) facts
            GROUP BY tz, country, day, plan, method, kind
            """  # noqa: S608 - only fixed fragments are formatted in; values are bound
        ),
        params,
    )
    rows = conn.exec_driver_sql(
        f"INSERT INTO revenue_daily (tz, day, plan, method, kind, {measures}) "  # noqa: S608
        f"SELECT tz, day, plan, method, kind, {sums} FROM revenue_daily_country GROUP BY tz, day, plan, method, kind"
    ).rowcount
    conn.exec_driver_sql(
        "INSERT INTO customer_monthly (customer_id, month, paid_count, total_cents, amount_cents) "  # noqa: S608
        f"SELECT customer_id, {month}, count(*), sum(total_cents), sum(amount_cents) FROM orders "
        f"WHERE sandbox = false AND paid_at IS NOT NULL GROUP BY customer_id, {month}"
    )
    conn.exec_driver_sql(
        "INSERT INTO customer_totals (customer_id, paid_count, total_cents, amount_cents) "
        "SELECT customer_id, sum(paid_count), sum(total_cents), sum(amount_cents) FROM customer_monthly "
        "GROUP BY customer_id"
    )
    if dialect == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {', '.join(TABLES)}")  # the planner's estimates of the new rows
    table = RevenueState.__table__
    stmt = _insert(dialect, table).values(id=_STATE_ID, version=1, timezones=",".join(zones), built=True)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"version": table.c.version + 1, "timezones": stmt.excluded.timezones, "built": True},
        )
    )
    return rows


class _SqliteLocalDay:
    """``local_day(ts, tz)`` for SQLite, which has no time-zone database: exact, memoised per UTC hour.

    ``ts`` is the UTC text SQLAlchemy stores ('YYYY-MM-DD HH:MM:SS.ffffff'). An hour that falls
    on one local day is answered from the memo; one that a local midnight cuts (zones with
    half-hour offsets) is converted row by row.
    """

    def __init__(self) -> None:
        self.hours: dict[tuple[str, str], str | None] = {}

    def __call__(self, ts: str | None, tz: str) -> str | None:
        if ts is None:
            return None
        key = (ts[:13], tz)
        if key not in self.hours:
            start = datetime.fromisoformat(ts[:13] + ":00:00").replace(tzinfo=UTC)
            first = local_day(start, tz)
            last = local_day(start + timedelta(hours=1, microseconds=-1), tz)
            self.hours[key] = first.isoformat() if first == last else None
        day = self.hours[key]
        if day is None:
            return local_day(datetime.fromisoformat(ts[:19]).replace(tzinfo=UTC), tz).isoformat()
        return day
