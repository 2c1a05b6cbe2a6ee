"""The benchmark's own machinery, at sizes that run in seconds: every suite's rows must come out."""

from __future__ import annotations

import pytest

from billing_core.bench import run as bench


def test_rows_print_value_baseline_and_ratio():
    row = bench.Row("thing", 50.0, "ms", 200.0, "the slow way")
    assert row.ratio == 0.25
    assert "thing" in row.line() and "the slow way" in row.line() and "ratio 0.25" in row.line()


def test_quote_rows():
    (row,) = bench.quote_rows(bench.Options())
    assert row.value > 0 and row.baseline > 0


@pytest.mark.slow
def test_seed_rows_measure_the_bulk_load_beside_the_orm(pg_database, monkeypatch):
    monkeypatch.setattr(bench, "BASELINE_ORDERS", 40)
    rows = list(bench.seed_rows(bench.Options(seed_orders=3_000, postgres_url=pg_database.url)))
    assert [r.name for r in rows] == ["seed orders (SQLite, 3,000)", "seed orders (PostgreSQL, 3,000)"]
    assert all(r.unit == "orders/s" and r.value > 0 and r.baseline > 0 for r in rows)


@pytest.mark.slow
def test_search_rows_give_p50_and_p95_per_kind_beside_a_full_scan(monkeypatch):
    from billing_core.bench import search as search_bench

    monkeypatch.setattr(search_bench, "SAMPLES", 12)
    monkeypatch.setattr(search_bench, "BASELINE_SAMPLES", 2)
    rows = list(search_bench.search_rows(bench.Options(seed_orders=2_000)))
    assert rows and all(r.name.endswith("(SQLite, 2k)") and r.unit == "ms" for r in rows)
    assert {r.name.rsplit(" p", 1)[0] for r in rows} >= {"search email prefix", "search order id"}
    assert all(r.value > 0 and r.baseline > 0 for r in rows)


@pytest.mark.slow
def test_invoice_rows_regenerate_a_batch_beside_the_naive_renderer():
    from billing_core.bench.invoices import invoice_rows

    rate, memory, facturx = invoice_rows(bench.Options(seed_orders=120))
    assert rate.unit == "invoices/s" and rate.value > 0 and rate.baseline > 0
    assert memory.unit == "MiB" and 0 < memory.value < memory.baseline  # within the 1 GiB budget
    # Factur-X beside plain PDF/A over the same invoices, in the same run (make bench prints the ratio).
    assert facturx.name.startswith("Factur-X regeneration") and facturx.unit == "invoices/s"
    assert facturx.value > 0 and facturx.baseline > 0


def test_refund_rows_give_refunds_per_second_and_the_reconcile_time(tmp_path):
    rows = list(bench._refund_rows("SQLite", f"sqlite:///{tmp_path / 'refunds.db'}", live=4, pending=6))
    assert [r.name for r in rows] == ["refunds end to end (SQLite, simulated)", "refunds reconcile, 6 pending (SQLite)"]
    assert [r.unit for r in rows] == ["refunds/s", "s"]
    assert all(r.value > 0 and r.baseline > 0 for r in rows)


@pytest.mark.slow
def test_page_times_cover_every_page_and_interaction(tmp_path):
    from billing_core.access.roles import PAGES as REGISTRY
    from billing_core.bench import page_data
    from pages import _bench

    database = page_data.seeded(f"sqlite:///{tmp_path / 'pages.db'}", 2_000)
    try:
        times = _bench.page_times(database, tmp_path, runs=1)
    finally:
        database.dispose()
    assert set(times) == {(page, name) for page, steps in _bench.PAGES.items() for name, _ in steps}
    assert {page for page, _ in times} == set(REGISTRY)
    assert all(value > 0 for value in times.values())


def test_credit_rows_time_the_roll_forward_beside_the_ledger_sum(monkeypatch):
    from billing_core.bench import credits as credits_bench

    monkeypatch.setattr(credits_bench, "SQLITE_SIZES", (2_000,))
    rows = list(credits_bench.credit_rows(bench.Options()))
    assert [r.name for r in rows] == ["liability roll-forward (SQLite, 2,000)", "liability drill-down (SQLite, 2,000)"]
    assert all(r.unit == "ms" and r.value > 0 and r.baseline > 0 for r in rows)


def _seeded_at_data_end(url: str, orders: int, end=bench.DATA_END) -> None:
    from billing_core.access.roles import Actor, Role
    from billing_core.core.db import Database
    from billing_core.demo import seeding as demo

    database = Database(url)
    try:
        database.migrate()
        demo.seed(database, orders=orders, actor=Actor("b@localhost", Role.ADMIN), replace=True, end=end)
    finally:
        database.dispose()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_a_reused_large_database_must_hold_its_size_up_to_the_data_end(db):
    from datetime import timedelta

    from billing_core.core.errors import BillingError

    _seeded_at_data_end(db.url, 1_500)
    bench.reused_large(db.url, 1_500).dispose()
    with pytest.raises(BillingError, match="holds 1,500 orders ending 2026-11-26; the large rows need 1,501"):
        bench.reused_large(db.url, 1_501)
    _seeded_at_data_end(db.url, 1_500, end=bench.DATA_END - timedelta(days=1))
    with pytest.raises(BillingError, match="ending 2026-11-25"):
        bench.reused_large(db.url, 1_500)


@pytest.mark.slow
def test_page_rows_measure_a_reused_large_database_without_reseeding_it(tmp_path, monkeypatch):
    from sqlalchemy import text

    from billing_core.bench import page_data
    from billing_core.core.db import Database
    from pages import _bench

    monkeypatch.setattr(_bench, "SMALL", 2_000)
    monkeypatch.setattr(_bench, "LARGE", 3_000)
    timed = _bench.page_times
    monkeypatch.setattr(_bench, "page_times", lambda database, files: timed(database, files, runs=1))
    large_url = f"sqlite:///{tmp_path / 'large.db'}"
    _seeded_at_data_end(large_url, 3_000)
    large = Database(large_url)
    with large.engine.begin() as conn:  # a seed (replace) would delete it
        conn.execute(text("UPDATE customers SET name = 'Kept Here' WHERE id = 1"))

    def history() -> int:
        with large.engine.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM audit_events WHERE reason = :r"), {"r": page_data.HISTORY}
            ).scalar()

    try:
        files = tmp_path / "files"
        files.mkdir()
        rows = list(
            _bench._database_rows("SQLite", lambda name: f"sqlite:///{tmp_path / name}", 2_000, True, files, large_url)
        )
        assert history() == 3_000 // page_data.AUDIT_EVENTS_PER_ORDER
        page_data.reused(large_url, 3_000).dispose()  # the history goes in once
        assert history() == 3_000 // page_data.AUDIT_EVENTS_PER_ORDER
        with large.engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM customers WHERE id = 1")).scalar() == "Kept Here"
    finally:
        large.dispose()
    names = [r.name for r in rows]
    assert names[0] == "invoices page open (SQLite, 2,000)"  # at 100,000 (here 2,000) once, beside its scans
    large_rows = [r for r in rows if r.name.endswith("(SQLite, 3,000)")]
    assert len(large_rows) == sum(len(steps) for steps in _bench.PAGES.values()) == len(rows) - 1
    assert all(r.baseline_name == "at 2,000" and r.value > 0 and r.baseline > 0 for r in large_rows)
