"""Gapless invoice numbers: allocated inside the transaction that issues the invoice.

The series row is locked by the UPDATE that takes its next number, so concurrent issuers queue;
if the issuing transaction rolls back, so does the number, and no gap is left.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing_core.models import InvoiceSeries


def series_name(template: str, when: datetime) -> str:
    return template.replace("{year}", f"{when.year:04d}")


def format_number(series: str, sequence: int) -> str:
    return f"{series}-{sequence:06d}"


def _allocate_number(session: Session, series: str) -> tuple[int, str]:
    """Take the next number of ``series``: (sequence, printed number)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(InvoiceSeries).values(series=series, next_number=1).on_conflict_do_nothing())
    taken = session.execute(
        update(InvoiceSeries)
        .where(InvoiceSeries.series == series)
        .values(next_number=InvoiceSeries.next_number + 1)
        .returning(InvoiceSeries.next_number)
    ).scalar_one()
    sequence = taken - 1
    return sequence, format_number(series, sequence)
