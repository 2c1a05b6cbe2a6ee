"""The data the ``pages`` bench suite (pages/_bench.py) drives the pages with: a seeded database whose audit
log grows with the orders, and the values its interactions type or open. The suite itself lives beside the
pages (it runs Streamlit's AppTest); what it reads and writes in the database lives here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, text

from billing_core.access.roles import Actor, Role
from billing_core.bench.run import DATA_END, LARGE_ORDERS, reused_large
from billing_core.core.db import Database
from billing_core.core.models import Customer, CustomerTotal, Order
from billing_core.demo import seeding as demo
from billing_core.invoices import review as bills


@dataclass(frozen=True)
class Picks:
    """Values from the seeded data that the interactions type or open."""

    email: str  # a customer's email (the Invoices page's customer boxes)
    last_name: str  # what support types
    order: str  # an order's public id (its detail)
    busiest: str  # the public id of the customer with the most orders (hundreds at 1M)


def picks(database: Database) -> Picks:
    with database.session() as session:
        # Past the first few, where there are that many (a small test database has fewer).
        spaced = select(Customer.email, Customer.name).where(Customer.name.contains(" ")).order_by(Customer.id)
        email, name = session.execute(spaced.where(Customer.id > 777)).first() or session.execute(spaced).first()
        order = session.scalar(select(Order.public_id).where(Order.id > 4321).order_by(Order.id).limit(1))
        order = order or session.scalar(select(Order.public_id).order_by(Order.id).limit(1))
        busiest = session.scalar(
            select(Customer.public_id)
            .join(CustomerTotal, CustomerTotal.customer_id == Customer.id)
            .order_by(CustomerTotal.paid_count.desc())
            .limit(1)
        )
    return Picks(email=email, last_name=name.split()[-1], order=order, busiest=busiest)


AUDIT_EVENTS_PER_ORDER = 10  # the seed writes one event; the bench adds one per tenth order to page through


def seeded(url: str, orders: int) -> Database:
    database = Database(url)
    database.migrate()
    demo.seed(
        database, orders=orders, actor=Actor("bench@localhost", Role.ADMIN, "benchmark"), replace=True, end=DATA_END
    )
    _audit_history(database)
    return database


def reused(url: str, orders: int = LARGE_ORDERS) -> Database:
    """The already seeded database of ``--large-database-url`` (``run.reused_large``), with the audit history
    ``seeded`` adds, added the first time only."""
    database = reused_large(url, orders)
    with database.engine.connect() as conn:
        added = conn.execute(text("SELECT 1 FROM audit_events WHERE reason = :r LIMIT 1"), {"r": HISTORY}).first()
    if added is None:
        _audit_history(database)
    return database


HISTORY = "benchmark history"  # the reason of the audit events the bench adds


def _audit_history(database: Database) -> None:
    """An audit log that grows with the orders: a support completion for every tenth order, in one INSERT."""
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (at, actor_email, actor_role, action, entity_type, entity_id, reason)"
                " SELECT created_at, 'support@billing-ops.local', 'support', 'order.complete', 'order', public_id,"
                " :reason FROM orders WHERE id % :every = 0"
            ),
            {"every": AUDIT_EVENTS_PER_ORDER, "reason": HISTORY},
        )
        conn.exec_driver_sql("ANALYZE audit_events")


_FINANCE = Actor("bench@localhost", Role.FINANCE, "benchmark")


def scans_replaced(database: Database, files: Path) -> float:
    """Milliseconds of what the Invoices page ran on opening before the bills totals and the stored deep check."""
    with database.session() as session:
        start = time.perf_counter()
        bills.checks(session, _FINANCE, root=files)
        everything = bills.DocumentFilters()
        bills.count_documents(session, _FINANCE, everything)
        bills._scanned_totals(session, everything)
        return (time.perf_counter() - start) * 1000
