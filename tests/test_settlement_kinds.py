"""A row's kind comes from the file: only payments complete orders; refunds are reported and
matched to the refunds in our books; a file that does not say completes nothing until a person does."""

from sqlalchemy import func, select, update

from billing_core.models import LedgerEntry, Order, OrderStatus
from billing_core.settlement import Verdict, apply, parse_settlement, preview
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
