"""PostgreSQL connections from the pool: pinged only after sitting idle, replaced when found dead, read from
without a transaction for the search box (Database.reading)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from billing_core.core import db as core_db
from billing_core.core.db import Database
from tests.conftest import PG_URL, _ensure_pg_database, unavailable


@pytest.fixture
def database():
    problem = _ensure_pg_database(PG_URL)
    if problem:
        unavailable(problem)
    database = Database(PG_URL)
    yield database
    database.dispose()


@pytest.fixture
def pings(database, monkeypatch) -> list[object]:
    seen: list[object] = []
    real = database.engine.dialect.do_ping

    def counted(dbapi_connection):
        seen.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(database.engine.dialect, "do_ping", counted)
    return seen


def backend_pid(database: Database) -> int:
    with database.engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_used_moments_ago_is_handed_out_without_a_ping(database, pings):
    first = backend_pid(database)
    assert [backend_pid(database) for _ in range(5)] == [first] * 5  # the same pooled connection each time
    assert pings == []


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(database, pings, monkeypatch):
    dropped = backend_pid(database)
    with Database(PG_URL).engine.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped}).scalar_one()
    monkeypatch.setattr(core_db, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if it had sat in the pool a while
    replaced = backend_pid(database)  # no error: the ping found it dead and the pool connected anew
    assert replaced != dropped and len(pings) >= 1


def test_a_reading_session_runs_each_statement_on_its_own_then_gives_the_connection_back_transactional(database):
    when = text("SELECT transaction_timestamp(), pg_backend_pid()")
    with database.reading() as session:
        (first, pid), (second, again) = (session.execute(when).one() for _ in range(2))
    assert pid == again and first < second  # no BEGIN before them: each statement was its own transaction
    with database.session() as session:
        (first, reused), (second, _) = (session.execute(when).one() for _ in range(2))
    assert reused == pid and first == second  # the same pooled connection, one transaction again


def test_every_sqlite_connection_keeps_a_page_cache_of_the_configured_size(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'cache.db'}")
    try:
        with database.engine.connect() as first, database.engine.connect() as second:
            for conn in (first, second):  # two connections of the pool: each is tuned when it connects
                assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -core_db.SQLITE_CACHE_KIB
    finally:
        database.dispose()
