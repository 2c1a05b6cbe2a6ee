"""Benchmark of billing_core.orders.search: p50 and p95 latency of each kind of search on seeded demo data.

Each kind runs about 200 varied queries built from values sampled out of the data. Its baseline is
the very same search with indexes out of the planner's reach (SQLite: ``NOT INDEXED`` on every
table read; PostgreSQL: index and bitmap scans disabled), timed on a few of the same queries.
"""

from __future__ import annotations

import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from billing_core.access.roles import Actor, Role
from billing_core.bench.run import DATA_END, LARGE_ORDERS, Options, Row, reused_large
from billing_core.core.db import Database
from billing_core.core.models import Customer, Order, OrderStatus
from billing_core.demo import seeding as demo
from billing_core.orders import customer_index
from billing_core.orders.customers import find_customers
from billing_core.orders.search import OrderQuery, search_orders

SAMPLES = 200
COUNT_LIMIT = 10_000  # what the pages count to (a text search stops at search.TEXT_COUNT_CAP)
BASELINE_SAMPLES = 5
BASELINE_TIMEOUT_S = 20
_ACTOR = Actor("bench@billing-ops.local", Role.ADMIN, "search benchmark")
_TABLE_READ = re.compile(r"\bFROM (orders|customers|invoices)\b")


def search_rows(options: Options) -> Iterable[Row]:
    size = _size_label(options.seed_orders)
    with tempfile.TemporaryDirectory(prefix="search-bench-") as folder:
        database = Database(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            _prepare(database, options.seed_orders)
            yield from _suite(database, f"SQLite, {size}")
        finally:
            database.dispose()
    if options.postgres_url:
        database = Database(options.postgres_url)
        try:
            _prepare(database, options.seed_orders)
            yield from _suite(database, f"PostgreSQL, {size}")
        finally:
            database.dispose()
    if options.large_url:  # 10,000,000 orders seeded once (run.reused_large), measured as they are
        database = reused_large(options.large_url)
        try:
            yield from _suite(database, f"PostgreSQL, {_size_label(LARGE_ORDERS)}")
        finally:
            database.dispose()


def _size_label(orders: int) -> str:
    return f"{orders / 1_000_000:g}M" if orders >= 1_000_000 else f"{orders / 1000:g}k"


def _prepare(database: Database, orders: int) -> None:
    database.migrate()
    demo.seed(database, orders=orders, seed=42, actor=_ACTOR, replace=True, end=DATA_END)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def _queries(session: Session, rng: random.Random) -> dict[str, list[OrderQuery]]:
    """About SAMPLES queries of each kind, built from orders picked at random."""
    top = session.scalar(select(Order.id).order_by(Order.id.desc()).limit(1)) or 0
    picks = rng.sample(range(1, top + 1), min(top, SAMPLES * 2))
    found = session.execute(
        select(
            Order.public_id,
            Order.provider_ref,
            Order.amount_cents,
            Order.total_cents,
            Order.created_at,
            Customer.email,
            Customer.name,
            Customer.company,
        )
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.id.in_(picks))
    ).all()
    rng.shuffle(found)
    sample = found[:SAMPLES]
    first = session.scalar(select(Order.created_at).order_by(Order.created_at).limit(1))
    last = session.scalar(select(Order.created_at).order_by(Order.created_at.desc()).limit(1))
    statuses = list(OrderStatus)

    def email_prefix(email: str) -> str:
        at = email.index("@")
        return email[: rng.randint(at + 1, len(email))] if rng.random() < 0.5 else email[: rng.randint(3, at)]

    def name_prefix(name: str) -> str:
        part = name[: rng.randint(1, len(name))]
        return rng.choice([part, part.lower(), part.upper()])

    def date_and_amount(row) -> OrderQuery:
        days = rng.randint(1, 31)
        start = first + (last - first - timedelta(days=days)) * rng.random()
        return OrderQuery(
            created_from=start,
            created_before=start + timedelta(days=days),
            amount_min_cents=int(row.amount_cents * 0.8),
            amount_max_cents=int(row.amount_cents * 1.2),
        )

    def some_case(text: str) -> str:
        return rng.choice([text, text.lower(), text.upper()])

    def ideographic_part(name: str) -> str:
        run = [ch for ch in name if customer_index.is_ideographic(ch)]
        start = rng.randrange(len(run))
        return "".join(run[start : start + rng.choice([1, 2])])

    spaced = [r for r in sample if " " in r.name]
    accented = [r for r in sample if customer_index.fold(r.name).isascii() and not r.name.isascii()]
    return {
        "order id": [OrderQuery(text=r.public_id) for r in sample],
        "email exact": [OrderQuery(text=r.email.upper() if rng.random() < 0.2 else r.email) for r in sample],
        "email prefix": [OrderQuery(text=email_prefix(r.email)) for r in sample],
        "name prefix": [OrderQuery(text=name_prefix(r.name)) for r in sample],
        "provider ref": [OrderQuery(text=r.provider_ref) for r in sample if r.provider_ref],
        "status newest page": [OrderQuery(statuses=rng.sample(statuses, rng.choice([1, 1, 2]))) for _ in sample],
        "date + amount range": [date_and_amount(r) for r in sample],
        # What support types (issue 12): each timed as the whole box, customers, orders page and count.
        "last name": [OrderQuery(text=some_case(r.name.split()[-1])) for r in spaced],
        "reversed name": [OrderQuery(text=" ".join(reversed(r.name.split()))) for r in spaced],
        "accentless name": [OrderQuery(text=customer_index.fold(r.name)) for r in accented],
        "company": [OrderQuery(text=r.company.split()[0]) for r in sample if r.company],
        "email domain": [OrderQuery(text=("@" if rng.random() < 0.5 else "") + r.email.split("@")[1]) for r in sample],
        "cjk characters": [
            OrderQuery(text=ideographic_part(r.name))
            for r in sample
            if any(customer_index.is_ideographic(ch) for ch in r.name)
        ],
        "amount": [
            OrderQuery(text=rng.choice([f"{c / 100:,.2f}", f"${c / 100:g}", f"{c / 100:.2f}"]))
            for r in sample
            for c in [rng.choice([r.amount_cents, r.total_cents])]
        ],
    }


WHOLE_BOX = frozenset(
    {"last name", "reversed name", "accentless name", "company", "email domain", "cjk characters", "amount"}
)


def _suite(database: Database, where: str) -> Iterator[Row]:
    rng = random.Random(7)
    # Searched as the pages search (Database.reading); the full scans in a transaction, which holds the
    # planner settings that keep PostgreSQL off the indexes.
    with database.reading() as session, database.session() as scanning:
        kinds = _queries(session, rng)
        for kind, queries in kinds.items():
            if not queries:  # a small sample may hold no accented or ideographic name
                continue
            whole = kind in WHOLE_BOX
            indexed = [_timed(session, q, whole=whole) for q in queries]
            with _without_indexes(database, scanning):
                full = [_timed(scanning, q, BASELINE_TIMEOUT_S, whole=whole) for q in queries[:BASELINE_SAMPLES]]
            baseline = "full scan"
            if max(full) >= BASELINE_TIMEOUT_S * 1000:
                baseline += f" (some cut off at {BASELINE_TIMEOUT_S} s)"
            yield Row(f"search {kind} p50 ({where})", _pct(indexed, 50), "ms", _pct(full, 50), baseline)
            yield Row(f"search {kind} p95 ({where})", _pct(indexed, 95), "ms", _pct(full, 95), baseline)


def _timed(session: Session, query: OrderQuery, timeout_s: float | None = None, *, whole: bool = False) -> float:
    """One search's milliseconds; ``whole``: as the box runs it (customers, a page of orders and its count)."""
    started = time.perf_counter()
    try:
        if whole:
            find_customers(session, _ACTOR, query.text)
            search_orders(session, _ACTOR, query, count_limit=COUNT_LIMIT)
        else:
            search_orders(session, _ACTOR, query)
    except OperationalError:
        if timeout_s is None:
            raise
        session.rollback()
        return timeout_s * 1000.0
    elapsed = (time.perf_counter() - started) * 1000.0
    session.rollback()  # end the read transaction, as a page view would
    return elapsed


def _pct(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@contextmanager
def _without_indexes(database: Database, session: Session) -> Iterator[None]:
    """The same statements, but every table read in full (primary-key lookups aside on SQLite)."""
    session.rollback()
    if database.dialect == "sqlite":
        rewrite: Callable = lambda m: f"{m.group(0)} NOT INDEXED"  # noqa: E731

        def not_indexed(conn, cursor, statement, parameters, context, executemany):
            return _TABLE_READ.sub(rewrite, statement), parameters

        event.listen(database.engine, "before_cursor_execute", not_indexed, retval=True)
        try:
            yield
        finally:
            session.rollback()
            event.remove(database.engine, "before_cursor_execute", not_indexed)
        return
    settings = ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan")

    def forbid(conn, cursor, statement, parameters, context, executemany):
        cursor.execute(
            "; ".join(f"SET LOCAL {s} = off" for s in settings)
            + f"; SET LOCAL statement_timeout = '{BASELINE_TIMEOUT_S}s'"
        )

    event.listen(database.engine, "before_cursor_execute", forbid)
    try:
        yield
    finally:
        event.remove(database.engine, "before_cursor_execute", forbid)
        session.rollback()
