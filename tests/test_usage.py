"""Usage imports: each (customer, day, model) booked once, corrections as differences, the same file twice
changes nothing, promotional credits drawn first, an overdraw booked and flagged; the CLI; and a usage
import racing a refund and an adjustment never leaves a balance apart from the ledger's sum."""

from __future__ import annotations

import argparse
import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from billing_core.cli import credits as cli_credits
from billing_core.core.config import CreditPolicy
from billing_core.core.errors import PermissionDenied
from billing_core.core.models import AuditEvent, CreditPool, LedgerEntry, LedgerKind, UsageImport, UsageLine
from billing_core.credits import ledger, usage
from billing_core.payments.simulated import SimulatedGateway
from tests.test_credits_ledger import ledger_sums, post, rollup_rows
from tests.test_refunds import paid_order

TODAY = date(2026, 11, 30)
HEADER = "customer,day,model,credits\n"


def csv(*lines: str, header: str = HEADER) -> bytes:
    return (header + "\n".join(lines) + "\n").encode()


def parse(data: bytes, name: str = "usage.csv") -> usage.ParsedUsage:
    return usage.parse_usage(data, name, today=TODAY)


@pytest.fixture
def gateway(db):
    return SimulatedGateway(db)


@pytest.fixture
def customer(db, admin, support, pricing, settings, gateway):
    """A customer holding 100 paid credits (a $100 top-up)."""
    order = paid_order(db, admin, support, pricing, settings, gateway, amount="100")
    with db.session() as s:
        from billing_core.core.models import Customer

        return s.get(Customer, order.customer_id)


def balance(db, customer_id: int) -> ledger.Balance:
    with db.session() as s:
        return ledger._balance(s, customer_id)


def test_headers_are_matched_by_alias_and_malformed_rows_name_their_line():
    data = csv(
        "cus_a,2026-11-01,gpt-4o,12.50",
        "cus_a,2026-11-01,gpt-4o,1",
        "cus_b,2026-13-01,gpt-4o,1",
        "cus_b,2026-11-02,,1",
        "cus_b,2026-11-02,m,-3",
        "cus_b,2026-12-02,m,3",
        "cus_b,2026-11-02,m",
        "Ana@Example.com,2026-11-03,claude,0",
        header="Customer ID ; Usage_Date;Model Name;Credits Used\n".replace(";", ","),
    )
    parsed = parse(data)
    assert [(r.line, r.customer, r.day, r.model, r.credits) for r in parsed.rows] == [
        (2, "cus_a", date(2026, 11, 1), "gpt-4o", 12_50),
        (9, "ana@example.com", date(2026, 11, 3), "claude", 0),
    ]
    reasons = {m.line: m.reason for m in parsed.malformed}
    assert reasons[3] == "repeats line 2 (the same customer, day and model)"
    assert "not a calendar day" in reasons[4]
    assert reasons[5] == "empty model"
    assert "bad credits '-3'" in reasons[6]
    assert "in the future" in reasons[7]
    assert "has 3 fields" in reasons[8]


def test_a_file_missing_a_column_is_refused_whole():
    with pytest.raises(usage.UsageFileError, match="missing the column credits"):
        parse(b"customer,day,model\ncus_a,2026-11-01,m\n")
    with pytest.raises(usage.UsageFileError, match="not UTF-8"):
        parse(HEADER.encode() + b"\xff\xfe,2026-11-01,m,1\n")


def test_usage_is_booked_once_and_draws_promotional_credits_first(db, finance, customer):
    post(db, customer.id, LedgerKind.ADJUSTMENT, CreditPool.PROMOTIONAL, 10_00)
    data = csv(f"{customer.public_id},2026-11-01,gpt-4o,25", f"{customer.email},2026-11-02,gpt-4o,5")
    result = usage.apply(db, finance, parse(data))
    assert (result.booked, result.corrected, result.credits, result.overdrawn) == (2, 0, 30_00, [])
    assert balance(db, customer.id) == ledger.Balance(paid=80_00, promotional=0, paid_value_cents=80_00)
    with db.session() as s:
        entries = s.execute(
            select(LedgerEntry.pool, LedgerEntry.credits, LedgerEntry.note)
            .where(LedgerEntry.kind == LedgerKind.USAGE)
            .order_by(LedgerEntry.id)
        ).all()
        assert [tuple(e) for e in entries] == [
            (CreditPool.PROMOTIONAL, -10_00, "usage 2026-11-01 · gpt-4o"),
            (CreditPool.PAID, -15_00, "usage 2026-11-01 · gpt-4o"),
            (CreditPool.PAID, -5_00, "usage 2026-11-02 · gpt-4o"),
        ]
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "credits.import_usage"))
        assert event.actor_email == finance.email and event.after["booked"] == 2


def test_the_configured_order_draws_paid_credits_first(db, finance, customer):
    post(db, customer.id, LedgerKind.ADJUSTMENT, CreditPool.PROMOTIONAL, 10_00)
    usage.apply(
        db, finance, parse(csv(f"{customer.public_id},2026-11-01,m,25")), policy=CreditPolicy(draw_order="paid_first")
    )
    assert balance(db, customer.id) == ledger.Balance(paid=75_00, promotional=10_00, paid_value_cents=75_00)


def test_the_same_file_twice_changes_nothing(db, finance, customer):
    data = csv(f"{customer.public_id},2026-11-01,gpt-4o,25")
    usage.apply(db, finance, parse(data))
    before = rollup_rows(db), ledger_sums(db)
    with db.session() as s:
        shown = usage.preview(s, finance, parse(data))
    assert shown.previously_imported and shown.counts[usage.Verdict.UNCHANGED] == 1 and not shown.to_book
    again = usage.apply(db, finance, parse(data))
    assert (again.booked, again.corrected, again.unchanged, again.import_id) == (0, 0, 1, None)
    assert (rollup_rows(db), ledger_sums(db)) == before
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(UsageImport)) == 1


def test_a_corrected_file_books_the_difference_as_a_correction_never_an_edit(db, finance, customer):
    post(db, customer.id, LedgerKind.ADJUSTMENT, CreditPool.PROMOTIONAL, 10_00)
    usage.apply(db, finance, parse(csv(f"{customer.public_id},2026-11-01,gpt-4o,25")))
    with db.session() as s:
        first = s.execute(select(LedgerEntry.id, LedgerEntry.credits).order_by(LedgerEntry.id)).all()
    lower = usage.apply(db, finance, parse(csv(f"{customer.public_id},2026-11-01,gpt-4o,8"), "fixed.csv"))
    assert (lower.booked, lower.corrected, lower.credits) == (0, 1, -17_00)
    # The paid part goes back first (15 drawn), then 2 of the 10 promotional credits.
    assert balance(db, customer.id) == ledger.Balance(paid=100_00, promotional=2_00, paid_value_cents=100_00)
    higher = usage.apply(db, finance, parse(csv(f"{customer.public_id},2026-11-01,gpt-4o,30"), "again.csv"))
    assert higher.credits == 22_00
    assert balance(db, customer.id) == ledger.Balance(paid=80_00, promotional=0, paid_value_cents=80_00)
    with db.session() as s:
        assert (
            s.execute(
                select(LedgerEntry.id, LedgerEntry.credits)
                .where(LedgerEntry.id <= first[-1].id)
                .order_by(LedgerEntry.id)
            ).all()
            == first
        )
        kinds = s.scalars(select(LedgerEntry.kind).where(LedgerEntry.id > first[-1].id)).all()
        assert set(kinds) == {LedgerKind.USAGE_CORRECTION}
        line = s.scalar(select(UsageLine))
        assert (line.credits, line.promotional_credits, line.paid_value_cents) == (30_00, 10_00, 20_00)
    assert ledger_sums(db)[(customer.id, "paid")] == (80_00, 80_00)


def test_a_line_that_drives_the_balance_below_zero_is_booked_and_flagged(db, finance, customer):
    data = csv(f"{customer.public_id},2026-11-01,m,60", f"{customer.public_id},2026-11-02,m,50")
    with db.session() as s:
        shown = usage.preview(s, finance, parse(data))
    assert [line.overdraws for line in shown.lines] == [False, True]
    result = usage.apply(db, finance, parse(data))
    assert result.overdrawn == [(3, customer.public_id)]
    assert balance(db, customer.id) == ledger.Balance(paid=-10_00, promotional=0, paid_value_cents=0)
    with db.session() as s:
        flagged = s.scalars(select(UsageLine.day).where(UsageLine.overdrawn.is_(True))).all()
    assert flagged == [date(2026, 11, 2)]


def test_unknown_customers_and_malformed_lines_book_nothing_for_themselves(db, finance, customer):
    data = csv(
        "cus_nobody,2026-11-01,m,5", f"{customer.public_id},2026-11-01,m,x", f"{customer.public_id},2026-11-01,n,1"
    )
    result = usage.apply(db, finance, parse(data))
    counts = result.preview.counts
    assert (counts[usage.Verdict.UNKNOWN], counts[usage.Verdict.MALFORMED], result.booked) == (1, 1, 1)
    assert balance(db, customer.id).paid == 99_00


def test_support_may_not_import_usage(db, support, customer):
    with pytest.raises(PermissionDenied):
        usage.apply(db, support, parse(csv(f"{customer.public_id},2026-11-01,m,5")))


def test_the_command_previews_then_books(db, admin, customer, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db.url)
    path = tmp_path / "u.csv"
    path.write_bytes(csv(f"{customer.public_id},2026-11-01,m,5", "cus_nobody,2026-11-01,m,1"))
    args = argparse.Namespace(file=str(path), apply=False, csv=None, database_url=db.url)
    assert cli_credits.cli_usage(args, admin) == 1  # a line names no customer
    assert "preview only: run again with --apply to book 1 lines" in capsys.readouterr().out
    assert balance(db, customer.id).paid == 100_00
    args.apply = True
    assert cli_credits.cli_usage(args, admin) == 1
    assert "Booked 1 usage lines" in capsys.readouterr().out
    assert balance(db, customer.id).paid == 95_00


def test_a_usage_import_racing_a_refund_and_an_adjustment_keeps_every_balance_equal_to_the_ledger(
    db, admin, support, finance, pricing, settings, gateway
):
    from billing_core.orders import refunds

    order = paid_order(db, admin, support, pricing, settings, gateway, amount="100")
    with db.session() as s:
        from billing_core.core.models import Customer

        public_id = s.get(Customer, order.customer_id).public_id
    data = csv(*(f"{public_id},2026-11-{day:02d},m,3" for day in range(1, 21)))
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run(fn):
        def go():
            try:
                start.wait()
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        return threading.Thread(target=go)

    def refund():
        with db.session() as s:
            refunds.refund_order(s, finance, order.id, gateway, settings=settings, reason="race", amount="10")

    threads = [
        run(lambda: usage.apply(db, finance, parse(data))),
        run(refund),
        run(lambda: post(db, order.customer_id, LedgerKind.ADJUSTMENT, CreditPool.PROMOTIONAL, 7_00)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    sums = ledger_sums(db)
    got = balance(db, order.customer_id)
    assert (got.paid, got.paid_value_cents) == sums[(order.customer_id, "paid")]
    assert got.promotional == sums[(order.customer_id, "promotional")][0]
    with db.session() as s:
        drawn = -s.scalar(select(func.sum(LedgerEntry.credits)).where(LedgerEntry.kind == LedgerKind.USAGE))
        refunded = s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == LedgerKind.REFUND))
    assert drawn == 60_00 and refunded == 1
