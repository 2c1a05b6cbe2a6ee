"""Revenue report figures: hand-checked on a small history, each filter, the URL, CSV and demo totals."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billing_core.bench import revenue as bench_revenue
from billing_core.bench import run as bench
from billing_core.core.exports import FORMULA_STARTS, to_csv_bytes
from billing_core.core.models import Customer, Invoice, InvoiceKind, Order, Refund
from billing_core.demo import seeding as demo
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.payments.simulated import Outcome, SimulatedGateway
from billing_core.pricing.catalog import DEFAULT_PRICING_FILE, parse_pricing, quote
from billing_core.revenue import charts, rollup
from billing_core.revenue import report as reports
from billing_core.revenue.report import Filters
from tests.helpers import ANALYST, make_customer

T = datetime(2026, 3, 2, 10, tzinfo=UTC)  # a Monday


class Clock:
    def __init__(self):
        self.now = T

    def __call__(self):
        return self.now


@pytest.fixture
def history(session, admin, support, finance, pricing, settings, db, monkeypatch):
    """Four real orders in the first week of March 2026, one the week before, and a partial refund."""
    clock = Clock()
    monkeypatch.setattr(orders, "utcnow", clock)
    monkeypatch.setattr(refunds, "utcnow", clock)
    gateway = SimulatedGateway(db)
    ana = make_customer(session, admin, email="ana@example.com", name="Ana", country="DE")
    bob = make_customer(session, admin, email="bob@example.com", name="Bob", country="US")
    cy = make_customer(session, admin, email="cy@example.com", name="Cy", country="GB")

    def order(customer, amount, method, created, paid_after=None):
        o = orders.create_order(
            session, admin, customer_id=customer.id, amount=amount, method=method, pricing=pricing, now=created
        )
        payment = gateway.create_payment(orders._payment_request(session, o))
        orders.attach_payment(session, admin, o.id, payment)
        if paid_after is not None:
            gateway.settle(payment.ref, Outcome.SUCCEED)
            clock.now = created + paid_after
            orders.complete_order(
                session, support, o.id, settings=settings, reason="paid", payment=gateway.fetch_status(payment.ref)
            )
        return o

    order(cy, "20", "stripe", T - timedelta(days=5), timedelta(minutes=5))  # previous week
    order(ana, "100", "stripe", T, timedelta(minutes=5))
    pro = order(ana, "500", "alipay", T + timedelta(days=1), timedelta(minutes=5))
    order(bob, "20", "airwallex", T + timedelta(days=1))  # never paid
    order(bob, "37.50", "stripe", T + timedelta(days=2, hours=10), timedelta(minutes=5))  # 20:05 UTC on the 4th
    clock.now = T + timedelta(days=3)
    refunds.refund_order(session, finance, pro.id, gateway, settings=settings, reason="partial", amount="50")
    session.rollback()
    return session


def fee(amount_cents, method, pricing):
    return quote(amount_cents, method, pricing).fee_cents


def week(**kw) -> Filters:
    return Filters(date(2026, 3, 1), date(2026, 3, 8), **kw)


def test_figures_match_hand_computed_values(history, pricing):
    r = reports.revenue_report(history, ANALYST, week())
    fees = fee(10000, "stripe", pricing) + fee(50000, "alipay", pricing) + fee(3750, "stripe", pricing)
    c = r.current
    assert (c.created, c.paid, c.amount_cents, c.fee_cents) == (4, 3, 63750, fees)
    assert c.total_cents == 63750 + fees
    assert (c.refund_count, c.refunded_cents, c.net_cents) == (1, 5000, 63750 + fees - 5000)
    assert c.success_rate == 0.75 and c.average_cents == 21250
    assert dict(zip(r.plans["plan"], r.plans["revenue_cents"], strict=True)) == {
        "study": 0,
        "standard": 10000,
        "pro": 50000,
        "max": 0,
        "custom": 3750,
    }
    assert r.plans.set_index("plan").loc["pro", "revenue_share"] == pytest.approx(50000 / 63750)
    assert r.plans.set_index("plan").loc["standard", "topup_share"] == pytest.approx(1 / 3)
    methods = r.methods.set_index("method")
    assert methods["revenue_cents"].to_dict() == {"stripe": 13750, "airwallex": 0, "alipay": 50000}
    assert methods.loc["alipay", "fee_cents"] == fee(50000, "alipay", pricing)
    assert r.kinds.set_index("kind")["revenue_cents"].to_dict() == {"new": 13750, "returning": 50000}
    series = r.series
    assert list(zip(series["period"], series["plan"], series["revenue_cents"], strict=True)) == [
        (date(2026, 3, 2), "standard", 10000),
        (date(2026, 3, 3), "pro", 50000),
        (date(2026, 3, 4), "custom", 3750),
    ]
    assert list(r.top_customers["email"]) == ["ana@example.com", "bob@example.com"]  # Cy paid in February
    assert r.top_exact


def test_previous_period_of_the_same_length(history, pricing):
    r = reports.revenue_report(history, ANALYST, week())
    assert (r.previous.paid, r.previous.amount_cents, r.previous.created) == (1, 2000, 1)
    assert r.has_previous


def test_all_time_starts_on_the_first_order_and_compares_with_nothing(history):
    first = reports.first_day(history, ANALYST, "UTC")
    assert first == (T - timedelta(days=5)).date()
    link = {"range": "all"}
    filters = reports.filters_from_query_params(link, today=date(2026, 3, 10), first_days={"UTC": first})
    assert (filters.start, filters.end) == (first, date(2026, 3, 11))
    r = reports.revenue_report(history, ANALYST, filters)
    assert (r.start, r.first_day, r.has_previous) == (first, first, False)
    assert r.current.paid == 4


@pytest.mark.parametrize(
    ("start", "compared"),
    [(date(2000, 1, 1), False), (date(2026, 2, 25), False), (date(2026, 2, 26), True), (date(2026, 3, 1), True)],
)
def test_a_comparison_only_when_some_order_came_before(history, start, compared):
    r = reports.revenue_report(history, ANALYST, Filters(start, date(2026, 3, 8)))
    assert r.has_previous is compared


def test_all_time_without_orders_is_today_alone():
    assert reports.preset_range("all", date(2026, 11, 27)) == (date(2026, 11, 27), date(2026, 11, 28))
    assert reports.preset_range("all", date(2026, 11, 27), date(2025, 1, 5)) == (date(2025, 1, 5), date(2026, 11, 28))


@pytest.mark.parametrize(
    ("filters", "paid", "amount"),
    [
        (week(plans=("pro",)), 1, 50000),
        (week(plans=("standard", "custom")), 2, 13750),
        (week(methods=("stripe",)), 2, 13750),
        (week(countries=("US",)), 1, 3750),
        (week(countries=("DE", "US")), 3, 63750),
        (week(kind="new"), 2, 13750),
        (week(kind="returning"), 1, 50000),
        # In Shanghai Bob's 20:05 UTC payment on the 4th falls on the 5th.
        (Filters(date(2026, 3, 1), date(2026, 3, 5), tz="Asia/Shanghai"), 2, 60000),
        (Filters(date(2026, 3, 1), date(2026, 3, 5), tz="UTC"), 3, 63750),
    ],
)
def test_each_filter(history, filters, paid, amount):
    r = reports.revenue_report(history, ANALYST, filters)
    assert (r.current.paid, r.current.amount_cents) == (paid, amount)
    assert int(r.series["revenue_cents"].sum()) == amount


@pytest.mark.parametrize(("bucket", "period"), [("week", date(2026, 3, 2)), ("month", date(2026, 3, 1))])
def test_buckets_add_days_up(history, bucket, period):
    r = reports.revenue_report(history, ANALYST, week(bucket=bucket))
    assert set(r.series["period"]) == {period}
    assert int(r.series["revenue_cents"].sum()) == 63750


def test_weeks_are_cut_to_the_range_and_marked_partial(history):
    # Wednesday 25 Feb to Tuesday 3 Mar: two weeks, neither whole.
    r = reports.revenue_report(history, ANALYST, Filters(date(2026, 2, 25), date(2026, 3, 4), bucket="week"))
    periods = r.series[["period", "period_end", "partial"]].drop_duplicates()
    assert list(periods.itertuples(index=False, name=None)) == [
        (date(2026, 2, 25), date(2026, 3, 1), True),
        (date(2026, 3, 2), date(2026, 3, 3), True),
    ]
    assert int(r.series["revenue_cents"].sum()) == 2000 + 10000 + 50000


def test_a_whole_week_is_not_partial(history):
    r = reports.revenue_report(history, ANALYST, Filters(date(2026, 3, 2), date(2026, 3, 9), bucket="week"))
    assert set(r.series[["period", "period_end", "partial"]].itertuples(index=False, name=None)) == {
        (date(2026, 3, 2), date(2026, 3, 8), False)
    }
    days = reports.revenue_report(history, ANALYST, week())
    assert not days.series["partial"].any()


def test_bucket_in_range_cuts_months_too():
    assert reports.bucket_in_range(date(2026, 9, 17), "month", date(2026, 9, 3), date(2026, 12, 1)) == (
        date(2026, 9, 3),
        date(2026, 9, 30),
        True,
    )
    assert reports.bucket_in_range(date(2026, 10, 5), "month", date(2026, 9, 3), date(2026, 12, 1)) == (
        date(2026, 10, 1),
        date(2026, 10, 31),
        False,
    )
    assert reports.period_label(date(2026, 9, 3), date(2026, 9, 6), True, "week") == "2026-09-03 – 2026-09-06 (partial)"


def test_partial_weeks_are_drawn_lighter_inside_their_days(history):
    r = reports.revenue_report(history, ANALYST, Filters(date(2026, 2, 25), date(2026, 3, 4), bucket="week"))
    figure = charts.revenue_by_plan(r.series, "week")
    study = next(t for t in figure.data if t.name == "Study")  # Cy's $20 on 25 Feb: days 25 Feb – 1 Mar
    day = 86_400_000
    assert list(study.x) == ["2026-02-25"]
    assert list(study.offset) == [0.1 * 5 * day] and list(study.width) == [0.8 * 5 * day]
    assert list(study.marker.opacity) == [charts._PARTIAL_OPACITY]
    assert "partial week" in study.customdata[0][1]


def test_pricing_whatif_reprices_each_order_and_counts_refused_ones_as_lost(history, pricing):
    text = DEFAULT_PRICING_FILE.read_text().replace('fee_rate = "0.055"', 'fee_rate = "0.04"')
    proposal = parse_pricing(text.replace('min = "5.00"', 'min = "50.00"'))
    frame = reports.pricing_whatif(history, ANALYST, week(), proposal).set_index("plan")
    assert list(frame.index) == ["standard", "pro", "custom"]
    standard = frame.loc["standard"]
    assert (standard["orders"], standard["fee_now"], standard["fee_then"]) == (1, fee(10000, "stripe", pricing), 400)
    assert frame.loc["pro", "fee_diff"] == 0  # alipay's rate did not change
    custom = frame.loc["custom"]  # $37.50 is below the proposal's $50 minimum: lost
    assert (custom["refused"], custom["charged_then"], custom["charged_diff"]) == (1, 0, -custom["charged_now"])
    assert frame.loc["pro", "credits_diff"] == 0


def test_query_params_round_trip():
    today = date(2026, 11, 27)
    for filters in [
        reports.default_filters(today),
        Filters(date(2026, 1, 1), date(2026, 2, 1), plans=("pro", "max"), tz="Europe/Berlin", bucket="week"),
        Filters(*reports.preset_range("ytd", today), "ytd", methods=("alipay",), countries=("DE", "CN"), kind="new"),
        Filters(*reports.preset_range("all", today), "all", bucket="month"),
    ]:
        params = reports.filters_to_query_params(filters)
        assert all(isinstance(v, str) for v in params.values())
        back = reports.filters_from_query_params(params, today=today)
        assert back == filters and back.notes == ()
    assert reports.filters_to_query_params(reports.default_filters(today)) == {"range": "last_30"}


@pytest.mark.parametrize(
    "params",
    [
        {"range": "forever"},
        {"start": "2026-13-01", "end": "2026-02-01"},
        {"start": "2026-03-01", "end": "2026-02-01"},
        {"tz": "Mars/Olympus"},
        {"bucket": "hour"},
        {"kind": "vip"},
        {"plan": "pro,gold"},
        {"country": "Narnia"},
        {"country": "DE,XX"},
    ],
)
def test_bad_query_params_give_defaults_with_a_note(params):
    filters = reports.filters_from_query_params(params, today=date(2026, 11, 27))
    assert filters.notes
    assert filters.tz == "UTC" and filters.bucket in reports.BUCKETS and filters.kind in reports.KINDS
    assert filters.start < filters.end


def test_countries_in_a_link_may_be_names_or_codes():
    filters = reports.filters_from_query_params({"country": "Germany, us,España,de"}, today=date(2026, 11, 27))
    assert filters.countries == ("DE", "US", "ES") and filters.notes == ()


def test_quick_ranges():
    today = date(2026, 11, 27)
    assert reports.preset_range("last_7", today) == (date(2026, 11, 21), date(2026, 11, 28))
    assert reports.preset_range("this_month", today) == (date(2026, 11, 1), date(2026, 11, 28))
    assert reports.preset_range("last_month", today) == (date(2026, 10, 1), date(2026, 11, 1))
    assert reports.preset_range("ytd", today) == (date(2026, 1, 1), date(2026, 11, 28))
    assert reports.preset_range("last_12_months", today) == (date(2025, 12, 1), date(2026, 11, 28))


def test_csv_is_the_table_with_exact_amounts_and_no_formulas(history):
    r = reports.revenue_report(history, ANALYST, week())
    data = to_csv_bytes(reports.revenue_csv_rows(r))
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert [(row["period start"], row["total (USD)"], row["top-ups"]) for row in rows] == [
        ("2026-03-02", "100.00", "1"),
        ("2026-03-03", "500.00", "1"),
        ("2026-03-04", "37.50", "1"),
    ]
    cells = [cell for row in csv.reader(io.StringIO(data.decode("utf-8"))) for cell in row]
    assert not [c for c in cells if c.startswith(FORMULA_STARTS)]
    assert to_csv_bytes([{"name": "=HYPERLINK(1)"}]).endswith(b"'=HYPERLINK(1)\r\n")


def test_the_csv_says_which_filters_made_it_in_its_name_and_header(history):
    filters = Filters(
        date(2026, 2, 26), date(2026, 3, 5), plans=("pro",), countries=("DE",), kind="returning", bucket="week"
    )
    filters = replace(filters, tz="Europe/Berlin", methods=("alipay",))
    r = reports.revenue_report(history, ANALYST, filters)
    assert reports.csv_file_name(r) == (
        "revenue_2026-02-26_2026-03-04_week_Europe-Berlin_plan-pro_method-alipay_country-DE_returning.csv"
    )
    [row] = list(csv.DictReader(io.StringIO(to_csv_bytes(reports.revenue_csv_rows(r)).decode("utf-8"))))
    assert row["period start"] == "2026-03-02" and row["period end"] == "2026-03-04"
    assert row["partial period"] == "yes" and row["pro (USD)"] == "500.00"
    assert (row["time zone"], row["plans"], row["methods"], row["countries"], row["customers"]) == (
        "Europe/Berlin",
        "pro",
        "alipay",
        "DE",
        "returning",
    )
    everything = reports.revenue_report(history, ANALYST, week())
    assert reports.csv_file_name(everything) == "revenue_2026-03-01_2026-03-07_day_UTC.csv"
    assert reports.revenue_csv_rows(everything)[0]["plans"] == "all"


@pytest.mark.slow
def test_totals_agree_with_paid_orders_and_invoices_on_demo_data(db, admin):
    demo.seed(db, orders=4000, seed=3, actor=admin, replace=True)
    rollup.rebuild(db, admin)
    filters = Filters(date(2025, 6, 1), date(2026, 6, 1), tz="Europe/Berlin")
    start, end = reports.utc_bounds(filters)
    with db.session() as s:
        r = reports.revenue_report(s, ANALYST, filters)
        paid = s.execute(
            select(
                func.count(), func.sum(Order.amount_cents), func.sum(Order.fee_cents), func.sum(Order.total_cents)
            ).where(Order.paid_at >= start, Order.paid_at < end, Order.sandbox.is_(False))
        ).one()
        invoiced = s.execute(
            select(
                func.count(),
                func.sum(Invoice.subtotal_cents),
                func.sum(Invoice.fee_cents),
                func.sum(Invoice.total_cents),
            )
            .where(Invoice.kind == InvoiceKind.INVOICE, Invoice.sandbox.is_(False))
            .where(Invoice.issued_at >= start, Invoice.issued_at < end)
        ).one()
        refunded = s.scalar(
            select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
                Refund.created_at >= start, Refund.created_at < end
            )
        )
    c = r.current
    assert c.paid > 1000
    assert (c.paid, c.amount_cents, c.fee_cents, c.total_cents) == tuple(paid) == tuple(invoiced)
    assert c.refunded_cents == refunded
    assert int(r.series["revenue_cents"].sum()) == c.amount_cents


def _top_by_orders(session, first_month: date, last_month: date) -> list[tuple]:
    """The ten best customers of the months straight from the orders: (email, top-ups, total, amount)."""
    start = datetime.combine(first_month, datetime.min.time(), UTC)
    end = datetime.combine(reports._add_months(last_month, 1), datetime.min.time(), UTC)
    rows = session.execute(
        select(
            Order.customer_id,
            func.count(),
            func.sum(Order.total_cents),
            func.sum(Order.amount_cents),
        )
        .where(Order.paid_at >= start, Order.paid_at < end, Order.sandbox.is_(False))
        .group_by(Order.customer_id)
    ).all()
    best = sorted(rows, key=lambda r: (-r[2], r[0]))[: reports.TOP_CUSTOMERS]
    emails = dict(session.execute(select(Customer.id, Customer.email)).all())
    return [(emails[r[0]], int(r[1]), int(r[2]), int(r[3])) for r in best]


@pytest.mark.slow
def test_top_customers_are_exact_on_every_path(db, admin, monkeypatch):
    """Month bound, lifetime bound and grouping all give the ten that the orders give, ties included."""
    demo.seed(db, orders=6000, seed=11, actor=admin)
    spans = [(date(2025, m, 1), date(2025, m + k, 1)) for m in (1, 4, 7) for k in (0, 1, 2, 5)]
    spans += [(date(2024, 11, 1), date(2026, 11, 1)), (date(2026, 10, 1), date(2026, 12, 1))]
    calls = Counter()
    real = reports._top_reaching
    monkeypatch.setattr(reports, "_top_reaching", lambda *a: calls.update(["lifetime"]) or real(*a))
    paths: set[str] = set()
    # Small per-month lists make the month bound fail; a tiny lifetime cap makes the lifetime path give up.
    for per_month, lifetime in ((100, 5000), (3, 5000), (3, 2)):
        monkeypatch.setattr(reports, "TOP_PER_MONTH", per_month)
        monkeypatch.setattr(reports, "TOP_CANDIDATES", per_month * 6)
        monkeypatch.setattr(reports, "TOP_LIFETIME_CANDIDATES", lifetime)
        with db.session() as s:
            for first, last in spans:
                calls.clear()
                top, proved = reports.top_customers(s, ANALYST, first, last)
                paths.add("grouped" if not proved else "lifetime" if calls["lifetime"] else "month")
                got = [(r.email, r.topups, r.total_cents, r.amount_cents) for r in top.itertuples()]
                assert got == _top_by_orders(s, first, last), (first, last, per_month, lifetime)
    assert paths == {"month", "lifetime", "grouped"}


@pytest.mark.slow
def test_the_revenue_benchmark_measures_each_size_beside_its_baseline(pg_database, monkeypatch):
    monkeypatch.setattr(bench_revenue, "BENCH_SQLITE_SIZES", (1_500,))
    monkeypatch.setattr(bench_revenue, "BENCH_POSTGRES_SIZES", (1_000,))
    monkeypatch.setattr(bench_revenue, "BENCH_POSTGRES_LARGE", 3_000)
    monkeypatch.setattr(bench_revenue, "BENCH_NAIVE_REPEAT_MAX", 2_000)  # the large size times its baseline once
    rows = list(bench_revenue.revenue_rows(bench.Options(postgres_url=pg_database.url, large=True)))
    assert [r.name for r in rows] == [
        f"revenue {figure} ({where})"
        for where in ("SQLite, 1,500", "PostgreSQL, 1,000", "PostgreSQL, 3,000")
        for figure in ("page data", "top customers")
    ]
    assert all(r.value > 0 and r.baseline > 0 and r.unit == "ms" for r in rows)
    assert len(list(bench_revenue.revenue_rows(bench.Options()))) == 2  # SQLite only, without a PostgreSQL URL
    with pg_database.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 3_000  # the last size seeded stays
