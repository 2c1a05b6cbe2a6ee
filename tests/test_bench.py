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
