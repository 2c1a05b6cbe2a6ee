"""The liability roll-forward's benchmark rows (``bench --only credits``): the page's reads beside the
ledger scan they replace. Imports the domain; the domain never imports it."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from billing_core.access.roles import Actor, Role
from billing_core.credits import liability

SQLITE_SIZES = (100_000, 1_000_000)
POSTGRES_SIZES = (100_000, 1_000_000)
POSTGRES_LARGE = 10_000_000  # run.LARGE_ORDERS


def _best_ms(fn, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def credit_rows(options) -> Iterable:
    from billing_core.bench.run import Row, reused_large
    from billing_core.core.db import Database
    from billing_core.demo.seeding import seed

    actor = Actor("bench@localhost", Role.ADMIN, "benchmark")
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        targets = [("SQLite", f"sqlite:///{Path(tmp) / 'credits.db'}", SQLITE_SIZES)]
        if options.postgres_url:
            targets.append(
                ("PostgreSQL", options.postgres_url, POSTGRES_SIZES + ((POSTGRES_LARGE,) if options.large else ()))
            )
        for label, url, sizes in targets:
            database = Database(url)
            try:
                database.migrate()
                for size in sizes:
                    if size == POSTGRES_LARGE and options.large_url and label == "PostgreSQL":
                        database.dispose()  # already seeded (run.reused_large): measured as it is
                        database = reused_large(options.large_url, size)
                    else:
                        seed(database, orders=size, actor=actor, replace=True)  # writes the credit rollups as well
                    with database.session() as session:
                        lines = liability.roll_forward(session, actor)
                        last = lines[-1].month
                        page = _best_ms(lambda s=session: liability.roll_forward(s, actor))
                        drill = _best_ms(lambda s=session, m=last: liability.customers_in_month(s, actor, m))
                        scan = _best_ms(lambda s=session, m=last: liability.ledger_closing(s, actor, m), 1)
                    yield Row(f"liability roll-forward ({label}, {size:,})", page, "ms", scan, "ledger sum, one month")
                    yield Row(f"liability drill-down ({label}, {size:,})", drill, "ms", scan, "ledger sum, one month")
            finally:
                database.dispose()
