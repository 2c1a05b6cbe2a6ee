"""Writing generated tables fast: executemany on SQLite, COPY on PostgreSQL, secondary indexes dropped
while loading and rebuilt after, wiping every table for ``replace``."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from sqlalchemy import Connection

from billing_core.core.db import SQLITE_CACHE_KIB
from billing_core.core.models import (
    InvoiceSeries,
    RevenueState,
)
from billing_core.credits import demo as credits_demo
from billing_core.demo.generation import DemoData, Derived, Same, Table, _timestamps
from billing_core.invoices import totals as bills_totals
from billing_core.orders import customer_index
from billing_core.revenue import rollup

_CHUNK = 50_000
Progress = Callable[[int, int], None]


_TABLES = (
    "customers",
    "customer_grams",
    "orders",
    "gateway_checks",
    "simulated_payments",
    "ledger_entries",
    "invoices",
    "refunds",
    "customer_monthly",
    "customer_totals",
)
# The revenue rollup (billing_core.revenue.rollup) and the bills totals (billing_core.invoices.totals): the
# seed writes them with the orders, so they are never stale.
_ROLLUP_TABLES = (*rollup.TABLES, bills_totals.TABLE)
_ID_TABLES = ("customers", "orders", "gateway_checks", "ledger_entries", "invoices", "refunds")
# Children before parents; on SQLite, tables a migration has not made yet are skipped.
_WIPE_ORDER = (
    *_ROLLUP_TABLES,
    *credits_demo.TABLES,
    "audit_events",
    "invoice_files",
    "ledger_entries",
    "refunds",
    "gateway_checks",
    "invoices",
    "simulated_requests",
    "simulated_refunds",
    "simulated_payments",
    "customer_orders",
    "orders",
    "customer_grams",
    "customers",
    "invoice_series",
)


def _secondary_indexes(conn: Connection, tables: tuple[str, ...]) -> dict[str, list[tuple[str, str]]]:
    """Per table, (name, CREATE statement) of the non-constraint indexes exactly as the migration made them."""
    names = ", ".join(f"'{t}'" for t in tables)
    if conn.dialect.name == "sqlite":
        sql = (
            "SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "  # noqa: S608
            f"AND tbl_name IN ({names})"
        )
    else:
        sql = (
            "SELECT tablename, indexname, indexdef FROM pg_indexes "  # noqa: S608
            f"WHERE schemaname = current_schema() AND tablename IN ({names}) "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for table, name, create in conn.exec_driver_sql(sql).all():
        out[table].append((name, create))
    return out


def _column_values(table: Table, name: str, dialect: str, start: int, stop: int) -> list:
    values = table.columns[name]
    if isinstance(values, Derived):
        values = values.values
    if isinstance(values, Same):
        value = bool(values.value) if name in table.booleans else values.value
        return [value] * (stop - start)
    if isinstance(values, np.ndarray):
        part = values[start:stop]
        if name in table.timestamps:
            text = _timestamps(part)
            if dialect == "postgresql":
                text = np.char.add(text, "+00")
            out = text.astype(object)
            out[part < 0] = None
            return out.tolist()
        if name in table.booleans and dialect == "postgresql":
            return (part != 0).tolist()
        if name in table.nullable:
            out = part.astype(object)
            out[part < 0] = None
            return out.tolist()
        return part.tolist()
    return values[start:stop]  # type: ignore[index]


def _bound_columns(table: Table, dialect: str) -> list[str]:
    """Columns sent per row: on SQLite constant and derived ones are written into the statement instead."""
    return [c for c, v in table.columns.items() if dialect != "sqlite" or not isinstance(v, Same | Derived)]


def _rows(table: Table, dialect: str, start: int, stop: int) -> Iterator[tuple]:
    columns = [_column_values(table, name, dialect, start, stop) for name in _bound_columns(table, dialect)]
    return zip(*columns, strict=True)


def _sqlite_insert(table: Table) -> str:
    bound = {name: f"?{i}" for i, name in enumerate(_bound_columns(table, "sqlite"), start=1)}
    values = []
    for name, value in table.columns.items():
        if isinstance(value, Derived):
            values.append(value.sql.format(**bound))
        elif not isinstance(value, Same):
            values.append(bound[name])
        elif value.value is None:
            values.append("NULL")
        elif isinstance(value.value, bool | int):
            values.append(str(int(value.value)))
        else:
            values.append("'" + str(value.value).replace("'", "''") + "'")
    return f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({', '.join(values)})"  # noqa: S608


class _Profile:
    """Wall-clock seconds per section, printed to stderr when BILLING_SEED_PROFILE is set."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("BILLING_SEED_PROFILE"))
        self.seconds: dict[str, float] = defaultdict(float)
        self.started = time.perf_counter()

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def report(self) -> None:
        if not self.enabled:
            return
        total = time.perf_counter() - self.started
        lines = [f"  {name:<36} {seconds:7.2f} s" for name, seconds in self.seconds.items()]
        print("seed profile (writer sections run beside the main thread's):", *lines, file=sys.stderr, sep="\n")
        print(f"  {'total':<36} {total:7.2f} s", file=sys.stderr)


# Chunks the writer may fall behind by: enough for the main thread to keep building rows while
# the writer builds a table's indexes, few enough to bound memory (~20 MB a chunk).
_AHEAD = 8


class _Loader:
    """Bulk writes on the raw DBAPI connection inside the caller's transaction.

    On SQLite one writer thread runs every statement in order: each chunk's executemany and, right
    after a table's last chunk, that table's secondary indexes (sqlite3_step and CREATE INDEX run
    without the GIL), while this thread builds the next chunks' rows. The pool's exit waits for the
    writer, so an error rolls back only after the last write has stopped.
    """

    def __init__(self, conn: Connection, profile: _Profile, progress: Progress | None):
        self.conn = conn
        self.raw = conn.connection.driver_connection
        self.dialect = conn.dialect.name
        self.total, self.done, self.progress = 0, 0, progress
        self.profile = profile
        self.pending: deque[tuple[Future, int]] = deque()
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="demo-seed-writer") if self.dialect == "sqlite" else None

    def __enter__(self) -> _Loader:
        return self

    def __exit__(self, *exc) -> None:
        if self.writer:
            self.writer.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def execute(self, sql: str) -> None:
        self.conn.exec_driver_sql(sql)

    def secondary_indexes(self) -> dict[str, list[tuple[str, str]]]:
        return _secondary_indexes(self.conn, _TABLES)

    def load(self, table: Table, indexes: list[tuple[str, str]]) -> None:
        """Write ``table`` and then create its ``indexes`` (dropped beforehand by the caller)."""
        if self.writer is None:
            if table.portable_select:
                with self.profile.section(f"write {table.name}"):
                    self.execute(table.sqlite_select)
                self._advance(len(table))
            else:
                for start in range(0, len(table), _CHUNK):
                    stop = min(start + _CHUNK, len(table))
                    with self.profile.section(f"write {table.name}"):
                        self._write(table, _rows(table, self.dialect, start, stop))
                    self._advance(stop - start)
            for _, create in indexes:
                with self.profile.section(f"index {table.name}"):
                    self.execute(create)
            return
        if table.sqlite_select:
            self._submit(f"write {table.name}", self.raw.execute, len(table), table.sqlite_select, table.sqlite_params)
            for _, create in indexes:
                self._submit(f"index {table.name}", self.raw.execute, 0, create)
            return
        sql = _sqlite_insert(table)
        for start in range(0, len(table), _CHUNK):
            stop = min(start + _CHUNK, len(table))
            with self.profile.section(f"rows {table.name}"):
                rows = list(_rows(table, self.dialect, start, stop))
            self._submit(f"write {table.name}", self._executemany, stop - start, sql, rows)
        for _, create in indexes:
            self._submit(f"index {table.name}", self.raw.execute, 0, create)

    def _submit(self, label: str, fn: Callable, rows: int, *args) -> None:
        while len(self.pending) >= _AHEAD:
            self._settle()
        assert self.writer is not None

        def timed() -> None:
            with self.profile.section(label):
                fn(*args)

        self.pending.append((self.writer.submit(timed), rows))

    def _settle(self) -> None:
        future, rows = self.pending.popleft()
        future.result()
        self._advance(rows)

    def finish(self) -> None:
        """Wait for every write; raises the first error."""
        with self.profile.section("wait for the writer"):
            while self.pending:
                self._settle()

    def _advance(self, rows: int) -> None:
        if rows:
            self.done += rows
            if self.progress:
                self.progress(self.done, self.total)

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        cursor = self.raw.cursor()
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()

    def _write(self, table: Table, rows: Iterator[tuple]) -> None:
        """PostgreSQL: COPY, which checks foreign keys as it goes."""
        columns = ", ".join(table.columns)
        with self.raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _drop_foreign_keys(conn: Connection, tables: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """PostgreSQL: drop the foreign keys of ``tables``, returning (table, name, definition) to restore them.

    Checked row by row (a trigger's lookup for every reference of every row), they were a quarter of the
    load at 1,000,000 orders: 171 s with them, 129 s without, their checks after included.
    ``_restore_foreign_keys`` checks every row in one pass per key before the commit (5 s), so nothing that
    breaks one is ever committed. The seed's DROP INDEX already holds these tables exclusively until then,
    and every one of them is in the wipe's list, so TRUNCATE empties them without the keys' CASCADE."""
    names = ", ".join(f"'{t}'" for t in tables)
    found = conn.exec_driver_sql(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "  # noqa: S608
        "WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace "
        f"AND c.conrelid::regclass::text IN ({names}) ORDER BY 1, 2"
    ).all()
    for table, name, _ in found:
        conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    return [(table, name, definition) for table, name, definition in found]


def _restore_foreign_keys(conn: Connection, keys: list[tuple[str, str, str]]) -> None:
    """Add back what ``_drop_foreign_keys`` dropped, exactly as it was; each is checked on every row."""
    for table, name, definition in keys:
        conn.exec_driver_sql(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def _drop_triggers(conn: Connection) -> list[tuple[str, str]]:
    """Drop the customers' text-index triggers (SQLite), returning (name, CREATE statement) to restore them."""
    found = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'customers'"
    ).all()
    for name, _ in found:
        conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    return [(name, sql) for name, sql in found]


def _finish(conn: Connection, dialect: str, data: DemoData, zones: tuple[str, ...]) -> None:
    """Invoice series (each seeded one runs 1 .. next - 1, so its health is that), sequences and the
    rollup's state, after the rows."""
    for series, next_number in data.series.items():
        last = next_number - 1
        conn.execute(
            rollup._insert(dialect, InvoiceSeries.__table__)
            .values(series=series, next_number=next_number, issued=last, first_number=1, last_number=last)
            .on_conflict_do_update(
                index_elements=["series"],
                set_={"next_number": next_number, "issued": last, "first_number": 1, "last_number": last},
            )
        )
    if dialect == "postgresql":
        for t in _ID_TABLES:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "  # noqa: S608
                f"(SELECT coalesce(max(id), 0) + 1 FROM {t}), false)"
            )
    _mark_rollup_built(conn, zones)
    conn.exec_driver_sql(customer_index.ORDER_COUNTS_REBUILD)  # from the orders just written, as migration 0021


def _sqlite_load_mode(raw) -> tuple[str, int]:
    """Tune this connection for one big write; returns the journal mode and foreign_keys to restore.

    Durability is moot while loading: the one transaction commits whole or not at all (the rollback
    journal stays, so a failed load still leaves the database as it was). Leaving WAL for the load
    halves the bytes written (no WAL copy to checkpoint); when another connection holds the database
    open, SQLite refuses the switch and the load simply runs in WAL. Foreign keys are not checked
    row by row during the load (that check was a quarter of the load time): every id is generated
    from the same arrays, and the tests check the seeded database with ``PRAGMA foreign_key_check``.
    The page cache (512 MiB at most) bounds memory; pages beyond it spill to the file before the
    commit, which the rollback journal still undoes on failure.
    """
    foreign_keys = raw.execute("PRAGMA foreign_keys").fetchone()[0]
    raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction, so set before BEGIN
    raw.execute("PRAGMA synchronous=OFF")
    raw.execute("PRAGMA cache_size=-524288")
    raw.execute("PRAGMA temp_store=MEMORY")
    raw.execute("PRAGMA threads=2")  # CREATE INDEX sorts on two cores
    journal = raw.execute("PRAGMA journal_mode").fetchone()[0]
    try:
        raw.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.OperationalError:
        pass
    return journal, foreign_keys


def _sqlite_normal_mode(raw, state: tuple[str, int]) -> None:
    journal, foreign_keys = state
    try:
        raw.execute(f"PRAGMA journal_mode={journal}")
    except sqlite3.OperationalError:
        pass
    raw.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    raw.execute("PRAGMA temp_store=DEFAULT")
    raw.execute("PRAGMA threads=0")


def _wipe(conn: Connection, dialect: str) -> None:
    existing = _existing_tables(conn, dialect)
    tables = [t for t in _WIPE_ORDER if t in existing]
    if dialect == "postgresql":
        conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    else:
        for table in tables:
            conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
    if "revenue_state" in existing:
        # Kept, not deleted: its version keys the page caches, so it only ever goes up.
        conn.exec_driver_sql("UPDATE revenue_state SET version = version + 1")


def _existing_tables(conn: Connection, dialect: str) -> set[str]:
    if dialect == "postgresql":
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return set(conn.exec_driver_sql(sql).scalars())


def _mark_rollup_built(conn: Connection, zones: tuple[str, ...]) -> None:
    """What rollup.rebuild leaves in revenue_state: built for ``zones``, version bumped."""
    table = RevenueState.__table__
    stmt = rollup._insert(conn.dialect.name, table).values(id=1, version=1, timezones=",".join(zones), built=True)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"version": table.c.version + 1, "timezones": stmt.excluded.timezones, "built": True},
        )
    )
