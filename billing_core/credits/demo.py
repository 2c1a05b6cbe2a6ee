"""The demo's credits, written by the seed in its own transaction after the orders and the ledger: the
paid credits' worth, believable usage, then the balances and roll-forward from the ledger.

Usage, decided per customer from their id so the same seed gives the same rows: seven in ten spend
90-100 % of each top-up, two in ten 30-70 % (they keep balances), one in ten spends nothing (with
two years of orders, many of those have been idle for over a year). Each paid order's usage (what
refunds left of its credits, times that share) falls on one day 1-28 days after the payment, on one of
four models; usage that would fall after the data's end is not there yet. One INSERT ... SELECT per
table, so a million orders add seconds.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text

from billing_core.core.models import CreditPool, LedgerKind
from billing_core.credits import ledger

# Children of customers, emptied before them when the seed replaces everything.
TABLES = ("approvals", "usage_lines", "usage_imports", *ledger.TABLES)
MODELS = ("gpt-4o", "claude-3.5-sonnet", "llama-3.1-70b", "gemini-1.5-pro")
METERING = "system:router-metering"


def _usage_rows(dialect: str, after_order_id: int) -> str:
    """One row per paid order with usage: customer, order, credits drawn, their worth, when, the day, the model."""
    share = (
        "CASE WHEN (o.customer_id * 40503) % 100 < 70 THEN 900 + (o.id * 7) % 101 "
        "WHEN (o.customer_id * 40503) % 100 < 90 THEN 300 + (o.id * 13) % 401 ELSE 0 END"
    )
    offset = "((o.id * 31) % 28 + 1)"
    if dialect == "sqlite":
        # Whole milliseconds, cut (not rounded) as PostgreSQL's date_trunc cuts them.
        shifted = f"strftime('%Y-%m-%d %H:%M:%S', o.paid_at, '+' || {offset} || ' days')"
        at = f"({shifted} || substr(o.paid_at, 20, 4) || '000')"
        day = f"date(o.paid_at, '+' || {offset} || ' days')"
    else:
        # Milliseconds, as SQLite's strftime keeps them: the same seed gives the same rows on both.
        at = f"date_trunc('milliseconds', o.paid_at + make_interval(days => CAST({offset} AS integer)))"
        day = f"CAST(({at}) AT TIME ZONE 'UTC' AS date)"
    model = "CASE o.id % 4 " + " ".join(f"WHEN {i} THEN '{m}'" for i, m in enumerate(MODELS)) + " END"
    drawn = f"((o.credits - COALESCE(r.credits, 0)) * ({share}) / 1000)"
    return f"""
        SELECT o.customer_id AS customer_id, o.id AS order_id, {drawn} AS credits,
               {ledger.worth_sql("o.amount_cents", "o.credits", drawn)} AS value_cents,
               {at} AS at, {day} AS day, {model} AS model
        FROM orders o
        LEFT JOIN (SELECT order_id, CAST(SUM(credits) AS BIGINT) AS credits FROM refunds WHERE status = 'succeeded'
                   GROUP BY order_id) r ON r.order_id = o.id
        WHERE o.paid_at IS NOT NULL AND o.sandbox = {"0" if dialect == "sqlite" else "false"}
          AND o.id > {int(after_order_id)}
    """  # noqa: S608 - integers and fixed names only


def _usage(conn: Connection, after_order_id: int, data_end: datetime) -> None:
    """The usage rows worked out once into a temporary table, then written as ledger entries (ids after
    the ledger's, in time order) and as usage lines per customer, day and model. Read twice straight from
    the orders, SQLite worked each row's expressions out again for every place they appear: 20 s at a
    million orders, 10 this way."""
    dialect = conn.dialect.name
    end = data_end.strftime("%Y-%m-%d %H:%M:%S") if dialect == "sqlite" else data_end
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE seed_usage AS SELECT * FROM ({_usage_rows(dialect, after_order_id)}) u "  # noqa: S608
            "WHERE u.credits > 0 AND u.at < :end"
        ),
        {"end": end},
    )
    note = (
        "'usage ' || u.day || ' · ' || u.model"
        if dialect == "sqlite"
        else "'usage ' || CAST(u.day AS text) || ' · ' || u.model"
    )
    last_id = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM ledger_entries").scalar()
    conn.exec_driver_sql(
        f"""
        INSERT INTO ledger_entries (id, customer_id, order_id, kind, pool, credits, value_cents, refund_id, note,
                                    created_at, created_by)
        SELECT {int(last_id)} + row_number() OVER (ORDER BY u.at, u.order_id),
               u.customer_id, NULL, '{LedgerKind.USAGE.value}', '{CreditPool.PAID.value}', -u.credits,
               -u.value_cents, NULL, {note}, u.at, '{METERING}'
        FROM seed_usage u
        """  # noqa: S608 - fixed names and expressions
    )
    conn.exec_driver_sql(
        f"""
        INSERT INTO usage_lines (customer_id, day, model, credits, promotional_credits, paid_value_cents,
                                 overdrawn, import_id, updated_at)
        SELECT u.customer_id, u.day, u.model, SUM(u.credits), 0, SUM(u.value_cents),
               {"0" if dialect == "sqlite" else "false"}, NULL, MAX(u.at)
        FROM seed_usage u GROUP BY u.customer_id, u.day, u.model ORDER BY u.customer_id, u.day, u.model
        """  # noqa: S608 - fixed names and expressions
    )
    conn.exec_driver_sql("DROP TABLE seed_usage")


def _load(conn: Connection, offsets: dict[str, int], data_end: datetime) -> None:
    """The usage of the paid credits of the orders just written (whose ledger entries came with their
    worth), then the rollups from the ledger."""
    _usage(conn, offsets.get("orders", 0), data_end)
    ledger._rebuild(conn)
