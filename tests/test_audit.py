"""The audit log's reading side beyond roles: the pickers' values and the indexes they rely on."""

from __future__ import annotations

import random

from sqlalchemy import select, text

from billing_core.access import audit
from billing_core.access.roles import Actor, Role
from billing_core.core.db import transaction
from billing_core.core.models import AuditEvent


def test_known_values_are_every_distinct_action_and_type_in_order(db, session, admin):
    rng = random.Random(5)
    actions = [f"thing.{word}" for word in ("create", "complete", "refund", "z", "a", "ünïcode", "with space")]
    types = ["order", "customer", "invoice", "database"]
    with transaction(session):
        for i in range(600):
            audit.record(session, admin, rng.choice(actions), rng.choice(types), i)
    got_actions, got_types = audit.known_values(session, Actor("fay@company.test", Role.FINANCE))
    expected_actions = sorted(set(session.scalars(select(AuditEvent.action))))
    expected_types = sorted(set(session.scalars(select(AuditEvent.entity_type))))
    assert got_actions == expected_actions and len(got_actions) == len(actions)
    assert got_types == expected_types == sorted(types)


def test_known_values_of_an_empty_log_are_empty(session, admin):
    assert audit.known_values(session, admin) == ([], [])


def test_the_pickers_and_the_action_filter_read_indexes_on_sqlite(tmp_path):
    from billing_core.core.db import Database

    database = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    database.migrate()
    with database.engine.connect() as conn:
        for column in ("action", "entity_type"):
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN SELECT min({column}) FROM audit_events WHERE {column} > 'x'"
            ).all()
            assert any("COVERING INDEX" in row[-1] for row in plan), plan
        plan = conn.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT id FROM audit_events WHERE action = 'order.complete' "
                "ORDER BY at DESC, id DESC LIMIT 51"
            )
        ).all()
        assert any("ix_audit_events_action_at" in row[-1] for row in plan), plan
    database.dispose()
