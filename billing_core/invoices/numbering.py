"""Gapless invoice numbers: allocated inside the transaction that issues the invoice.

The series row is locked by the UPDATE that takes its next number, so concurrent issuers queue;
if the issuing transaction rolls back, so does the number, and no gap is left. The same UPDATE
keeps the series' health (numbers issued, first, last), so "gapless" is a comparison per series.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing_core.access.roles import Action, Actor, require
from billing_core.core.models import InvoiceSeries


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
        .values(
            next_number=InvoiceSeries.next_number + 1,
            issued=InvoiceSeries.issued + 1,
            # The right-hand sides read the row as it was: next_number is the number taken now.
            first_number=func.coalesce(InvoiceSeries.first_number, InvoiceSeries.next_number),
            last_number=InvoiceSeries.next_number,
        )
        .returning(InvoiceSeries.next_number)
    ).scalar_one()
    sequence = taken - 1
    return sequence, format_number(series, sequence)


@dataclass(frozen=True)
class SeriesHealth:
    """What a series' row says: numbers issued, the first and last, and the next one to take."""

    series: str
    issued: int
    first: int | None
    last: int | None
    next_number: int

    @property
    def problem(self) -> str | None:
        """None when the series runs 1, 2, ... next - 1 with each number issued once; else what is off."""
        if not self.issued:
            return None if self.next_number == 1 else f"{self.series}: none issued, next {self.next_number:,}"
        span = (self.last or 0) - (self.first or 0) + 1
        if self.first != 1:
            return f"{self.series}: starts at {self.first:,}, not 1"
        if self.last != self.next_number - 1:
            return f"{self.series}: last issued {self.last:,}, but the next to take is {self.next_number:,}"
        if self.issued != span:
            return f"{self.series}: {self.issued:,} numbers issued over {span:,} places (1–{self.last:,})"
        return None


def series_health(session: Session, actor: Actor) -> list[SeriesHealth]:
    """Every series' health as its allocator kept it (one row per series: no document is read)."""
    require(actor, Action.READ_BILLS)
    rows = session.execute(
        select(
            InvoiceSeries.series,
            InvoiceSeries.issued,
            InvoiceSeries.first_number,
            InvoiceSeries.last_number,
            InvoiceSeries.next_number,
        ).order_by(InvoiceSeries.series)
    )
    return [SeriesHealth(*row) for row in rows]
