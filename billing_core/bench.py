"""Benchmarks: each row is a figure beside a baseline measured in the same run, and their ratio.

Timings on a shared machine are noisy, so a figure is only meaningful against its baseline.
Each area of the app contributes a function returning rows; ``run`` prints them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from billing_core.pricing import Method, load_pricing, quote


@dataclass(frozen=True)
class Row:
    name: str
    value: float
    unit: str
    baseline: float
    baseline_name: str

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("inf")

    def line(self) -> str:
        return (
            f"{self.name:<44} {self.value:>14,.1f} {self.unit:<10} "
            f"baseline {self.baseline:>14,.1f} ({self.baseline_name})  ratio {self.ratio:,.2f}"
        )


def rate(fn: Callable[[], object], seconds: float = 0.5) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        count += 200
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


@dataclass(frozen=True)
class Options:
    seed_orders: int = 1_000_000
    postgres_url: str | None = None  # adds PostgreSQL rows where a suite has them


def quote_rows(options: Options) -> Iterable[Row]:
    pricing = load_pricing()
    amounts = [2000, 10000, 50000, 150000, 1234]
    i = 0

    def one_quote() -> None:
        nonlocal i
        quote(amounts[i % 5], Method.STRIPE, pricing)
        i += 1

    def bare_decimal_fee() -> None:
        # The arithmetic a quote cannot avoid: one rate times one amount, rounded to the cent.
        (Decimal(amounts[i % 5]) * Decimal("0.055")).quantize(Decimal(1), rounding=ROUND_HALF_UP)

    yield Row("quote() calls", rate(one_quote), "calls/s", rate(bare_decimal_fee), "one Decimal fee")


SUITES: dict[str, Callable[[Options], Iterable[Row]]] = {"quote": quote_rows}


def run(options: Options, only: list[str] | None = None, out: Callable[[str], None] = print) -> list[Row]:
    rows: list[Row] = []
    out(f"{'figure':<44} {'value':>14} {'unit':<10} baseline (what it is)  ratio = value / baseline")
    for name, suite in SUITES.items():
        if only and name not in only:
            continue
        for row in suite(options):
            out(row.line())
            rows.append(row)
    return rows
