"""Demo data: about two years of believable top-ups, generated from a seed and bulk-loaded.

The data ends on its end date (23:59:59 UTC that day): by default the day before it is seeded
(``default_end``), so a first run's "last 30 days" is full and no order is dated later than the clock
(ending today, support saw tonight's orders at the top of every list in the morning). Nothing else reads
the clock: every row derives from the seed, the size and the end date, so the same three give identical
rows, public ids and timestamps included. Prices come from ``quote()``: each distinct (amount, method) pair
is quoted once and mapped onto its orders.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.core.errors import BillingError, StateConflict
from billing_core.credits import demo as credits_demo
from billing_core.demo.bulk_load import (
    _ID_TABLES,
    _ROLLUP_TABLES,
    _TABLES,
    Progress,
    _drop_foreign_keys,
    _drop_triggers,
    _finish,
    _Loader,
    _Profile,
    _restore_foreign_keys,
    _secondary_indexes,
    _sqlite_load_mode,
    _sqlite_normal_mode,
    _wipe,
)
from billing_core.demo.generation import DemoData, end_bound, generate_stream
from billing_core.demo.rollup_arrays import bills_table, rollup_tables
from billing_core.orders import customer_index

FIRST_RUN_ORDERS = 20_000


@dataclass(frozen=True)
class SeedReport:
    customers: int
    orders: int
    paid: int
    invoices: int
    ledger_entries: int
    seconds: float
    refunds: int = 0
    credit_notes: int = 0
    end: date | None = None  # the last day of the data


# Every table the seed writes rows into.
_FOREIGN_KEY_TABLES = (*_TABLES, *_ROLLUP_TABLES, *credits_demo.TABLES, "customer_orders")


def default_end() -> date:
    """The day demo data ends on unless told otherwise: yesterday, in UTC, the last day already over."""
    return datetime.now(UTC).date() - timedelta(days=1)


def seed(
    database: Database,
    *,
    orders: int,
    seed: int = 7,
    actor: Actor,
    replace: bool = False,
    settings: Settings | None = None,
    progress: Progress | None = None,
    end: date | None = None,
) -> SeedReport:
    """Fill an order-less database with ``orders`` demo orders, ending on ``end`` (default: ``default_end()``),
    and everything that follows from them.

    One transaction: on any error nothing is written. Refuses a database that has orders unless
    ``replace``, which deletes all existing data first (in the same transaction). The revenue
    rollup is written in the same transaction, equal to what ``rollup.rebuild`` would compute.
    Set BILLING_SEED_PROFILE=1 for a breakdown of where the time went.
    """
    require(actor, Action.SEED_DEMO)
    if orders < 1:
        raise BillingError("Seed at least one order.")
    settings = settings or Settings()
    end = end or default_end()
    pricing = settings.pricing()
    zones = tuple(settings.report_timezones)
    started = time.perf_counter()
    profile = _Profile()
    engine = database.engine
    dialect = engine.dialect.name
    # Millions of tuples and strings are made and kept alive; the cyclic collector would rescan
    # them all again and again for no garbage (none of them form cycles). Reference counting still frees.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with engine.connect() as conn:
            conn.execution_options(write=True)
            raw = conn.connection.driver_connection
            if dialect == "sqlite":
                # Durability is moot while loading: the transaction either commits whole or not at all.
                state = _sqlite_load_mode(raw)
            try:
                with conn.begin():
                    existing = conn.exec_driver_sql("SELECT count(*) FROM orders").scalar()
                    if existing and not replace:
                        raise StateConflict(
                            f"The database already has {existing:,} orders; nothing was changed. "
                            "Seed an empty database, or pass --replace to delete everything first."
                        )
                    # SQLite: the text index is built once after the customers, not row by row by its triggers.
                    triggers = _drop_triggers(conn) if dialect == "sqlite" else []
                    # PostgreSQL: foreign keys checked once, after the rows (as SQLite's are off while loading).
                    keys = _drop_foreign_keys(conn, _FOREIGN_KEY_TABLES) if dialect == "postgresql" else []
                    with profile.section("wipe"):
                        if replace:
                            _wipe(conn, dialect)
                        else:  # no orders, so an exact rollup is empty
                            for table in _ROLLUP_TABLES:
                                conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
                    offsets = {
                        t: conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {t}").scalar()  # noqa: S608
                        for t in _ID_TABLES
                    }
                    with _Loader(conn, profile, progress) as loader:
                        # Rows to write, estimated until every table is generated (about 5.7 per order).
                        loader.total = orders * 6
                        if progress:
                            progress(0, loader.total)
                        indexes = loader.secondary_indexes()
                        for table_indexes in indexes.values():
                            for name, _ in table_indexes:
                                loader.execute(f"DROP INDEX {name}")
                        stream = generate_stream(orders, seed, pricing, settings, offsets, end=end)
                        written = 0
                        while True:
                            with profile.section("generate"):
                                item = next(stream)
                            if isinstance(item, DemoData):
                                data = item
                                break
                            after = indexes.get(item.name, [])
                            if item.name == "customers" and triggers:
                                after = [*after, ("text index", customer_index.FTS_REBUILD), *triggers]
                            loader.load(item, after)
                            written += len(item)
                        # Computed while the writer is still busy with the tables above.
                        with profile.section("rollup: compute"):
                            rollups = [*rollup_tables(data, zones), bills_table(data)]
                        loader.total = written + sum(len(t) for t in rollups)
                        for table in rollups:
                            loader.load(table, indexes.get(table.name, []))
                        loader.finish()
                    with profile.section("credits"):
                        # Their rollups' indexes too are built once, after the rows.
                        credit_indexes = [i for t in _secondary_indexes(conn, credits_demo.TABLES).values() for i in t]
                        for name, _ in credit_indexes:
                            conn.exec_driver_sql(f"DROP INDEX {name}")
                        credits_demo._load(conn, offsets, end_bound(end))
                        for _, create in credit_indexes:
                            conn.exec_driver_sql(create)
                    _finish(conn, dialect, data, zones)
                    with profile.section("foreign keys"):
                        _restore_foreign_keys(conn, keys)
                    seconds = time.perf_counter() - started
                    with Session(bind=conn) as session:
                        audit.record(
                            session,
                            actor,
                            "demo.seed",
                            "database",
                            database.describe()[-64:],
                            reason="demo data" + (f", replacing {existing:,} orders" if replace and existing else ""),
                            after=data.summary | {"seconds": round(seconds, 2), "replaced_orders": existing or 0},
                        )
                        session.flush()
                    committing = time.perf_counter()
                profile.seconds["commit"] += time.perf_counter() - committing
                if dialect == "postgresql":
                    # Fresh statistics, or the planner guesses at every table it was just handed (the
                    # credits tables too: unanalysed, the Credits page's month of customers took 0.7 s at
                    # 10,000,000 orders, a parallel scan of customer_credit_monthly beside its index). And
                    # a visibility map: until a VACUUM sets it, an index-only scan reads every row's page
                    # from the table too (the page of 200 customers' orders: 30 ms instead of 4). Outside
                    # the transaction, as VACUUM must be; autovacuum would get there, later.
                    with profile.section("vacuum"):
                        tables = ", ".join(dict.fromkeys((*_TABLES, *_ROLLUP_TABLES, *credits_demo.TABLES)))
                        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                            f"VACUUM (ANALYZE) {tables}"
                        )
            finally:
                if dialect == "sqlite":
                    _sqlite_normal_mode(raw, state)
    finally:
        if collecting:
            gc.enable()
    profile.report()
    return SeedReport(
        customers=len(data.customers),
        orders=len(data.orders),
        paid=data.paid,
        invoices=len(data.invoices) - data.credit_notes,
        ledger_entries=len(data.ledger),
        seconds=time.perf_counter() - started,
        refunds=len(data.refunds),
        credit_notes=data.credit_notes,
        end=end,
    )


def delete_all_data(database: Database, actor: Actor) -> None:
    """Empty every table (for benchmarks and tests; ``seed(replace=True)`` does it in its own transaction)."""
    require(actor, Action.SEED_DEMO)
    with database.engine.connect() as conn, conn.execution_options(write=True).begin():
        _wipe(conn, database.dialect)


def setup(
    database: Database,
    *,
    actor: Actor,
    orders: int = FIRST_RUN_ORDERS,
    settings: Settings | None = None,
    progress: Progress | None = None,
    end: date | None = None,
) -> SeedReport | None:
    """First run: migrate, and seed demo data if there are no orders yet. None when nothing was seeded."""
    from billing_core.core.db import is_empty

    require(actor, Action.SEED_DEMO)
    database.migrate()
    if not is_empty(database.engine):
        return None
    try:
        return seed(database, orders=orders, actor=actor, settings=settings, progress=progress, end=end)
    except StateConflict:
        return None  # another process seeded it first


def describe(report: SeedReport) -> str:
    return (
        f"seeded {report.orders:,} orders ({report.paid:,} paid) for {report.customers:,} customers, "
        f"{report.invoices:,} invoices, {report.refunds:,} refunds with their credit notes and "
        f"{report.ledger_entries:,} ledger entries{f' up to {report.end}' if report.end else ''} "
        f"in {report.seconds:.1f} s"
    )
