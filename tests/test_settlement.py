from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from billing_core.core.errors import PermissionDenied
from billing_core.core.models import AuditEvent, Invoice, LedgerEntry, Order, OrderStatus, SettlementImport
from billing_core.orders import lifecycle as orders
from billing_core.payments import PaymentState, PaymentStatus
from billing_core.pricing.catalog import Method
from billing_core.reconcile.settlement import (
    MAX_BYTES,
    SettlementError,
    Verdict,
    apply,
    parse_settlement,
    preview,
)
from tests.helpers import FINANCE, make_customer, make_order

FIXTURES = Path(__file__).parent / "fixtures" / "settlements"
AIRWALLEX = "airwallex_2026-11-20.csv"
ALIPAY = "alipay_2026-11-20.csv"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def order_as(session, admin, customer, pricing, public_id, amount, method, provider_ref=None, status=None):
    """An order with the public id (and payment reference) the sample file names."""
    order = make_order(session, admin, customer, pricing, amount=amount, method=method)
    if provider_ref:
        ref = PaymentStatus(method, provider_ref, PaymentState.PENDING, order.total_cents, "USD", order.created_at)
        orders.attach_payment(session, admin, order.id, ref)
    values = {"public_id": public_id} | ({"status": status} if status else {})
    session.execute(update(Order).where(Order.id == order.id).values(**values))
    session.commit()
    return order.id


@pytest.fixture
def airwallex_orders(session, admin, pricing):
    """The orders the Airwallex sample file settles (the fourth is paid for the wrong amount)."""
    customer = make_customer(session, admin)
    return {
        "by_both": order_as(
            session, admin, customer, pricing, "ord_7c1e0a9b3f5d2e41", "100", "airwallex", "int_hkdmr7xq2g5c1d8e9f0a"
        ),
        "by_ref": order_as(
            session, admin, customer, pricing, "ord_d41e6b0c9a2f7e35", "500", "airwallex", "int_hkdmr7xq2g5c1d8e9f0b"
        ),
        "by_id": order_as(session, admin, customer, pricing, "ord_0b6d4e2f8a1c9e73", "1500", "airwallex"),
        "wrong_amount": order_as(
            session, admin, customer, pricing, "ord_e2a8c6d0f4b1a935", "20", "airwallex", "int_hkdmr7xq2g5c1d8e9f0d"
        ),
        "expired": order_as(
            session,
            admin,
            customer,
            pricing,
            "ord_9f3b1d7e5c2a0b18",
            "250",
            "airwallex",
            "int_hkdmr7xq2g5c1d8e9f0e",
            status=OrderStatus.EXPIRED,
        ),
    }


def verdicts(shown):
    return {line.line: line.verdict for line in shown.lines}


# --- parsing (no database) ------------------------------------------------------------------------


def test_provider_is_told_apart_by_the_columns():
    assert parse_settlement(fixture(AIRWALLEX), AIRWALLEX).provider is Method.AIRWALLEX
    assert parse_settlement(fixture(ALIPAY), ALIPAY).provider is Method.ALIPAY


def test_amounts_are_read_exactly_to_cents_including_grouped_thousands():
    parsed = parse_settlement(fixture(AIRWALLEX), AIRWALLEX)
    assert [r.amount_cents for r in parsed.rows[:5]] == [10350, 51750, 155250, 2700, 25875]
    assert parsed.rows[2].net_cents == 149816


def test_headers_match_aliases_case_insensitively():
    data = b"TRANSACTION_ID,merchant order id,currency,gross amount,status\ntxn_1,ord_1,usd,20.70,settled\n"
    parsed = parse_settlement(data, "lower.csv", provider="airwallex")
    assert parsed.rows[0].order_public_id == "ord_1"
    assert parsed.rows[0].currency == "USD"
    assert parsed.rows[0].amount_cents == 2070


def test_malformed_rows_are_reported_with_line_numbers_and_the_rest_is_kept():
    parsed = parse_settlement(fixture("airwallex_broken_rows.csv"), "broken.csv")
    reasons = {m.line: m.reason for m in parsed.malformed}
    assert "bad amount '12,34.5'" in reasons[3]
    assert reasons[4] == "unknown currency 'USX'"
    assert reasons[5] == "empty transaction id"
    assert reasons[6] == "has 7 fields, the header has 9"
    assert "bad amount '=1+2'" in reasons[7]
    assert "two decimals" in reasons[9]
    assert [r.line for r in parsed.rows] == [2, 8]


def test_missing_required_column_is_named():
    with pytest.raises(SettlementError, match="missing the required column Amount"):
        parse_settlement(fixture("airwallex_missing_amount.csv"), "airwallex_missing_amount.csv")


def test_non_utf8_file_gets_a_clear_message():
    with pytest.raises(SettlementError, match="not UTF-8 text.*CSV UTF-8"):
        parse_settlement(fixture("alipay_gbk_2026-11-20.csv"), "alipay_gbk_2026-11-20.csv")


def test_utf8_with_bom_is_read():
    parsed = parse_settlement(b"\xef\xbb\xbf" + fixture(ALIPAY), ALIPAY)
    assert len(parsed.rows) == 5


def test_undetectable_provider_asks_for_it():
    with pytest.raises(SettlementError, match="choose the provider"):
        parse_settlement(b"id,amount\n1,2\n", "mystery.csv")


def test_oversized_file_is_refused_with_the_limit():
    with pytest.raises(SettlementError, match="the most accepted is 20 MB"):
        parse_settlement(b"x" * (MAX_BYTES + 1), "huge.csv")


def test_provider_other_than_airwallex_or_alipay_is_refused():
    with pytest.raises(SettlementError, match="Airwallex or Alipay"):
        parse_settlement(fixture(AIRWALLEX), AIRWALLEX, provider="stripe")


# --- preview and apply (both databases) -----------------------------------------------------------


def test_preview_matches_by_reference_and_by_order_id(session, airwallex_orders):
    shown = preview(session, FINANCE, parse_settlement(fixture(AIRWALLEX), AIRWALLEX))
    assert verdicts(shown) == {
        2: Verdict.WILL_COMPLETE,  # order id and payment intent
        3: Verdict.WILL_COMPLETE,  # payment intent only
        4: Verdict.WILL_COMPLETE,  # order id only
        5: Verdict.MISMATCH,
        6: Verdict.WILL_COMPLETE,  # expired orders whose payment arrived still complete
        7: Verdict.NOT_FOUND,
        8: Verdict.NOT_A_PAYMENT,
    }
    by_line = {line.line: line for line in shown.lines}
    assert by_line[3].order_id == airwallex_orders["by_ref"]
    assert by_line[4].order_id == airwallex_orders["by_id"]
    assert by_line[5].reason == "paid $27.00, but the order's total is $20.70"
    assert shown.previously_imported is None


def test_apply_completes_matching_orders_once_with_the_provider_reference(db, finance, settings, airwallex_orders):
    parsed = parse_settlement(fixture(AIRWALLEX), AIRWALLEX)
    seen = []
    result = apply(db, finance, settings, parsed, progress=lambda done, total: seen.append((done, total)))
    assert len(result.completed) == 4 and not result.errors
    assert seen[-1] == (4, 4)
    with db.session() as s:
        order = s.get(Order, airwallex_orders["by_id"])
        assert order.status is OrderStatus.PAID
        assert order.provider_ref == "txn_hkdm7p2q4v9b8c3f"
        assert order.completion_reason == f"settlement file {AIRWALLEX} line 4"
        assert order.completed_by == finance.email
        assert s.get(Order, airwallex_orders["wrong_amount"]).status is OrderStatus.PENDING
        assert count(s, LedgerEntry) == 4
        assert count(s, Invoice) == 4
        record = s.scalar(select(SettlementImport))
        assert (record.provider, record.completed, record.rows) == ("airwallex", 4, 7)
        assert record.summary["counts"]["mismatch"] == 1
        assert count(s, AuditEvent, AuditEvent.action == "settlement.import") == 1


def test_importing_the_same_file_twice_changes_nothing(db, finance, settings, airwallex_orders):
    data = fixture(AIRWALLEX)
    apply(db, finance, settings, parse_settlement(data, AIRWALLEX))
    with db.session() as s:
        shown = preview(s, FINANCE, parse_settlement(data, AIRWALLEX))
        assert shown.counts[Verdict.WILL_COMPLETE] == 0
        assert shown.counts[Verdict.ALREADY_PAID] == 4
        assert shown.previously_imported.startswith("This file was already imported on ")
        assert f"by {finance.email}" in shown.previously_imported
    again = apply(db, finance, settings, parse_settlement(data, AIRWALLEX))
    assert again.completed == [] and again.import_id is None
    with db.session() as s:
        assert count(s, LedgerEntry) == 4
        assert count(s, Invoice) == 4
        assert count(s, SettlementImport) == 1


def test_alipay_rows_match_by_partner_transaction_id(db, session, admin, finance, settings, pricing):
    customer = make_customer(session, admin)
    study = order_as(session, admin, customer, pricing, "ord_3a5c7e9b1d2f4a68", "20", "alipay")
    max_plan = order_as(session, admin, customer, pricing, "ord_6d8f0b2c4e5a7d91", "1500", "alipay")
    stripe_order = order_as(session, admin, customer, pricing, "ord_4b6d8f0a2c3e5b79", "100", "stripe")
    parsed = parse_settlement(fixture(ALIPAY), ALIPAY)
    shown = preview(session, FINANCE, parsed)
    assert verdicts(shown) == {
        2: Verdict.WILL_COMPLETE,
        3: Verdict.MISMATCH,
        4: Verdict.NOT_FOUND,
        5: Verdict.WILL_COMPLETE,
        6: Verdict.NOT_A_PAYMENT,
    }
    assert "placed with Stripe, not Alipay" in shown.lines[1].reason
    result = apply(db, finance, settings, parsed)
    assert sorted(result.completed) == ["ord_3a5c7e9b1d2f4a68", "ord_6d8f0b2c4e5a7d91"]
    with db.session() as s:
        assert s.get(Order, study).provider_ref == "2026112022001412340501234567"
        assert s.get(Order, max_plan).status is OrderStatus.PAID
        assert s.get(Order, stripe_order).status is OrderStatus.PENDING


def test_support_may_not_import_a_settlement_file(db, support, settings, airwallex_orders):
    with pytest.raises(PermissionDenied):
        apply(db, support, settings, parse_settlement(fixture(AIRWALLEX), AIRWALLEX))
    with db.session() as s:
        assert count(s, Order, Order.status == OrderStatus.PAID) == 0
        assert count(s, SettlementImport) == 0


def test_formula_cells_stay_text_and_are_defused_in_the_preview_csv(session, airwallex_orders):
    parsed = parse_settlement(fixture("airwallex_broken_rows.csv"), "broken.csv")
    shown = preview(session, FINANCE, parsed)
    line = next(line for line in shown.lines if line.line == 8)
    assert line.verdict is Verdict.NOT_FOUND
    assert line.order_public_id == '=HYPERLINK("http://evil.example/x","click")'
    exported = shown.to_csv().decode("utf-8")
    assert "'=HYPERLINK(" in exported
    assert "\n=" not in exported and ",=" not in exported
    assert {line.line: line.verdict for line in shown.lines}[7] is Verdict.MALFORMED


def test_a_row_whose_reference_and_order_id_disagree_is_a_mismatch(session, admin, pricing):
    customer = make_customer(session, admin)
    order_as(session, admin, customer, pricing, "ord_aaaaaaaaaaaaaaaa", "20", "airwallex", "int_first")
    order_as(session, admin, customer, pricing, "ord_bbbbbbbbbbbbbbbb", "20", "airwallex")
    data = (
        b"Transaction ID,Merchant Order ID,Payment Intent ID,Currency,Amount\n"
        b"txn_1,ord_bbbbbbbbbbbbbbbb,int_first,USD,20.70\n"
        b"txn_2,ord_bbbbbbbbbbbbbbbb,,USD,20.70\n"
        b"txn_3,ord_bbbbbbbbbbbbbbbb,,USD,20.70\n"
    )
    shown = preview(session, FINANCE, parse_settlement(data, "x.csv", provider=Method.AIRWALLEX))
    assert "belongs to order ord_aaaaaaaaaaaaaaaa" in shown.lines[0].reason
    assert [line.verdict for line in shown.lines[1:]] == [Verdict.WILL_COMPLETE, Verdict.MISMATCH]
    assert shown.lines[2].reason == "line 3 already settles this order (paid twice?)"


def test_preview_queries_are_batched_not_one_per_row(db, session, admin, pricing):
    from sqlalchemy import event

    customer = make_customer(session, admin)
    header = "Transaction ID,Merchant Order ID,Payment Intent ID,Currency,Amount\n"
    body = "".join(f"txn_{i},ord_{i:016x},int_{i},USD,20.70\n" for i in range(1200))
    parsed = parse_settlement((header + body).encode(), "many.csv", provider="airwallex")
    make_order(session, admin, customer, pricing, amount="20", method="airwallex")
    statements = []

    def seen(*args):
        statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        shown = preview(session, FINANCE, parsed)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert shown.counts[Verdict.NOT_FOUND] == 1200
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # 2,400 references in 5 IN lists, 1,200 order ids in 3, and one look-up of earlier imports.
    assert len(selects) == 9, len(selects)


def test_command_line_previews_unless_told_to_apply(db, admin, airwallex_orders, monkeypatch):
    from argparse import Namespace

    from billing_core.cli.settlement import cli_settlement

    monkeypatch.setenv("DATABASE_URL", db.url)
    args = Namespace(file=str(FIXTURES / AIRWALLEX), provider=None, apply=False, csv=None)
    lines = []
    assert cli_settlement(args, admin, out=lines.append) == 0
    assert lines[0] == "4 will complete, 1 mismatch, 1 not found, 1 not a payment"
    assert "--apply to complete 4 orders" in lines[-1]
    with db.session() as s:
        assert count(s, Order, Order.status == OrderStatus.PAID) == 0
    lines.clear()
    assert cli_settlement(Namespace(**(vars(args) | {"apply": True})), admin, out=lines.append) == 0
    assert "Completed 4 orders" in lines[-1]
