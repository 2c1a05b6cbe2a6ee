"""Bench suite ``pages``: the server time of the Invoices page's script runs (Streamlit's AppTest), at
``--orders`` orders beside the same run at 100,000 (growth), and opening it beside the scans it replaced.

Lives beside the pages, not in billing_core (which imports no Streamlit); ``billing_core.bench.run`` loads it
only when the suite runs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from billing_core.access.roles import Actor, Role
from billing_core.bench.run import Options, Row
from billing_core.core.db import Database

APP = Path(__file__).resolve().parent.parent / "app.py"
SMALL = 100_000
RUNS = 3  # each interaction's median of this many runs
_FINANCE = Actor("bench@localhost", Role.FINANCE, "benchmark")


def _interactions() -> list[tuple[str, Callable]]:
    return [
        ("open", lambda at: None),
        ("plan filter", lambda at: at.multiselect(key="bills_plans").set_value(["max"])),
        ("next page", lambda at: at.button(key="bills_next").click()),
        ("customer filter", lambda at: at.text_input(key="bills_customer").input(at.bench_customer)),
        ("batch tab customer", lambda at: at.text_input(key="regen_customer").input(at.bench_customer)),
    ]


def _page_times(database: Database, files: Path) -> dict[str, float]:
    """Milliseconds of each interaction's script run (median of RUNS fresh sessions)."""
    from sqlalchemy import select
    from streamlit.testing.v1 import AppTest

    from billing_core.core.models import Customer

    with database.session() as session:
        customer = session.scalar(select(Customer.email).order_by(Customer.id).offset(777).limit(1))
    saved = dict(os.environ)
    os.environ.update(
        DATABASE_URL=database.url,
        BILLING_LOCAL_MODE="1",
        BILLING_LOCAL_ROLE="finance",
        BILLING_SECRETS_FILE=str(files / "no-secrets.toml"),
        BILLING_INVOICE_DIR=str(files),
    )
    times: dict[str, list[float]] = {name: [] for name, _ in _interactions()}
    try:
        for _ in range(RUNS):
            at = AppTest.from_file(str(APP), default_timeout=600).run()
            [page] = [h for h, info in at._registered_pages.items() if info.get("url_pathname") == "invoices"]
            at._page_hash = page
            at.bench_customer = customer
            for name, act in _interactions():
                act(at)
                start = time.perf_counter()
                at.run()
                times[name].append((time.perf_counter() - start) * 1000)
                if at.exception:
                    raise RuntimeError(f"the Invoices page failed on {name}: {at.exception}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {name: statistics.median(values) for name, values in times.items()}


def _scans_replaced(database: Database, files: Path) -> float:
    """Milliseconds of what the page ran on opening before the bills totals and the stored deep check."""
    from billing_core.invoices import review as bills

    with database.session() as session:
        start = time.perf_counter()
        bills.checks(session, _FINANCE, root=files)
        everything = bills.DocumentFilters()
        bills.count_documents(session, _FINANCE, everything)
        bills._scanned_totals(session, everything)
        return (time.perf_counter() - start) * 1000


def _seeded(url: str, orders: int) -> Database:
    from billing_core.demo import seeding as demo

    database = Database(url)
    database.migrate()
    demo.seed(database, orders=orders, actor=Actor("bench@localhost", Role.ADMIN, "benchmark"), replace=True)
    return database


def page_rows(options: Options) -> Iterable[Row]:
    orders = max(options.seed_orders, SMALL)
    with tempfile.TemporaryDirectory(prefix="billing-pages-") as tmp:
        files = Path(tmp) / "files"
        files.mkdir()
        small = _seeded(f"sqlite:///{Path(tmp) / 'small.db'}", SMALL)
        try:
            at_small = _page_times(small, files)
        finally:
            small.dispose()
        (Path(tmp) / "small.db").unlink()
        large = _seeded(f"sqlite:///{Path(tmp) / 'large.db'}", orders)
        try:
            at_large = _page_times(large, files)
            before = _scans_replaced(large, files)
        finally:
            large.dispose()
    yield Row(f"invoices page open (SQLite, {orders:,})", at_large["open"], "ms", before, "its scans before")
    for name in at_large:
        yield Row(f"invoices page {name} (SQLite, {orders:,})", at_large[name], "ms", at_small[name], f"at {SMALL:,}")
