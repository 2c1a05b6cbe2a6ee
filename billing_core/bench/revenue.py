"""The revenue suite: server time for the Revenue page's data at growing order counts, beside orders-into-pandas."""

from __future__ import annotations

import time
from datetime import timedelta

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing_core.access.roles import Actor
from billing_core.bench.run import DATA_END, LARGE_ORDERS, Row, reused_large
from billing_core.core.models import Order
from billing_core.revenue.report import (
    TOP_CUSTOMERS,
    Filters,
    revenue_report,
    top_customers,
    utc_bounds,
)

BENCH_SQLITE_SIZES = (100_000, 1_000_000)
BENCH_POSTGRES_SIZES = (100_000, 1_000_000, 3_000_000)
BENCH_POSTGRES_LARGE = LARGE_ORDERS  # with ``bench --large``: seeding it takes about a quarter of an hour here
BENCH_NAIVE_REPEAT_MAX = 1_000_000


def bench_filters() -> Filters:
    """Three years up to the end of the demo data, default filters, UTC."""
    end = DATA_END
    return Filters(end.replace(year=end.year - 3), end)


def _best_ms(fn, runs: int = 7) -> float:
    fn()  # warm the page cache and the connection pool
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)[len(timings) // 2]


def _naive_frames(session: Session, filters: Filters) -> pd.DataFrame:
    """The baseline: the range's paid orders into pandas, grouped there (what the rollup avoids)."""
    start, end = utc_bounds(filters)
    o = Order
    stmt = select(o.customer_id, o.plan, o.method, o.paid_at, o.amount_cents, o.fee_cents, o.total_cents).where(
        o.sandbox.is_(False), o.paid_at.is_not(None), o.paid_at >= start, o.paid_at < end
    )
    frame = pd.read_sql(stmt, session.connection())
    frame["day"] = pd.to_datetime(frame["paid_at"], utc=True).dt.date
    frame.groupby(["day", "plan"])["amount_cents"].agg(["sum", "count"])
    frame.groupby("method")[["amount_cents", "fee_cents"]].sum()
    return frame.groupby("customer_id")["total_cents"].sum().nlargest(TOP_CUSTOMERS)


def revenue_rows(options):
    """Server time for the Revenue page's data at growing order counts, beside orders-into-pandas."""
    import tempfile
    from pathlib import Path

    from billing_core.access.roles import Role
    from billing_core.core.db import Database
    from billing_core.demo.seeding import seed

    actor = Actor("bench@localhost", Role.ADMIN, "benchmark")
    filters = bench_filters()
    first, last = filters.start.replace(day=1), (filters.end - timedelta(days=1)).replace(day=1)
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        targets = [("SQLite", f"sqlite:///{Path(tmp) / 'revenue.db'}", BENCH_SQLITE_SIZES)]
        if options.postgres_url:
            sizes = BENCH_POSTGRES_SIZES + ((BENCH_POSTGRES_LARGE,) if options.large else ())
            targets.append(("PostgreSQL", options.postgres_url, sizes))
        for label, url, sizes in targets:
            database = Database(url)
            try:
                database.migrate()
                for size in sizes:
                    reuse = size == BENCH_POSTGRES_LARGE and options.large_url and label == "PostgreSQL"
                    if reuse:  # already seeded (run.reused_large): measured as it is
                        database.dispose()
                        database = reused_large(options.large_url, size)
                    else:
                        seed(database, orders=size, actor=actor, replace=True, end=DATA_END)  # writes the rollup too
                    with database.session() as session:
                        ms = _best_ms(lambda s=session: revenue_report(s, actor, filters, with_top_customers=False))
                        top_ms = _best_ms(lambda s=session: top_customers(s, actor, first, last))
                        naive_runs = 3 if size <= BENCH_NAIVE_REPEAT_MAX else 1  # a minute a run at 10M
                        naive = _best_ms(lambda s=session: _naive_frames(s, filters), naive_runs)
                    yield Row(f"revenue page data ({label}, {size:,})", ms, "ms", naive, "orders into pandas")
                    yield Row(f"revenue top customers ({label}, {size:,})", top_ms, "ms", naive, "orders into pandas")
            finally:
                database.dispose()
