"""The Revenue page through AppTest: chart data, filters in the URL, and fresh figures after a payment."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from billing_core.access.roles import Actor, Role
from billing_core.core.config import Settings
from billing_core.orders import lifecycle as orders
from billing_core.pricing.catalog import load_pricing
from pages._guard import REFUSED_TITLE
from tests.helpers import make_customer, paid

APP = Path(__file__).resolve().parent.parent / "app.py"
ADMIN = Actor("ada@company.test", Role.ADMIN, "Ada Admin")
SUPPORT = Actor("sam@company.test", Role.SUPPORT, "Sam Support")


def shown(text: str) -> str:
    """What a person reads: messages from data are markdown-escaped (pages._text.plain)."""
    return re.sub(r"\\(.)", r"\1", text)


@pytest.fixture
def app_env(monkeypatch, tmp_path):
    def configure(database_url: str, role: str = "analyst") -> None:
        for var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "BILLING_PRICING_FILE", "BILLING_REPORT_TIMEZONES"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("BILLING_LOCAL_MODE", "1")
        monkeypatch.setenv("BILLING_LOCAL_ROLE", role)

    return configure


def open_revenue(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    # The page is a function registered with st.navigation; AppTest.switch_page only finds file pages.
    at._page_hash = next(h for h, i in at._registered_pages.items() if i.get("url_pathname") == "revenue")
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Revenue"
    return at


def chart_totals(at: AppTest) -> dict[str, float]:
    """Dollars per plan read back from the stacked chart's own plotly spec."""
    [chart] = [c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["layout"].get("barmode") == "stack"]
    return {trace["name"]: round(sum(trace["y"]), 2) for trace in json.loads(chart.proto.spec)["data"]}


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture
def shop(db):
    """Two paid top-ups today (Standard by Stripe, Pro by Alipay) and one pending Max order."""
    pricing = load_pricing()
    settings = Settings(database_url=db.url)
    with db.session() as s:
        customer = make_customer(s, ADMIN)
        for amount, method in (("100", "stripe"), ("500", "alipay")):
            order = orders.create_order(
                s, ADMIN, customer_id=customer.id, amount=amount, method=method, pricing=pricing
            )
            orders.complete_order(s, SUPPORT, order.id, settings=settings, reason="paid", payment=paid(order))
        pending = orders.create_order(
            s, ADMIN, customer_id=customer.id, amount="1500", method="stripe", pricing=pricing
        )
    return settings, pending


def test_the_chart_shows_each_plans_revenue(app_env, db, shop):
    app_env(db.url)
    at = open_revenue()
    assert chart_totals(at) == {"Standard": 100.0, "Pro": 500.0}
    shown = metrics(at)
    assert shown["Top-up revenue"] == "$600.00"
    assert shown["Paid top-ups"] == "2"
    assert shown["Payment success"] == "66.7%"
    table = at.dataframe[0].value
    assert list(table["Total"]) == ["$600.00"]
    assert dict(at.query_params) == {"range": "last_30"}


def test_filters_go_into_the_url_and_back(app_env, db, shop):
    app_env(db.url)
    at = open_revenue()
    at.multiselect(key="rev_plans").set_value(["pro"]).run()
    at.segmented_control(key="rev_bucket").set_value("week").run()
    assert at.query_params["plan"] == "pro" and at.query_params["bucket"] == "week"
    assert chart_totals(at) == {"Pro": 500.0}

    shared = open_revenue({"plan": "standard", "method": "stripe", "tz": "Asia/Shanghai", "range": "last_7"})
    assert shared.multiselect(key="rev_plans").value == ["standard"]
    assert shared.selectbox(key="rev_tz").value == "Asia/Shanghai"
    assert metrics(shared)["Top-up revenue"] == "$100.00"


def test_a_bad_link_shows_a_note_and_defaults(app_env, db, shop):
    app_env(db.url)
    at = open_revenue({"range": "forever", "bucket": "hour"})
    notes = [shown(w.value) for w in at.warning]
    assert any("Range 'forever' is unknown" in n for n in notes)
    assert at.query_params["range"] == "last_30"
    assert metrics(at)["Top-up revenue"] == "$600.00"


def test_a_completed_order_shows_on_the_next_run(app_env, db, shop):
    settings, pending = shop
    app_env(db.url)
    at = open_revenue()
    assert metrics(at)["Top-up revenue"] == "$600.00"
    with db.session() as s:
        orders.complete_order(s, SUPPORT, pending.id, settings=settings, reason="paid", payment=paid(pending))
    at.run()
    assert metrics(at)["Top-up revenue"] == "$2,100.00"
    assert chart_totals(at) == {"Standard": 100.0, "Pro": 500.0, "Max": 1500.0}


def test_support_may_not_open_revenue(app_env, db):
    app_env(db.url, role="support")
    at = AppTest.from_file(APP, default_timeout=60).run()
    [(page_hash, info)] = [(h, i) for h, i in at._registered_pages.items() if i.get("url_pathname") == "revenue"]
    assert info["page_name"] == REFUSED_TITLE  # the address answers with a refusal, not the page
    at._page_hash = page_hash
    at.run()
    assert [t.value for t in at.title] == [REFUSED_TITLE]
    assert not at.metric


def test_days_older_than_the_range_are_left_out(app_env, db, shop):
    app_env(db.url)
    start = (datetime.now(UTC) - timedelta(days=400)).date()
    at = open_revenue({"start": start.isoformat(), "end": (start + timedelta(days=10)).isoformat()})
    assert at.selectbox(key="rev_range").value == "custom"
    assert metrics(at)["Top-up revenue"] == "$0.00"
    assert [i.value for i in at.info] == ["No paid top-ups match these filters."]


def test_large_headline_amounts_are_compact_with_the_exact_amount_in_the_tooltip(app_env, db):
    pricing = load_pricing()
    settings = Settings(database_url=db.url)
    with db.session() as s:
        customer = make_customer(s, ADMIN)
        for _ in range(7):  # 7 × $1,500 = $10,500: "$10,500.00" does not fit a tile at 1366 px
            order = orders.create_order(
                s, ADMIN, customer_id=customer.id, amount="1500", method="stripe", pricing=pricing
            )
            orders.complete_order(s, SUPPORT, order.id, settings=settings, reason="paid", payment=paid(order))
    app_env(db.url)
    at = open_revenue()
    [revenue] = [m for m in at.metric if m.label == "Top-up revenue"]
    assert revenue.value == "$10.5K"
    assert "Exactly $10,500.00" in shown(revenue.proto.help)
    assert metrics(at)["Average top-up"] == "$1,500.00"
    assert all(len(m.value.lstrip("-")) <= 9 for m in at.metric), metrics(at)


def test_a_country_typed_by_name_filters_the_figures(app_env, db, shop):
    with db.session() as s:
        make_customer(s, ADMIN, email="sam@example.com", country="US")
    app_env(db.url)
    at = open_revenue()
    at.text_input(key="rev_countries").input("Germany").run()
    assert at.query_params["country"] == "DE"
    assert metrics(at)["Top-up revenue"] == "$600.00"
    at.text_input(key="rev_countries").input("United States").run()
    assert at.query_params["country"] == "US"
    assert metrics(at)["Top-up revenue"] == "$0.00"
    assert not at.error and not [w for w in at.warning if "Ignored" in shown(w.value)]


def test_an_unknown_country_is_an_error_under_the_field_and_no_figures_pretend_otherwise(app_env, db, shop):
    app_env(db.url)
    at = open_revenue()
    at.text_input(key="rev_countries").input("Germany, Narnia").run()
    assert [shown(e.value) for e in at.error] == [
        "Not a country: “Narnia”. Type names or two-letter codes, such as Germany, US."
    ]
    assert not [w for w in at.warning if "Ignored" in shown(w.value)]  # not "Ignored unknown country values…"
    assert not at.metric  # no figures for every country under a filter that says otherwise
    assert "country" not in at.query_params


def captions(at: AppTest) -> list[str]:
    return [shown(c.value) for c in at.caption]


def test_all_time_starts_on_the_first_order_with_no_comparison(app_env, db, shop):
    app_env(db.url)
    at = open_revenue({"range": "all"})
    today = datetime.now(UTC).date()
    assert at.date_input(key="rev_dates").value == (today, today)
    assert f"{today:%d %b %Y} – {today:%d %b %Y} (UTC)" in captions(at)
    assert not [c for c in captions(at) if "compared with" in c]
    assert metrics(at)["Top-up revenue"] == "$600.00"


def test_a_range_from_before_the_first_order_compares_with_nothing(app_env, db, shop):
    app_env(db.url)
    today = datetime.now(UTC).date()
    at = open_revenue({"start": "2000-01-01", "end": (today + timedelta(days=1)).isoformat()})
    assert not [c for c in captions(at) if "compared with" in c]  # not "the 9832 days before"
    assert all(m.delta in ("", None) for m in at.metric if m.label == "Top-up revenue")


def test_a_week_cut_by_the_range_starts_with_it_and_says_partial(app_env, db, shop):
    app_env(db.url)
    today = datetime.now(UTC).date()
    at = open_revenue({"start": today.isoformat(), "end": (today + timedelta(days=1)).isoformat(), "bucket": "week"})
    table = at.dataframe[0].value
    assert list(table["Period"]) == [f"{today} – {today} (partial)"]
    assert any("Lighter bars are weeks the range cuts" in c for c in captions(at))
