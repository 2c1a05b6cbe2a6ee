"""Audit events: who changed what, when, why, and the before/after of the record."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing_core.access import Actor
from billing_core.models import AuditEvent, utcnow


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


def events_for(session: Session, entity_type: str, entity_id: str | int, limit: int = 200) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id))
        .order_by(AuditEvent.at, AuditEvent.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
