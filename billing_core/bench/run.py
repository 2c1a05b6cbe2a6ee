"""Benchmarks: each row is a figure beside a baseline measured in the same run, and their ratio.

Timings on a shared machine are noisy, so a figure is only meaningful against its baseline.
Each area of the app contributes a function returning rows; ``run`` prints them all.
"""

from __future__ import annotations

import importlib
import json
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from billing_core.pricing.catalog import Method, load_pricing, quote

# The day every suite's demo data ends on: fixed, so each run measures the same rows.
DATA_END = date(2026, 11, 26)


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
    large: bool = False  # adds the sizes that take many minutes to seed (revenue at 10,000,000 orders)
    # With ``large``: a PostgreSQL database already seeded with LARGE_ORDERS orders ending on DATA_END, that
    # the large rows measure on instead of seeding their own (see ``reused_large``).
    large_url: str | None = None


LARGE_ORDERS = 10_000_000  # the ``--large`` size, on PostgreSQL


def reused_large(url: str, orders: int = LARGE_ORDERS):
    """The database of ``--large-database-url``, never reseeded: checked to hold ``orders`` orders whose last
    day is DATA_END, as the suites' own seeds have, so its rows sit beside theirs. Seed it once with
    ``python -m billing_core seed --orders 10000000 --end-date 2026-11-26``."""
    from sqlalchemy import func, select

    from billing_core.core.db import Database
    from billing_core.core.errors import BillingError
    from billing_core.core.models import Order

    database = Database(url)
    with database.session() as session:
        count = session.scalar(select(func.count()).select_from(Order))
        last = session.scalar(select(func.max(Order.created_at)))
    last_day = None if last is None else (last.astimezone(UTC) if last.tzinfo else last).date()
    if count != orders or last_day != DATA_END:
        database.dispose()
        raise BillingError(
            f"{database.describe()} holds {count:,} orders ending {last_day or 'nowhere'}; the large rows need "
            f"{orders:,} ending {DATA_END}: seed --orders {orders} --end-date {DATA_END} --replace"
        )
    return database


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


BASELINE_ORDERS = 2_000


def _orm_orders_per_second(database, orders: int) -> float:
    """The naive way: one ORM Order (with its ledger entry and invoice) added and committed at a time."""
    from billing_core.core.config import Settings
    from billing_core.core.models import Customer, Invoice, LedgerEntry, Order
    from billing_core.demo import generation

    settings = Settings()
    data = generation.generate(orders, 11, settings.pricing(), settings, end=DATA_END)

    def when(us: int) -> datetime | None:
        return None if us < 0 else datetime.fromtimestamp(us / 1_000_000, UTC)

    raw = {t.name: t for t in data.tables}
    with database.session() as session:
        for i in range(len(raw["customers"])):
            c = raw["customers"].columns
            session.add(
                Customer(
                    id=int(c["id"][i]),
                    public_id=c["public_id"][i],
                    email=c["email"][i],
                    name=c["name"][i],
                    company=c["company"][i],
                    country=c["country"][i],
                    tax_id=c["tax_id"][i],
                    address=c["address"][i],
                    sandbox=False,
                    created_at=when(int(c["created_at"][i])),
                )
            )
        session.commit()
    o, le, inv = (_per_row(raw[t]) for t in ("orders", "ledger_entries", "invoices"))
    ledger_by_order = {int(v): i for i, v in enumerate(le["order_id"].tolist()) if le["kind"][i] == "topup"}
    invoice_by_order = {int(v): i for i, v in enumerate(inv["order_id"].tolist()) if inv["kind"][i] == "invoice"}
    start = time.perf_counter()
    with database.session() as session:
        for i in range(orders):
            order_id = int(o["id"][i])
            session.add(
                Order(
                    id=order_id,
                    public_id=o["public_id"][i],
                    customer_id=int(o["customer_id"][i]),
                    plan=o["plan"][i],
                    amount_cents=int(o["amount_cents"][i]),
                    credits=int(o["credits"][i]),
                    fee_cents=int(o["fee_cents"][i]),
                    total_cents=int(o["total_cents"][i]),
                    currency="USD",
                    method=o["method"][i],
                    provider_ref=o["provider_ref"][i],
                    pricing_version=o["pricing_version"][i],
                    status=o["status"][i],
                    sandbox=False,
                    created_at=when(int(o["created_at"][i])),
                    expires_at=when(int(o["expires_at"][i])),
                    paid_at=when(int(o["paid_at"][i])),
                    completed_at=when(int(o["completed_at"][i])),
                    completed_by=o["completed_by"][i],
                    completion_reason=o["completion_reason"][i],
                    paid_amount_cents=None if o["paid_amount_cents"][i] < 0 else int(o["paid_amount_cents"][i]),
                    failure_reason=o["failure_reason"][i],
                )
            )
            session.flush()  # no relationships are mapped, so the order goes in before what refers to it
            if order_id in ledger_by_order:
                j = ledger_by_order[order_id]
                session.add(
                    LedgerEntry(
                        customer_id=int(le["customer_id"][j]),
                        order_id=order_id,
                        kind="topup",
                        credits=int(le["credits"][j]),
                        created_at=when(int(le["created_at"][j])),
                        created_by=generation.GATEWAY_ACTOR,
                    )
                )
            if order_id in invoice_by_order:
                k = invoice_by_order[order_id]
                session.add(
                    Invoice(
                        number=inv["number"][k],
                        series=inv["series"][k],
                        sequence=int(inv["sequence"][k]),
                        kind="invoice",
                        order_id=order_id,
                        issued_at=when(int(inv["issued_at"][k])),
                        currency="USD",
                        subtotal_cents=int(inv["subtotal_cents"][k]),
                        fee_cents=int(inv["fee_cents"][k]),
                        tax_cents=0,
                        total_cents=int(inv["total_cents"][k]),
                        seller=json.loads(inv["seller"][k]),
                        buyer=json.loads(inv["buyer"][k]),
                        lines=json.loads(inv["lines"][k]),
                        template_version=inv["template_version"][k],
                        sandbox=False,
                    )
                )
            session.commit()
    return orders / (time.perf_counter() - start)


def _per_row(table) -> dict[str, object]:
    """A demo table's columns indexable by row, constant and derived ones included."""
    from billing_core.demo import generation

    def plain(values: object) -> object:
        if isinstance(values, generation.Same):
            return [values.value] * len(table)
        return values.values if isinstance(values, generation.Derived) else values

    return {name: plain(values) for name, values in table.columns.items()}


def seed_rows(options: Options) -> Iterable[Row]:
    """Bulk seeding beside the ORM adding one order at a time (measured on a small sample)."""
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        targets = [("SQLite", f"sqlite:///{Path(tmp) / 'seed.db'}", f"sqlite:///{Path(tmp) / 'orm.db'}")]
        if options.postgres_url:
            targets.append(("PostgreSQL", options.postgres_url, options.postgres_url))
        for label, url, baseline_url in targets:
            yield _seed_row(label, url, baseline_url, options.seed_orders)


def _seed_row(label: str, url: str, baseline_url: str, orders: int) -> Row:
    from billing_core.access.roles import Actor, Role
    from billing_core.core.db import Database
    from billing_core.demo import seeding as demo

    actor = Actor("bench@localhost", Role.ADMIN, "benchmark")
    baseline_db = Database(baseline_url)
    try:
        baseline_db.migrate()
        demo.delete_all_data(baseline_db, actor)
        baseline = _orm_orders_per_second(baseline_db, BASELINE_ORDERS)
    finally:
        baseline_db.dispose()
    database = Database(url)
    try:
        database.migrate()
        report = demo.seed(database, orders=orders, actor=actor, replace=True, end=DATA_END)
    finally:
        database.dispose()
    return Row(
        f"seed orders ({label}, {orders:,})",
        report.orders / report.seconds,
        "orders/s",
        baseline,
        "ORM one row at a time",
    )


REFUND_ORDERS = 200  # refunded end to end, beside as many completions
PENDING_REFUNDS = 1_000  # left pending (the gateway's answer lost), then finished by refunds reconcile


def refund_rows(options: Options) -> Iterable[Row]:
    """Refunds per second end to end on the simulated gateway beside complete_order per second, and the
    time ``refunds reconcile`` takes for 1,000 pending refunds beside 1,000 refunds made live."""
    with tempfile.TemporaryDirectory(prefix="billing-bench-refunds-") as tmp:
        targets = [("SQLite", f"sqlite:///{Path(tmp) / 'refunds.db'}")]
        if options.postgres_url:
            targets.append(("PostgreSQL", options.postgres_url))
        for label, url in targets:
            yield from _refund_rows(label, url, REFUND_ORDERS, PENDING_REFUNDS)


def _refund_rows(label: str, url: str, live: int, pending: int) -> Iterable[Row]:
    from billing_core.access.roles import Actor, Role
    from billing_core.core.config import Settings
    from billing_core.core.db import Database
    from billing_core.core.errors import GatewayUnreachable
    from billing_core.demo import seeding as demo
    from billing_core.orders import lifecycle as orders
    from billing_core.orders import refunds
    from billing_core.payments.simulated import Outcome, SimulatedGateway

    class AnswerLost(SimulatedGateway):
        """Refunds, then the answer never comes back: every refund is left pending."""

        def refund(self, ref, amount_cents, idempotency_key):
            super().refund(ref, amount_cents, idempotency_key)
            raise GatewayUnreachable("the answer was lost (benchmark)")

    database = Database(url)
    try:
        database.migrate()
        admin = Actor("bench@localhost", Role.ADMIN, "benchmark")
        demo.delete_all_data(database, admin)
        settings = Settings(database_url=url)
        gateway = SimulatedGateway(database)
        pricing = load_pricing()
        with database.session() as session:
            customer = orders.create_customer(session, admin, email="bench@example.com", name="Bench", country="DE")
            payments = []
            for _ in range(live + pending):
                order = orders.create_order(
                    session, admin, customer_id=customer.id, amount="100", method="stripe", pricing=pricing
                )
                payment = gateway.create_payment(orders._payment_request(session, order))
                orders.attach_payment(session, admin, order.id, payment)
                gateway.settle(payment.ref, Outcome.SUCCEED)
                payments.append((order.id, gateway.fetch_status(payment.ref)))

            def timed(work, items) -> float:
                start = time.perf_counter()
                for item in items:
                    work(item)
                return time.perf_counter() - start

            completing = timed(
                lambda p: orders.complete_order(session, admin, p[0], settings=settings, reason="bench", payment=p[1]),
                payments[:live],
            )
            refunding = timed(
                lambda p: refunds.refund_order(
                    session, admin, p[0], gateway, settings=settings, reason="bench", amount="10"
                ),
                payments[:live],
            )
            for order_id, status in payments[live:]:
                orders.complete_order(session, admin, order_id, settings=settings, reason="bench", payment=status)
                refunds.refund_order(session, admin, order_id, AnswerLost(database), settings=settings, reason="bench")
        start = time.perf_counter()
        report = refunds.reconcile_refunds(database, admin, settings, gateway_for=lambda *a, **k: gateway)
        reconciling = time.perf_counter() - start
        assert report.counts == {"succeeded": pending}, report.summary()
    finally:
        database.dispose()
    name = f"refunds end to end ({label}, simulated)"
    yield Row(name, live / refunding, "refunds/s", live / completing, "complete_order")
    yield Row(
        f"refunds reconcile, {pending:,} pending ({label})",
        reconciling,
        "s",
        pending * refunding / live,
        f"{pending:,} refunds made live",
    )


# Suites by name, each "module:function"; modules load only when their suite runs (they import this one).
SUITES: dict[str, str] = {
    "quote": "billing_core.bench.run:quote_rows",
    "seed": "billing_core.bench.run:seed_rows",
    "search": "billing_core.bench.search:search_rows",
    "reconcile": "billing_core.bench.reconcile:reconcile_rows",
    "revenue": "billing_core.bench.revenue:revenue_rows",
    "invoices": "billing_core.bench.invoices:invoice_rows",
    "workers": "billing_core.bench.workers:worker_rows",  # with --postgres-url only
    "refunds": "billing_core.bench.run:refund_rows",
    "credits": "billing_core.bench.credits:credit_rows",
    "pages": "pages._bench:page_rows",  # Streamlit AppTest: beside the pages, not in billing_core
}


def _suite(spec: str) -> Callable[[Options], Iterable[Row]]:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def run(options: Options, only: list[str] | None = None, out: Callable[[str], None] = print) -> list[Row]:
    rows: list[Row] = []
    out(f"{'figure':<44} {'value':>14} {'unit':<10} baseline (what it is)  ratio = value / baseline")
    for name, spec in SUITES.items():
        if only and name not in only:
            continue
        for row in _suite(spec)(options):
            out(row.line())
            rows.append(row)
    return rows
