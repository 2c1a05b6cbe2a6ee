"""Each provider's report, in the shape its dashboard or SFTP server exports it (fixtures written here
from the published formats; see billing_core/reconcile/settlement_formats.py), is recognised, read and previewed."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing_core.core.models import LedgerEntry, Order, OrderStatus, SettlementImport
from billing_core.reconcile.settlement import SettlementError, Verdict, apply, parse_settlement, preview
from tests.helpers import FINANCE, make_customer
from tests.test_settlement import order_as

FIXTURES = Path(__file__).parent / "fixtures" / "settlements"
W, DONE, FLAG, SKIP, BAD = (
    Verdict.WILL_COMPLETE,
    Verdict.ALREADY_PAID,
    Verdict.REFUND_NOT_IN_BOOKS,
    Verdict.NOT_A_PAYMENT,
    Verdict.MISMATCH,
)
# file -> (the report recognised, what else the preview says was recognised, (line, verdict) per row)
PROFILES = {
    "alipay_sftp_settlement_20261120.txt": (
        "Alipay SFTP settlement file",
        "pipe-separated",
        [(2, W), (3, W), (4, FLAG)],
    ),
    "alipay_sftp_transaction_20261120.txt": (
        "Alipay SFTP transaction file",
        "pipe-separated",
        [(3, W), (4, W), (5, FLAG)],
    ),
    "alipay_hk_website_20261120.csv": (
        "Alipay HK / website settlement file",
        "comma-separated",
        [(2, W), (3, FLAG), (4, FLAG)],
    ),
    "antom_settlement_details_20261120.csv": (
        "Antom settlement details report",
        "times without an offset read as UTC",
        [(2, W), (3, W), (4, FLAG)],
    ),
    "alipay_trade_bill_20261120.zip": (
        "Alipay domestic trade bill (业务明细)",
        "业务明细.csv from the zip · GBK/GB18030 · no currency column: CNY implied",
        [(6, BAD), (7, BAD)],
    ),
    "airwallex_settlement_report_20261120.zip": (
        "Airwallex settlement details",
        "settlement_report_details_stl_20261120_hk_01.csv from the zip · UTF-8 · account header block",
        [(10, W), (11, W), (12, FLAG), (13, SKIP)],
    ),
    "airwallex_settlement_details_20261120.xlsx": (
        "Airwallex settlement details",
        "Excel sheet 'Settlement Details' · account header block (time zone UTC+02:00, 2026/11/20 to 2026/11/20)",
        [(10, W), (11, W), (12, FLAG), (13, SKIP)],
    ),
    "airwallex_payment_activity_20261120.csv": (
        "Airwallex payment activity export",
        "comma-separated · UTF-8",
        [(2, W), (2, FLAG), (3, W), (4, SKIP)],  # line 2 paid $103.50 and $20.00 of it was refunded
    ),
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def unpaid_orders(session, admin, pricing):
    """The four orders the fixtures settle: two by Alipay, two by Airwallex (with their payment intents)."""
    customer = make_customer(session, admin)
    return {
        "a": order_as(session, admin, customer, pricing, "ord_a1a1a1a1a1a1a1a1", "20", "alipay"),
        "b": order_as(session, admin, customer, pricing, "ord_b2b2b2b2b2b2b2b2", "1500", "alipay"),
        "c": order_as(
            session, admin, customer, pricing, "ord_c3c3c3c3c3c3c3c3", "100", "airwallex", "int_hkdmc3c3c3c3c3c3c3c3"
        ),
        "d": order_as(
            session, admin, customer, pricing, "ord_d4d4d4d4d4d4d4d4", "500", "airwallex", "int_hkdmd4d4d4d4d4d4d4d4"
        ),
    }


@pytest.mark.parametrize("name", list(PROFILES))
def test_each_report_is_recognised_and_previewed_row_by_row(session, unpaid_orders, name):
    report, also, expected = PROFILES[name]
    parsed = parse_settlement(fixture(name), name)
    assert parsed.profile.name == report
    assert parsed.recognised.startswith(report) and also in parsed.recognised
    assert parsed.malformed == ()
    shown = preview(session, FINANCE, parsed)
    assert [(line.line, line.verdict) for line in shown.lines] == expected
    assert all(line.reason for line in shown.lines)


def test_times_without_an_offset_are_read_in_the_files_stated_time_zone():
    for name in ("airwallex_settlement_report_20261120.zip", "airwallex_settlement_details_20261120.xlsx"):
        first = parse_settlement(fixture(name), name).rows[0]
        assert f"{first.occurred_at:%Y-%m-%d %H:%M:%S %Z}" == "2026-11-20 09:14:03 UTC"  # 11:14:03 at UTC+02:00
    hk = parse_settlement(fixture("alipay_hk_website_20261120.csv"), "hk.csv").rows[0]
    assert f"{hk.occurred_at:%Y-%m-%d %H:%M:%S}" == "2026-11-20 02:02:11"  # 11/20/2026 10:02:11 Beijing time
    antom = parse_settlement(fixture("antom_settlement_details_20261120.csv"), "antom.csv").rows
    assert [f"{r.occurred_at:%H:%M:%S}" for r in antom] == ["02:02:11", "12:31:20", "00:12:40"]  # own offsets


def test_amounts_are_signed_major_units_read_exactly():
    rows = parse_settlement(fixture("airwallex_settlement_details_20261120.xlsx"), "x.xlsx").rows
    assert [(r.amount_cents, r.net_cents) for r in rows] == [
        (10350, 9988),
        (51750, 49939),
        (2000, -2000),
        (-51750, -53250),
    ]
    bill = parse_settlement(fixture("alipay_trade_bill_20261120.zip"), "bill.zip").rows
    assert [(r.kind.value, r.amount_cents, r.net_cents) for r in bill] == [
        ("payment", 2060, 2060),
        ("refund", 2060, -2060),
    ]
    assert bill[0].transaction_id == "2026112022001412340501230001"  # the trailing tab is gone


def test_a_cny_bill_row_against_a_usd_order_is_a_mismatch_with_both_amounts_never_converted(session, unpaid_orders):
    shown = preview(session, FINANCE, parse_settlement(fixture("alipay_trade_bill_20261120.zip"), "bill.zip"))
    assert shown.lines[0].reason == (
        "paid 20.60 CNY, but the order is $20.60; amounts in another currency are not converted"
    )
    assert (shown.lines[0].amount_cents, shown.lines[0].currency) == (2060, "CNY")


def test_the_balance_activity_report_is_refused_with_a_sentence():
    with pytest.raises(SettlementError, match="Airwallex balance activity report: it has one row per settlement"):
        parse_settlement(fixture("airwallex_balance_activity_20261120.csv"), "balance.csv")


def test_the_settlement_report_zip_applied_twice_completes_its_orders_once(db, settings, unpaid_orders):
    name = "airwallex_settlement_report_20261120.zip"
    first = apply(db, FINANCE, settings, parse_settlement(fixture(name), name))
    assert sorted(first.completed) == ["ord_c3c3c3c3c3c3c3c3", "ord_d4d4d4d4d4d4d4d4"]
    xlsx = "airwallex_settlement_details_20261120.xlsx"  # the same batch, as the older accounts get it
    again = [apply(db, FINANCE, settings, parse_settlement(fixture(n), n)) for n in (name, xlsx)]
    assert [r.completed for r in again] == [[], []]
    assert [line.verdict for line in again[1].preview.lines[:2]] == [DONE, DONE]
    with db.session() as s:
        assert s.get(Order, unpaid_orders["c"]).status is OrderStatus.PAID
        assert s.get(Order, unpaid_orders["c"]).provider_ref == "txn_hkdm7p2q4v9bc3c3"
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 2
        record = s.scalar(select(SettlementImport).order_by(SettlementImport.id))
        assert record.summary["refunds_not_in_books"][0]["line"] == 12
        assert record.summary["recognised"].startswith("Airwallex settlement details")
