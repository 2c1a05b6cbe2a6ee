"""A row's kind comes from the file: only payments complete orders; refunds are reported and
matched to the refunds in our books; a file that does not say completes nothing until a person does."""

import pytest
from sqlalchemy import func, select, update

from billing_core.core.models import LedgerEntry, Order, OrderStatus, Refund, RefundStatus, SettlementImport
from billing_core.orders import lifecycle as orders
from billing_core.reconcile.settlement import RowKind, SettlementError, Verdict, apply, parse_settlement, preview
from tests.helpers import FINANCE, make_customer, make_order

HK_REFUND = (
    b"Partner_transaction_id,Transaction_id,Amount,Fee,Settlement,Currency,Payment_time,Settlement_time,"
    b"Issue,Product,Type,Status,Remarks,Original_partner_transaction_ID\n"
    b"ord_1111111111111111,2026112122001412340501239999,20.60,0.00,-20.60,USD,11/21/2026 08:12:40,"
    b"11/22/2026 10:00:00,ALIPAYCN,CASHIER_PAY,REFUND,SETTLED,,ord_1111111111111111\n"
)


def unpaid_order(session, admin, pricing, public_id="ord_1111111111111111"):
    customer = make_customer(session, admin)
    order = make_order(session, admin, customer, pricing, amount="20", method="alipay")
    session.execute(update(Order).where(Order.id == order.id).values(public_id=public_id))
    session.commit()
    return order.id


def test_a_refund_row_matching_an_unpaid_orders_id_and_amount_never_completes_it(db, session, admin, settings, pricing):
    order_id = unpaid_order(session, admin, pricing)
    assert session.get(Order, order_id).total_cents == 2060
    parsed = parse_settlement(HK_REFUND, "alipay_hk_refund.csv")
    shown = preview(session, FINANCE, parsed)
    assert [line.verdict for line in shown.lines] != [Verdict.WILL_COMPLETE]
    assert shown.to_complete == []
    result = apply(db, FINANCE, settings, parsed)
    assert result.completed == []
    with db.session() as s:
        assert s.get(Order, order_id).status is OrderStatus.PENDING
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def paid_order(session, admin, settings, pricing, public_id="ord_1111111111111111"):
    order_id = unpaid_order(session, admin, pricing, public_id)
    orders.complete_order(session, admin, order_id, settings=settings, reason="test", manual_reference="2026x")
    return order_id


def test_a_provider_refund_without_a_refund_in_our_books_is_flagged_and_changes_nothing(
    db, session, admin, settings, pricing
):
    order_id = paid_order(session, admin, settings, pricing)
    parsed = parse_settlement(HK_REFUND, "alipay_hk_refund.csv")
    shown = preview(session, FINANCE, parsed)
    assert [line.verdict for line in shown.lines] == [Verdict.REFUND_NOT_IN_BOOKS]
    assert shown.lines[0].reason.startswith(
        "the provider refunded $20.60 of order ord_1111111111111111, but our books have no such refund"
    )
    result = apply(db, FINANCE, settings, parsed)
    assert result.completed == []
    with db.session() as s:
        assert s.get(Order, order_id).status is OrderStatus.PAID
        assert s.scalar(select(func.count()).select_from(Refund)) == 0
        record = s.scalar(select(SettlementImport))
        assert record.summary["refunds_not_in_books"] == [
            {"line": 2, "order": "ord_1111111111111111", "reason": shown.lines[0].reason}
        ]


def test_a_provider_refund_matches_the_refund_in_our_books_once(session, admin, settings, pricing):
    order_id = paid_order(session, admin, settings, pricing)
    session.add(
        Refund(
            order_id=order_id,
            amount_cents=2060,
            credits=2000,
            created_by=FINANCE.email,
            reason="customer asked",
            status=RefundStatus.SUCCEEDED,
            idempotency_key="billing-ops-refund-x",
        )
    )
    session.commit()
    twice = HK_REFUND + HK_REFUND.splitlines(keepends=True)[1]
    shown = preview(session, FINANCE, parse_settlement(twice, "alipay_hk_refund.csv"))
    assert [line.verdict for line in shown.lines] == [Verdict.REFUND_IN_BOOKS, Verdict.REFUND_NOT_IN_BOOKS]


NO_KIND = b"Transaction ID,Merchant Order ID,Currency,Amount\ntxn_1,ord_1111111111111111,USD,20.60\n"


def test_a_file_without_a_kind_column_completes_nothing_until_the_person_says(db, session, admin, settings, pricing):
    order_id = unpaid_order(session, admin, pricing, "ord_1111111111111111")
    session.execute(update(Order).where(Order.id == order_id).values(method="airwallex"))
    session.commit()
    unstated = parse_settlement(NO_KIND, "plain.csv")
    assert unstated.needs_kind and "no kind column: kind not stated" in unstated.recognised
    assert [line.verdict for line in preview(session, FINANCE, unstated).lines] == [Verdict.KIND_NOT_STATED]
    assert apply(db, FINANCE, settings, unstated).completed == []
    as_refunds = parse_settlement(NO_KIND, "plain.csv", kind="refund")
    assert [line.verdict for line in preview(session, FINANCE, as_refunds).lines] == [Verdict.REFUND_NOT_IN_BOOKS]
    as_payments = parse_settlement(NO_KIND, "plain.csv", kind="payment")
    assert not as_payments.needs_kind and "rows taken as payments" in as_payments.recognised
    assert apply(db, FINANCE, settings, as_payments).completed == ["ord_1111111111111111"]
    with db.session() as s:
        assert s.get(Order, order_id).status is OrderStatus.PAID


def test_a_kind_column_wins_over_what_the_person_says(session, admin, pricing):
    unpaid_order(session, admin, pricing)
    parsed = parse_settlement(HK_REFUND, "alipay_hk_refund.csv", kind="payment")
    assert parsed.rows[0].kind is RowKind.REFUND
    assert preview(session, FINANCE, parsed).to_complete == []


def test_a_kind_other_than_payment_or_refund_is_refused():
    with pytest.raises(SettlementError, match="payments or refunds, not 'chargeback'"):
        parse_settlement(NO_KIND, "plain.csv", kind="chargeback")


def test_the_command_line_takes_the_kind(db, session, admin, pricing, monkeypatch, tmp_path):
    from argparse import Namespace

    from billing_core.cli.settlement import cli_settlement

    order_id = unpaid_order(session, admin, pricing)
    session.execute(update(Order).where(Order.id == order_id).values(method="airwallex"))
    session.commit()
    monkeypatch.setenv("DATABASE_URL", db.url)
    path = tmp_path / "plain.csv"
    path.write_bytes(NO_KIND)
    args = Namespace(file=str(path), provider=None, kind=None, apply=True, csv=None)
    lines = []
    assert cli_settlement(args, admin, out=lines.append) == 0
    assert "Run again with --kind payment or --kind refund." in lines[1]
    assert "Completed 0 orders" in lines[-1]
    lines.clear()
    assert cli_settlement(Namespace(**(vars(args) | {"kind": "payment"})), admin, out=lines.append) == 0
    assert "Completed 1 orders" in lines[-1]
    with db.session() as s:
        assert s.get(Order, order_id).status is OrderStatus.PAID
