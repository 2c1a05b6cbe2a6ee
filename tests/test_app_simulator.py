"""The app through Streamlit's AppTest: router, identity, and the top-up simulator page."""

from __future__ import annotations

import re
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from billing_core.core import money
from billing_core.core.db import Database
from billing_core.core.models import Customer, Invoice, Order, OrderStatus
from billing_core.pricing import whatif
from billing_core.pricing.catalog import DEFAULT_PRICING_FILE, load_pricing, quote


def shown(text: str) -> str:
    """What a person reads: messages from data are markdown-escaped, with a word joiner where a
    link would start (pages._shared.plain)."""
    return re.sub(r"\\(.)", r"\1", text).replace("\u2060", "")


APP = Path(__file__).resolve().parent.parent / "app.py"
PRICING = load_pricing()
BANNER = "Local mode — identity chosen here, not signed in"


@pytest.fixture
def app_env(monkeypatch, tmp_path):
    """Environment for the app: local mode as analyst, no secrets file, no Stripe key."""

    def configure(database_url: str, role: str = "analyst", local_mode: str = "1") -> None:
        for var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "BILLING_PRICING_FILE", "BILLING_LOCAL_EMAIL"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("BILLING_LOCAL_MODE", local_mode)
        monkeypatch.setenv("BILLING_LOCAL_ROLE", role)

    return configure


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path) -> str:
    path = tmp_path / "app.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def analyst_app(app_env, sqlite_url) -> AppTest:
    app_env(sqlite_url)
    return start()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def quoted(amount_cents: int, method: str) -> dict[str, str]:
    q = quote(amount_cents, method, PRICING)
    label = PRICING.fees[q.method].label
    return {
        "Credits": money.format_credits(q.credits),
        f"{label} fee": money.format_cents(q.fee_cents),
        "Total charged": money.format_cents(q.total_cents),
    }


def count(database_url: str, model) -> int:
    database = Database(database_url)
    try:
        with database.session() as s:
            return s.scalar(select(func.count()).select_from(model))
    finally:
        database.dispose()


# --- the quote ---------------------------------------------------------------------------------


def test_the_page_opens_on_the_most_popular_plan_with_its_quote_and_rules(analyst_app):
    at = analyst_app
    assert at.title[0].value == "Top-up simulator"
    assert metrics(at) == quoted(50000, "stripe")
    captions = [c.value for c in at.caption]
    q = quote(50000, "stripe", PRICING)
    assert {q.credits_rule, q.fee_rule, q.total_rule} <= set(captions)
    assert [w.value for w in at.warning] == [BANNER]


@pytest.mark.parametrize("plan", PRICING.plans, ids=lambda p: p.id.value)
@pytest.mark.parametrize("method", ["stripe", "airwallex", "alipay"])
def test_each_plan_button_gives_that_plans_quote(analyst_app, plan, method):
    at = analyst_app
    at.radio(key="method").set_value(method).run()
    at.button(key=f"plan_{plan.id.value}").click().run()

    assert metrics(at) == quoted(plan.amount_cents, method)
    assert at.button(key=f"plan_{plan.id.value}").proto.type == "primary"


def test_plan_buttons_come_from_the_pricing_catalog(analyst_app):
    labels = [b.label for b in analyst_app.button if b.key.startswith("plan_")]
    assert labels == [f"Choose {p.name}" for p in PRICING.plans]
    assert any("Most popular" in m.value for m in analyst_app.markdown)


@pytest.mark.parametrize(("typed", "cents"), [("250", 25000), ("$1,234.56", 123456), ("5", 500), ("25000", 2500000)])
def test_a_valid_custom_amount_is_quoted(analyst_app, typed, cents):
    at = analyst_app
    at.text_input(key="amount").input(typed).run()
    assert metrics(at) == quoted(cents, "stripe")
    assert not at.error


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("3", "The smallest custom top-up is $5.00."),
        ("30000", "The largest custom top-up is $25,000.00."),
        ("abc", "“abc” is not an amount; type digits such as 100 or 1,500.00."),
        ("-20", "The amount cannot be negative."),
        ("10.005", "Use at most two decimals (whole cents)."),
        ("", "Enter an amount."),
    ],
)
def test_an_invalid_amount_shows_the_reason_and_creates_nothing(app_env, sqlite_url, typed, reason):
    app_env(sqlite_url)
    at = start()
    at.text_input(key="amount").input(typed).run()

    assert [shown(e.value) for e in at.error] == [reason]
    assert metrics(at) == {}
    assert at.button(key="get_credits").disabled
    assert count(sqlite_url, Order) == 0


# --- what-if -----------------------------------------------------------------------------------


def whatif_table(at: AppTest):
    return at.dataframe[-1].value.set_index("Plan")


def test_whatif_starts_from_the_current_pricing_with_no_differences(analyst_app):
    at = analyst_app
    at.text_input(key="amount").input("42").run()
    table = whatif_table(at)
    assert list(table.index) == ["Study", "Standard", "Pro", "Max", "Typed amount"]
    assert set(table["Δ total"]) == {"$0.00"}
    assert table.loc["Typed amount", "Current total"] == quoted(4200, "stripe")["Total charged"]


def test_an_edited_whatif_pricing_is_compared_side_by_side(analyst_app):
    at = analyst_app
    text = DEFAULT_PRICING_FILE.read_text().replace('fee_rate = "0.055"', 'fee_rate = "0.04"')
    text = text.replace('min = "5.00"', 'min = "50.00"')
    at.text_area(key="whatif_text").input(text).run()
    at.text_input(key="amount").input("10").run()

    table = whatif_table(at)
    assert table.loc["Pro", "Current total"] == "$527.50"
    assert table.loc["Pro", "What-if total"] == "$520.00"
    assert table.loc["Pro", "Δ total"] == "-$7.50"
    assert table.loc["Typed amount", "Current total"] == "$10.80"
    assert table.loc["Typed amount", "What-if note"] == "The smallest custom top-up is $50.00."
    assert table.loc["Typed amount", "Δ total"] == "—"


def test_a_broken_whatif_pricing_shows_its_error(analyst_app):
    at = analyst_app
    at.text_area(key="whatif_text").input('version = "x"\ncredits_per_usd = 1.5').run()
    errors = [shown(e.value) for e in at.error]
    assert errors == ['the edited what-if pricing: write credits_per_usd as a quoted string, e.g. "0.055".']
    assert metrics(at) == quoted(50000, "stripe")  # the live quote is untouched


def test_an_uploaded_whatif_file_is_used(analyst_app):
    at = analyst_app
    text = DEFAULT_PRICING_FILE.read_text().replace('version = "2026.1"', 'version = "2027-up"')
    text = text.replace('credits_per_usd = "1"', 'credits_per_usd = "1.1"')
    at.file_uploader(key="whatif_file").set_value(("proposal.toml", text.encode(), "application/toml")).run()

    assert any("2027-up" in shown(m.value) for m in at.markdown)
    assert whatif_table(at).loc["Study", "Δ credits"] == "+2"


def test_a_whatif_pricing_is_parsed_once_per_change_not_on_every_rerun(analyst_app, monkeypatch):
    parsed = []
    real = whatif.parse_pricing
    monkeypatch.setattr(whatif, "parse_pricing", lambda text, source: parsed.append(text) or real(text, source))
    at = analyst_app
    text = DEFAULT_PRICING_FILE.read_text() + f"# {uuid.uuid4()}\n"  # a text no earlier test had cached
    at.text_area(key="whatif_text").input(text).run()
    for amount in ("42", "43", "44"):
        at.text_input(key="amount").input(amount).run()
    assert parsed.count(text) == 1
    at.text_area(key="whatif_text").input(text + "# changed\n").run()
    assert parsed.count(text + "# changed\n") == 1


def test_a_whatif_pricing_with_a_huge_exponent_is_refused_and_the_page_stays_quick(analyst_app):
    at = analyst_app
    text = DEFAULT_PRICING_FILE.read_text().replace('credits_per_usd = "1"', 'credits_per_usd = "1e999990"')
    started = time.perf_counter()
    at.file_uploader(key="whatif_file").set_value(("huge.toml", text.encode(), "application/toml")).run()
    assert time.perf_counter() - started < 10  # was 35 s of integer conversion per rerun
    assert not at.exception
    assert [shown(e.value) for e in at.error] == ["huge.toml: credits_per_usd must be between 0 and 1000000."]


# --- sandbox run -------------------------------------------------------------------------------


def create_customer(at: AppTest, name="Zoë Sandbox", email="zoe@sandbox.test", country="fr") -> AppTest:
    fields = {w.label: w for w in at.text_input}
    fields["Name"].input(name)
    fields["Email"].input(email)
    fields["Country (two letters)"].input(country)
    [submit] = [b for b in at.button if b.label == "Create sandbox customer"]
    return submit.click().run()


def test_a_sandbox_run_creates_customer_pays_order_and_shows_balance_and_invoice(app_env, db):
    app_env(db.url)
    at = start()
    at.button(key="plan_standard").click().run()
    create_customer(at)
    assert not at.exception, at.exception
    assert at.selectbox(key="sandbox_customer").format_func(at.selectbox(key="sandbox_customer").value) == (
        "Zoë Sandbox <zoe@sandbox.test>"
    )

    at.button(key="get_credits").click().run()

    assert not at.error, [e.value for e in at.error]
    year = datetime.now(UTC).year
    shown = metrics(at)
    assert shown["Last run"] == "paid"
    assert shown["Credits balance"] == "100"
    assert shown["Invoice"] == f"SBX-{year}-000001"
    orders_table, ledger_table, events_table = (d.value for d in at.dataframe[:3])
    assert list(orders_table["Invoice"]) == [f"SBX-{year}-000001"]
    assert list(orders_table["Total"]) == ["$105.50"]
    assert list(ledger_table["Credits"]) == ["+100"]
    assert {"order.create", "order.payment_created", "order.complete"} <= set(events_table["Action"])
    with db.session() as s:
        customer = s.scalar(select(Customer))
        assert (customer.email, customer.country, customer.sandbox) == ("zoe@sandbox.test", "FR", True)
        order = s.scalar(select(Order))
        assert (order.status, order.total_cents, order.sandbox) == (OrderStatus.PAID, 10550, True)
        assert s.scalar(select(Invoice.number)) == f"SBX-{year}-000001"


def test_a_declined_sandbox_run_shows_the_failure_and_grants_nothing(app_env, db):
    app_env(db.url)
    at = start()
    create_customer(at)
    at.radio(key="outcome").set_value("decline").run()
    at.button(key="get_credits").click().run()

    shown = metrics(at)
    assert (shown["Last run"], shown["Credits balance"], shown["Invoice"]) == ("failed", "0", "—")
    with db.session() as s:
        assert s.scalar(select(Order.status)) is OrderStatus.FAILED


def test_a_bad_new_customer_shows_the_reason_and_creates_nothing(app_env, db):
    app_env(db.url)
    at = start()
    create_customer(at, email="not-an-email")
    assert [shown(e.value) for e in at.error] == ["Enter a valid email address, such as ana@example.com."]
    assert not at.exception
    assert count(db.url, Customer) == 0
    assert at.button(key="get_credits").disabled
    assert {w.label: w.value for w in at.text_input}["Email"] == "not-an-email"  # kept to correct


def test_after_creating_a_customer_the_form_is_empty_for_the_next(app_env, db):
    app_env(db.url)
    at = start()
    create_customer(at)
    assert {w.label: w.value for w in at.text_input}["Email"] == ""
    create_customer(at, name="Второй", email="second@sandbox.test", country="DE")
    assert not at.error
    picked = at.selectbox(key="sandbox_customer")
    assert picked.format_func(picked.value) == "Второй <second@sandbox.test>"
    assert count(db.url, Customer) == 2


# --- router, identity and access ---------------------------------------------------------------


def test_support_does_not_get_the_simulator(app_env, sqlite_url):
    app_env(sqlite_url, role="support")
    at = start()
    assert [t.value for t in at.title] == ["Orders"]  # support's one page
    assert BANNER in [w.value for w in at.warning]
    assert "Total charged" not in metrics(at)
    assert not [b for b in at.button if b.key == "get_credits"]


def test_switching_role_in_the_sidebar_hides_and_shows_the_simulator(analyst_app):
    at = analyst_app
    at.selectbox(key="local_role_picker").set_value("admin").run()
    assert metrics(at) == quoted(50000, "stripe")
    at.button(key="plan_max").click().run()
    assert at.session_state["local_role"] == "admin"  # the role survives page reruns
    assert metrics(at) == quoted(150000, "stripe")
    at.selectbox(key="local_role_picker").set_value("finance").run()
    assert "Total charged" not in metrics(at)
    assert not [b for b in at.button if b.key == "get_credits"]


def test_without_local_mode_nobody_gets_in(app_env, sqlite_url):
    app_env(sqlite_url, local_mode="0")
    at = start()
    assert [e.value for e in at.error] == [
        "No access: sign-in is not configured; set BILLING_LOCAL_MODE=1 for local mode."
    ]
    assert metrics(at) == {}
    assert not at.sidebar.selectbox
    assert not at.button
    assert not at.warning


def test_a_broken_setting_is_shown_with_its_name_and_source(app_env, sqlite_url, monkeypatch):
    app_env(sqlite_url)
    monkeypatch.setenv("BILLING_LOCAL_ROLE", "owner")
    at = start()
    [error] = at.error
    assert "local_default_role" in error.value
    assert "BILLING_LOCAL_ROLE" in error.value
    assert not at.button


def test_sidebar_shows_who_where_and_payments_mode(app_env, sqlite_url, monkeypatch):
    app_env(sqlite_url)
    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_abc123")
    at = start()
    sidebar = shown(" ".join([e.value for e in at.sidebar.markdown] + [c.value for c in at.sidebar.code]))
    assert "local@localhost" in sidebar
    assert f"sqlite {sqlite_url.removeprefix('sqlite:///')}" in sidebar
    assert at.sidebar.selectbox(key="local_role_picker").value == "analyst"
    [badge] = [m.value for m in at.sidebar.markdown if "Payments" in m.value]
    assert "red" in badge
    assert "Payments: LIVE" in badge


def test_the_database_password_is_never_shown(app_env, pg_database):
    password_url = pg_database.url.replace("postgres@", "postgres:hunter2@")
    app_env(password_url)
    at = start()
    assert not at.exception
    shown = " ".join(c.value for c in at.sidebar.code)
    assert "hunter2" not in shown
    assert "postgres@" not in shown  # host, port and database name only
    assert shown.startswith("postgresql 127.0.0.1")
