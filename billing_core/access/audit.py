"""Audit events: who changed what, when, why, and the before/after of the record; and the log's
search, paged newest first in the database, for the roles that may read it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.orm import Session

from billing_core.access.roles import Action, Actor, require
from billing_core.core.errors import BillingError
from billing_core.core.models import AuditEvent, utcnow

MAX_PAGE_SIZE = 500
MAX_EXPORT_ROWS = 100_000
_TEXT_LIMIT = 320
REASON_MAX_CHARS = 1_000  # what a box for a reason takes


def reason_given(reason: str | None, missing: str) -> str:
    """The reason for a change, stripped; ``missing`` when there is none. Checked before the change
    starts (before any gateway call), whatever calls it: the page's box stops at REASON_MAX_CHARS."""
    if isinstance(reason, str) and len(reason) > REASON_MAX_CHARS * 2:  # before stripping a megabyte
        raise BillingError(f"A reason is at most {REASON_MAX_CHARS:,} characters.")
    reason = (reason or "").strip()
    if not reason:
        raise BillingError(missing)
    if len(reason) > REASON_MAX_CHARS:
        raise BillingError(f"A reason is at most {REASON_MAX_CHARS:,} characters.")
    return reason


def record(
    session: Session,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int,
    *,
    reason: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Add an audit event to the caller's transaction, so it commits or rolls back with the change."""
    event = AuditEvent(
        at=utcnow(),
        actor_email=actor.email,
        actor_role=actor.role,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        reason=reason,
        before=before,
        after=after,
    )
    session.add(event)
    return event


def _events_for(session: Session, entity_type: str, entity_id: str | int, limit: int = 200) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id))
        .order_by(AuditEvent.at, AuditEvent.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class AuditFilters:
    """What the audit log page asks for; empty fields match everything.

    ``who`` matches part of the actor's email (any case); ``action`` is an exact action, or a
    prefix ending in a dot ("order."); ``entity_id`` is exact; ``since``/``until`` are UTC days,
    both included.
    """

    who: str = ""
    action: str = ""
    entity_type: str = ""
    entity_id: str = ""
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the next page starts strictly after (older than) this event."""

    at: datetime
    id: int


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEvent]
    next_after: Cursor | None  # None on the last page


def _conditions(filters: AuditFilters) -> list[ColumnElement[bool]]:
    for label, value in (
        ("who", filters.who),
        ("action", filters.action),
        ("record type", filters.entity_type),
        ("record id", filters.entity_id),
    ):
        if len(value) > _TEXT_LIMIT or any(ord(ch) < 32 for ch in value):
            raise BillingError(f"The {label} filter must be at most {_TEXT_LIMIT} printable characters.")
    if filters.since and filters.until and filters.since > filters.until:
        raise BillingError("The period ends before it starts.")
    conditions: list[ColumnElement[bool]] = []
    if who := filters.who.strip():
        conditions.append(func.lower(AuditEvent.actor_email).contains(who.lower(), autoescape=True))
    if action := filters.action.strip():
        if action.endswith("."):
            conditions.append(AuditEvent.action.startswith(action, autoescape=True))
        else:
            conditions.append(AuditEvent.action == action)
    if entity_type := filters.entity_type.strip():
        conditions.append(AuditEvent.entity_type == entity_type)
    if entity_id := filters.entity_id.strip():
        conditions.append(AuditEvent.entity_id == entity_id)
    if filters.since:
        conditions.append(AuditEvent.at >= datetime.combine(filters.since, time(), tzinfo=UTC))
    if filters.until:
        conditions.append(AuditEvent.at < datetime.combine(filters.until + timedelta(days=1), time(), tzinfo=UTC))
    return conditions


def _after(cursor: Cursor) -> ColumnElement[bool]:
    # The redundant at <= bound lets the planner range-scan the index on at.
    return and_(AuditEvent.at <= cursor.at, or_(AuditEvent.at < cursor.at, AuditEvent.id < cursor.id))


def search_events(
    session: Session, actor: Actor | None, filters: AuditFilters, page_size: int = 50, after: Cursor | None = None
) -> EventPage:
    """One page of matching events, newest first, keyset-paged on (at desc, id desc)."""
    require(actor, Action.READ_AUDIT)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BillingError(f"A page holds 1 to {MAX_PAGE_SIZE} events.")
    conditions = _conditions(filters)
    if after is not None:
        conditions.append(_after(after))
    stmt = (
        select(AuditEvent).where(*conditions).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(page_size + 1)
    )
    events = list(session.scalars(stmt))
    more = len(events) > page_size
    events = events[:page_size]
    last = events[-1] if more else None
    return EventPage(events, Cursor(last.at, last.id) if last else None)


def known_values(session: Session, actor: Actor | None) -> tuple[list[str], list[str]]:
    """The actions and record types the log holds, for the page's pickers."""
    require(actor, Action.READ_AUDIT)
    return _distinct(session, "action"), _distinct(session, "entity_type")


def _distinct(session: Session, column: str) -> list[str]:
    """The distinct values of an indexed column, in order: one index probe per value ("loose index
    scan"), where SELECT DISTINCT would read every event."""
    assert column in ("action", "entity_type")  # names are formatted in, so only these two
    sql = f"""
        WITH RECURSIVE found(value) AS (
            SELECT min({column}) FROM audit_events
            UNION ALL
            SELECT (SELECT min({column}) FROM audit_events WHERE {column} > found.value)
            FROM found WHERE found.value IS NOT NULL
        )
        SELECT value FROM found WHERE value IS NOT NULL
    """  # noqa: S608 - column is one of two fixed names
    return list(session.scalars(text(sql)))


def _json(value: object) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


EXPORT_COLUMNS = ["When (UTC)", "Who", "Role", "Action", "Record type", "Record id", "Reason", "Before", "After"]


def event_row(event: AuditEvent) -> dict[str, str]:
    """One event as text cells, for the page's table and the CSV export alike."""
    return {
        "When (UTC)": f"{event.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
        "Who": event.actor_email,
        "Role": str(event.actor_role.value if hasattr(event.actor_role, "value") else event.actor_role),
        "Action": event.action,
        "Record type": event.entity_type,
        "Record id": event.entity_id,
        "Reason": event.reason or "",
        "Before": _json(event.before),
        "After": _json(event.after),
    }


def export_rows(
    session: Session, actor: Actor | None, filters: AuditFilters, limit: int = MAX_EXPORT_ROWS
) -> list[dict[str, str]]:
    """Every matching event (up to ``limit``), newest first, as rows for exports.to_csv_bytes."""
    rows: list[dict[str, str]] = []
    after: Cursor | None = None
    while len(rows) < limit:
        page = search_events(session, actor, filters, page_size=min(MAX_PAGE_SIZE, limit - len(rows)), after=after)
        rows.extend(event_row(e) for e in page.events)
        if page.next_after is None:
            break
        after = page.next_after
    return rows


def changes(before: dict | None, after: dict | None) -> list[dict[str, str]]:
    """Field by field: the value before and after, as JSON text, changed fields first."""
    before, after = before or {}, after or {}
    rows = []
    for key in sorted(set(before) | set(after), key=str):
        old, new = _json(before.get(key)), _json(after.get(key))
        rows.append({"Field": str(key), "Changed": "yes" if old != new else "", "Before": old, "After": new})
    return sorted(rows, key=lambda r: not r["Changed"])
