"""Engines, sessions, transactions and migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Engine,
    Executable,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def make_engine(url: str, **kwargs) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _tune_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 30)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


# A pooled connection unused this long is pinged before it is handed out; one used more recently is not.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling for connections that sat in the pool, without a round trip on each
    checkout: ``pool_pre_ping`` pinged every one, a page's search paid for it with a fifth of its time
    (PostgreSQL, 1,000,000 orders: 10.2 -> 8.0 ms a search). A connection found dead is replaced (the pool
    retries on ``DisconnectionError``, SQLAlchemy's documented checkout recipe); one the server dropped
    within the last seconds fails its statement once, and the pool is renewed after it (optimistic
    handling, which SQLAlchemy does by itself)."""

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_connection, record):
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record):
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        if time.monotonic() - record.info.get("returned_at", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError(f"a pooled connection was dead: {error}") from error
        if not alive:
            raise DisconnectionError("a pooled connection was dead")


# Each connection's page cache. SQLite's default (2 MiB) holds a few hundred of the customers' 16 KiB pages,
# so the search box's 201 customers were read from the file again on every search: "green noah" at 1,000,000
# orders, 5.1 -> 3.7 ms for its customers and 1.8 -> 0.9 ms for their page of orders (best of 7, same hour).
# A pool of five connections holds 320 MiB at most, beside the 1.5 GB such a file takes.
SQLITE_CACHE_KIB = 65_536


def _tune_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, and transactions we begin ourselves.

    pysqlite's own transaction handling begins lazily and only before writes; we take it over so a
    write transaction can start with BEGIN IMMEDIATE and wait for the write lock instead of failing
    when it upgrades from a read (SQLAlchemy's documented pysqlite recipe).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Takes effect only while the file is still empty: 16 KiB pages make bulk loads and index
        # builds faster (fewer, fuller pages) without slowing point lookups.
        cursor.execute("PRAGMA page_size=16384")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One engine and its session factory; pass it to whatever needs storage."""

    def __init__(self, url: str, engine: Engine | None = None):
        self.url = url
        self.engine = engine or make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL: a connection that runs each statement on its own, for ``reading``.
        self._statements = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT") if self.dialect == "postgresql" else None
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessions()

    def reading(self) -> Session:
        """A session for reads that need not share one snapshot: the search box's customers, its page of
        orders and their count. On PostgreSQL each statement runs on its own (autocommit), with no BEGIN
        before them and no ROLLBACK after, two of a search's four round trips to the server; SQLite's
        BEGIN costs no round trip and stays. Nothing written through it is rolled back: keep changes to
        ``session``, whose statements commit or fail together."""
        if self._statements is None:
            return self.sessions()
        return self.sessions(bind=self._statements)

    def migrate(self) -> None:
        migrate(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    def describe(self) -> str:
        """Where the data lives, for people: see ``describe_url``."""
        return describe_url(self.url)


def one_of(column, ids: Iterable[int], dialect: str, *, name: str | None = None) -> ColumnElement[bool]:
    """``column`` is one of the integer ``ids``, bound as one parameter whatever their number.

    ``column.in_(ids)`` renders a placeholder per id: a statement text per list length, each parsed
    again by the driver (200 ids cost psycopg more than the query). PostgreSQL takes one array
    (``= ANY(:ids)``, an index condition), SQLite one JSON array read by ``json_each``. With ``name``
    the parameter is called that, for a statement built once and given ``ids_value(ids)`` (see ``read``).
    """
    value, unique = ids_value(ids, dialect), name is None
    if dialect == "postgresql":
        return column == any_(bindparam(name or "ids", value, type_=ARRAY(BigInteger), unique=unique))
    listed = func.json_each(bindparam(name or "ids", value, unique=unique)).table_valued("value")
    return column.in_(select(listed.c.value))


def ids_value(ids: Iterable[int], dialect: str) -> list[int] | str:
    """The value of ``one_of``'s parameter for ``ids``: an array on PostgreSQL, a JSON array on SQLite."""
    values = [int(i) for i in ids]
    return values if dialect == "postgresql" else json.dumps(values)


def read(session: Session, statement: Executable, params: dict | None = None) -> CursorResult:
    """``statement`` run on the session's connection as a Core statement: plain rows, without the ORM's
    result machinery (about half a millisecond a statement), after a flush of anything pending, as the
    session's own ``execute`` would. Take its rows with ``.all()``: iterating the result fetches them one
    call at a time (200 rows: a fifth of a millisecond).

    For the statements of every search: built once per shape (``functools.lru_cache`` on the function
    that builds them) with its values as named parameters, given here. Building a select costs about a
    millisecond of Python and its cache key half of that again; the same statement object run again
    costs neither (SQLAlchemy keeps its cache key on it, and its compiled form by that key).
    """
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()
    return session.connection().execute(statement, params or {})


_REMEMBERED = "billing_core.remembered"


def remembered(session: Session, name: str) -> dict:
    """A dict kept on ``session`` for what ``name`` has read in this transaction, for reads that several
    callers make of the same text in one page run (the search box's customers, then their orders).
    Emptied when the session writes (after a flush) and when the transaction ends, so nothing kept is
    older than what the transaction sees."""
    return session.info.setdefault(_REMEMBERED, {}).setdefault(name, {})


@event.listens_for(Session, "after_flush")
@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, *_) -> None:
    session.info.pop(_REMEMBERED, None)


def describe_url(url: str) -> str:
    """Where the data lives, for people: the kind of database, host, port and database name, and
    nothing else. Not the user, and not the query string, where drivers take a password too
    (``...?password=...``)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return f"sqlite {parsed.database or ':memory:'}"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{backend} {parsed.host or 'localhost'}{port}/{parsed.database or ''}"


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """One write transaction: commit at the end, roll back on any error.

    On SQLite it begins IMMEDIATE so concurrent writers queue for the lock. A read transaction
    left open by the caller is closed first; unflushed changes left by the caller are a bug.
    """
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("transaction() called with unsaved changes already in the session")
        session.rollback()
    with session.begin():
        session.connection(execution_options={"write": True})
        yield session


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent; run at every start-up)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def is_empty(engine: Engine) -> bool:
    inspector = inspect(engine)
    if not inspector.has_table("orders"):
        return True
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT 1 FROM orders LIMIT 1").first() is None
