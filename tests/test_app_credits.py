"""The Credits page through Streamlit's AppTest: finance previews and applies a usage file; support looks only."""

from __future__ import annotations

import shutil
import uuid
from datetime import date

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from billing_core.core.db import Database
from billing_core.core.models import CreditPool, Customer
from billing_core.core.money import format_cents, format_credits
from billing_core.credits import ledger, liability, usage
from billing_core.demo import seeding as demo
from tests.test_app_customers import ADMIN, APP


@pytest.fixture
def seeded(sqlite_template, tmp_path, monkeypatch) -> Database:
    path = tmp_path / "app.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    demo.seed(database, orders=300, seed=5, actor=ADMIN)
    for var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "BILLING_PRICING_FILE", "BILLING_LOCAL_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setenv("BILLING_LOCAL_MODE", "1")
    monkeypatch.setenv("BILLING_LOCAL_ROLE", "finance")
    monkeypatch.setenv("BILLING_INVOICE_DIR", str(tmp_path / "files"))
    yield database
    database.dispose()


def open_credits() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    [page] = [h for h, info in at._registered_pages.items() if info.get("url_pathname") == "credits"]
    at._page_hash = page
    at.run()
    assert not at.exception, at.exception
    return at


def holder(db: Database) -> Customer:
    with db.session() as s:
        return s.scalar(select(Customer).where(Customer.sandbox.is_(False)).order_by(Customer.id).limit(1))


def test_finance_previews_then_applies_a_usage_file(seeded):
    customer = holder(seeded)
    with seeded.session() as s:
        before = ledger._balance(s, customer.id)
    data = f"customer,day,model,credits\n{customer.public_id},2026-11-01,gpt-4o,1.25\ncus_nobody,2026-11-01,m,1\nbad\n"
    at = open_credits()
    at.file_uploader(key="usage_file").set_value(("usage.csv", data.encode(), "text/csv")).run()
    assert not at.exception, at.exception
    [counts] = [d.value for d in at.dataframe if list(d.value.columns) == ["Verdict", "Lines"]]
    assert dict(zip(counts["Verdict"], counts["Lines"], strict=True)) == {
        "will book": 1,
        "unknown customer": 1,
        "malformed": 1,
    }
    assert at.button(key="apply_usage").disabled
    at.checkbox(key="usage_ok").check().run()
    at.button(key="apply_usage").click().run()
    assert not at.exception, at.exception
    assert "Booked 1 usage lines" in at.success[0].value
    with seeded.session() as s:
        assert ledger._balance(s, customer.id).total == before.total - 1_25


def test_a_usage_file_is_parsed_once_per_change_not_on_every_rerun(seeded, monkeypatch):
    """Up to 200,000 lines take seconds of one core (and the GIL): not again on every click."""
    parsed = []
    real = usage.parse_usage
    monkeypatch.setattr(usage, "parse_usage", lambda data, name, **k: parsed.append(data) or real(data, name, **k))
    customer = holder(seeded)
    data = f"customer,day,model,credits\n{customer.public_id},2026-11-01,{uuid.uuid4()},1.25\n".encode()
    at = open_credits()
    at.file_uploader(key="usage_file").set_value(("usage.csv", data, "text/csv")).run()
    for _ in range(2):
        at.checkbox(key="usage_ok").check().run()
        at.checkbox(key="usage_ok").uncheck().run()
    assert not at.exception, at.exception
    assert parsed.count(data) == 1
    changed = data + f"{customer.public_id},2026-11-02,m,1\n".encode()
    at.file_uploader(key="usage_file").set_value(("usage.csv", changed, "text/csv")).run()
    assert parsed.count(changed) == 1


def test_support_sees_the_page_but_no_import(seeded, monkeypatch):
    monkeypatch.setenv("BILLING_LOCAL_ROLE", "support")
    at = open_credits()
    assert "finance imports usage" in at.info[0].value
    assert not at.get("file_uploader")


def test_finance_reads_the_roll_forward_and_it_closes_at_the_ledger(seeded):
    at = open_credits()
    table = at.dataframe[0].value
    assert list(table.columns[:4]) == ["Month", "Pool", "Opening", "Topups"]
    assert set(table["Pool"]) == {"paid", "promotional"}
    assert list(table["Month"]) == sorted(table["Month"], reverse=True)  # newest month first, as finance reads
    assert list(table["Pool"][:2]) == ["paid", "promotional"]
    with seeded.session() as s:
        paid_credits, paid_cents = liability.ledger_closing(s, ADMIN, date.fromisoformat(table["Month"][0] + "-01"))[
            CreditPool.PAID
        ]
    owed = {m.label.split(" (")[0]: m.value for m in at.metric}
    assert owed["Owed in paid credits"] == format_credits(paid_credits)
    assert owed["Owed in USD at the price paid"] == format_cents(paid_cents)
    month = at.selectbox(key="liab_month").value
    at.button(key="liab_check").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith(f"{month:%Y-%m} closes at the ledger's sum")
    people = at.dataframe[1].value
    assert len(people) > 0 and people["Customer"].str.startswith("/customers?customer=cus_").all()


def test_finance_dry_runs_then_books_expiry_on_the_page(seeded):
    from billing_core.credits import liability as lb

    demo.seed(seeded, orders=3000, seed=5, actor=ADMIN, replace=True)  # enough customers for some idle ones
    at = open_credits()
    at.button(key="exp_plan").click().run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "Oldest lot (UTC)" in d.value.columns)
    assert len(table) > 0  # some customers never used credits they bought over a year ago
    at.checkbox(key="exp_ok").check().run()
    at.button(key="exp_book").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("Expired ")
    with seeded.session() as s:
        lines = lb.roll_forward(s, ADMIN)
        assert sum(line.credits.expiry for line in lines) > 0
        last = lines[-1]
        assert (last.credits.closing, last.usd.closing) == lb.ledger_closing(s, ADMIN, last.month)[last.pool]
