"""Bench suite ``pages``: the server time of every page's script runs and its main interactions
(Streamlit's AppTest), at ``--orders`` orders beside the same run at 100,000 (growth), on SQLite and, with
a PostgreSQL URL, on PostgreSQL (and at 10,000,000 orders there with ``--large``); the Invoices page's
opening also beside the scans it replaced.

Lives beside the pages, not in billing_core (which imports no Streamlit); ``billing_core.bench.run`` loads it
only when the suite runs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from billing_core.access.roles import PAGES as REGISTRY
from billing_core.bench import page_data
from billing_core.bench.page_data import Picks
from billing_core.bench.run import LARGE_ORDERS, Options, Row
from billing_core.core.db import Database

APP = Path(__file__).resolve().parent.parent / "app.py"
SMALL = 100_000
LARGE = LARGE_ORDERS  # PostgreSQL only, with --large
RUNS = 3  # each interaction's median of this many runs


def _set_query_param(name: str, value: str) -> Callable:
    def act(at, picks: Picks) -> None:
        at.query_params[name] = getattr(picks, value)

    return act


# Every page and its main interactions, each a step of one session of that page, in this order.
PAGES: dict[str, list[tuple[str, Callable]]] = {
    "orders": [
        ("open", lambda at, p: None),
        ("next page", lambda at, p: at.button(key="next_page").click()),
        ("status filter", lambda at, p: at.multiselect(key="f_status").set_value(["paid"])),
        ("search last name", lambda at, p: at.text_input(key="q").input(p.last_name)),
        ("order detail", _set_query_param("order", "order")),
    ],
    "customers": [
        ("open", lambda at, p: None),
        ("search last name", lambda at, p: at.text_input(key="customer_q").input(p.last_name)),
        ("busiest customer", _set_query_param("customer", "busiest")),
    ],
    "invoices": [
        ("open", lambda at, p: None),
        ("plan filter", lambda at, p: at.multiselect(key="bills_plans").set_value(["max"])),
        ("next page", lambda at, p: at.button(key="bills_next").click()),
        ("customer filter", lambda at, p: at.text_input(key="bills_customer").input(p.email)),
        ("batch tab customer", lambda at, p: at.text_input(key="regen_customer").input(p.email)),
    ],
    "revenue": [
        ("open", lambda at, p: None),
        ("range change", lambda at, p: at.selectbox(key="rev_range").set_value("last_12_months")),
    ],
    "audit": [
        ("open", lambda at, p: None),
        ("next page", lambda at, p: at.button(key="audit_next").click()),
    ],
    "simulator": [("open", lambda at, p: None)],
    "credits": [
        ("open", lambda at, p: None),
        ("next page of a month's customers", lambda at, p: at.button(key="liab_next").click()),
    ],
    "approvals": [
        ("open", lambda at, p: None),
        ("status filter", lambda at, p: at.selectbox(key="appr_status").set_value("approved")),
    ],
}


def page_times(database: Database, files: Path, runs: int = RUNS) -> dict[tuple[str, str], float]:
    """Milliseconds of each (page, interaction)'s script run: the median of ``runs`` fresh sessions."""
    from streamlit.testing.v1 import AppTest

    picks = page_data.picks(database)
    saved = dict(os.environ)
    os.environ.update(
        DATABASE_URL=database.url,
        BILLING_LOCAL_MODE="1",
        BILLING_LOCAL_ROLE="admin",
        BILLING_SECRETS_FILE=str(files / "no-secrets.toml"),
        BILLING_INVOICE_DIR=str(files),
    )
    times: dict[tuple[str, str], list[float]] = {(p, n): [] for p, steps in PAGES.items() for n, _ in steps}
    try:
        for _ in range(runs):
            for page, steps in PAGES.items():
                at = AppTest.from_file(str(APP), default_timeout=600).run()
                # By title: the first page's url_pathname is "" (it is the default page).
                title = REGISTRY[page].title
                [at._page_hash] = [h for h, i in at._registered_pages.items() if i.get("page_name") == title]
                for name, act in steps:
                    act(at, picks)
                    start = time.perf_counter()
                    at.run()
                    times[page, name].append((time.perf_counter() - start) * 1000)
                    if at.exception:
                        raise RuntimeError(f"the {page} page failed on {name}: {at.exception}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {key: statistics.median(values) for key, values in times.items()}


def page_rows(options: Options) -> Iterable[Row]:
    orders = max(options.seed_orders, SMALL)
    with tempfile.TemporaryDirectory(prefix="billing-pages-") as tmp:
        files = Path(tmp) / "files"
        files.mkdir()
        targets = [("SQLite", lambda name: f"sqlite:///{Path(tmp) / name}")]
        if options.postgres_url:
            targets.append(("PostgreSQL", lambda name: options.postgres_url))
        for label, url in targets:
            postgres = label == "PostgreSQL"
            large_url = options.large_url if postgres else None
            yield from _database_rows(label, url, orders, options.large and postgres, files, large_url)


def _database_rows(
    label: str, url: Callable[[str], str], orders: int, large: bool, files: Path, large_url: str | None = None
) -> Iterator[Row]:
    """Each page's figures at ``orders`` (and 10,000,000 with ``large``, on the already seeded ``large_url``
    if given) beside the same at 100,000; ``--orders 100000`` measures 100,000 once."""
    small = page_data.seeded(url("small.db"), SMALL)
    try:
        at_small = page_times(small, files)
        before_small = page_data.scans_replaced(small, files) if orders == SMALL else None
    finally:
        small.dispose()
    sizes = [orders] + ([LARGE] if large and orders < LARGE else [])
    for size in sizes:
        if size == SMALL:
            at_size, before = at_small, before_small
        else:
            reuse = size == LARGE and large_url is not None
            database = page_data.reused(large_url, size) if reuse else page_data.seeded(url(f"{size}.db"), size)
            try:
                at_size = page_times(database, files)
                before = page_data.scans_replaced(database, files) if size == orders else None
            finally:
                database.dispose()
        where = f"{label}, {size:,}"
        if before is not None:
            yield Row(f"invoices page open ({where})", at_size["invoices", "open"], "ms", before, "its scans before")
        if size == SMALL:
            continue  # beside itself
        for (page, name), value in at_size.items():
            yield Row(f"{page} {name} ({where})", value, "ms", at_small[page, name], f"at {SMALL:,}")
