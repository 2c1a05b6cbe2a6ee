"""Bills totals: issued documents per UTC day, plan, method, kind, series and sandbox flag.

``record`` adds each invoice and credit note in the transaction that issues it, so the bills review
counts and totals a few thousand rows whatever the number of documents; ``rebuild`` recomputes the
table from the documents in SQL (the revenue rollup's rebuild runs it), and the two agree exactly.
Sandbox documents are kept too, apart, because the review can include them.
"""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing_core.core.models import BillsDaily, Invoice, Order

TABLE = "bills_daily"
MEASURES = ("documents", "subtotal_cents", "fee_cents", "tax_cents", "total_cents")


def record(session: Session, document: Invoice, order: Order) -> None:
    """Count an invoice or credit note on its UTC issue day (amounts as issued: a credit note's are negative)."""
    table = BillsDaily.__table__
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(
        day=document.issued_at.astimezone(UTC).date(),
        plan=order.plan,
        method=order.method,
        kind=document.kind,
        series=document.series,
        sandbox=bool(document.sandbox),
        documents=1,
        subtotal_cents=document.subtotal_cents,
        fee_cents=document.fee_cents,
        tax_cents=document.tax_cents,
        total_cents=document.total_cents,
    )
    keys = [c.name for c in table.primary_key.columns]
    added = {m: table.c[m] + stmt.excluded[m] for m in MEASURES}
    session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=added))


def day_sql(dialect: str, column: str) -> str:
    """The UTC calendar day of a stored timestamp, as SQL (SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS…')."""
    if dialect == "postgresql":
        return f"CAST(({column} AT TIME ZONE 'UTC') AS date)"
    return f"substr({column}, 1, 10)"


def rebuild(conn: Connection) -> int:
    """Recompute the table from the documents, in the caller's transaction; returns its rows."""
    conn.exec_driver_sql(f"DELETE FROM {TABLE}")  # noqa: S608 - fixed name
    day = day_sql(conn.dialect.name, "i.issued_at")
    rows = conn.exec_driver_sql(
        f"INSERT INTO {TABLE} (day, plan, method, kind, series, sandbox, {', '.join(MEASURES)}) "  # noqa: S608
        f"SELECT {day}, o.plan, o.method, i.kind, i.series, i.sandbox, count(*), sum(i.subtotal_cents), "
        "sum(i.fee_cents), sum(i.tax_cents), sum(i.total_cents) "
        "FROM invoices i JOIN orders o ON o.id = i.order_id "
        f"GROUP BY {day}, o.plan, o.method, i.kind, i.series, i.sandbox"
    ).rowcount
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {TABLE}")
    return rows
