"""Series health (billing_core.invoices.numbering): kept by the allocation, so gapless is a comparison per series."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select, update

from billing_core.core.db import MIGRATIONS, migrate, transaction
from billing_core.core.errors import PermissionDenied
from billing_core.core.models import Invoice, InvoiceSeries
from billing_core.demo import seeding as demo
from billing_core.invoices.numbering import _allocate_number, series_health


def health(db, actor) -> dict[str, tuple]:
    with db.session() as s:
        return {h.series: (h.issued, h.first, h.last, h.next_number, h.problem) for h in series_health(s, actor)}


def test_each_allocation_counts_the_number_and_moves_the_last(db, finance):
    with db.session() as s, transaction(s):
        for _ in range(3):
            _allocate_number(s, "INV-2031")
    assert health(db, finance) == {"INV-2031": (3, 1, 3, 4, None)}


def test_a_rolled_back_allocation_leaves_the_health_as_it_was(db, finance):
    with db.session() as s, transaction(s):
        _allocate_number(s, "INV-2031")
    with db.session() as s, pytest.raises(RuntimeError), transaction(s):
        _allocate_number(s, "INV-2031")
        raise RuntimeError("the issue failed half-way")
    assert health(db, finance) == {"INV-2031": (1, 1, 1, 2, None)}


def test_a_series_whose_counter_ran_past_its_numbers_is_flagged(db, finance):
    with db.session() as s, transaction(s):
        _allocate_number(s, "INV-2031")
        s.execute(update(InvoiceSeries).values(next_number=InvoiceSeries.next_number + 1))
    assert health(db, finance)["INV-2031"][4] == "INV-2031: last issued 1, but the next to take is 3"


def test_a_series_missing_a_number_in_the_middle_is_flagged(db, finance):
    with db.session() as s, transaction(s):
        for _ in range(3):
            _allocate_number(s, "CN-2031")
        s.execute(update(InvoiceSeries).values(issued=2))
    assert health(db, finance)["CN-2031"][4] == "CN-2031: 2 numbers issued over 3 places (1–3)"


def test_the_seed_and_the_migration_give_each_series_its_stored_documents(db, admin, finance):
    demo.seed(db, orders=1500, seed=3, actor=admin)
    seeded = health(db, finance)
    with db.session() as s:
        stored = {
            series: (n, first, last)
            for series, n, first, last in s.execute(
                select(Invoice.series, func.count(), func.min(Invoice.sequence), func.max(Invoice.sequence)).group_by(
                    Invoice.series
                )
            )
        }
    assert {k: v[:3] for k, v in seeded.items()} == stored and all(v[4] is None for v in seeded.values())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    migrate(db.engine)
    assert health(db, finance) == seeded


def test_series_health_is_for_finance(db, support):
    with db.session() as s, pytest.raises(PermissionDenied):
        series_health(s, support)
