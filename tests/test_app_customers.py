"""The Customers page through Streamlit's AppTest: find by a last name, open, and every tab per role."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from billing_core.access.roles import Actor, Role
from billing_core.core.db import Database
from billing_core.core.models import AuditEvent, Customer, Invoice, Order
from billing_core.core.money import format_credits
from billing_core.demo import seeding as demo
from billing_core.orders import customers
from billing_core.orders import lifecycle as orders

APP = Path(__file__).resolve().parent.parent / "app.py"
ADMIN = Actor("ada@company.test", Role.ADMIN, "Ada Admin")


@pytest.fixture
def seeded(sqlite_template, tmp_path, monkeypatch) -> Database:
    path = tmp_path / "app.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    demo.seed(database, orders=400, seed=4, actor=ADMIN)
    for var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "BILLING_PRICING_FILE", "BILLING_LOCAL_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setenv("BILLING_LOCAL_MODE", "1")
    monkeypatch.setenv("BILLING_LOCAL_ROLE", "support")
    monkeypatch.setenv("BILLING_INVOICE_DIR", str(tmp_path / "files"))
    yield database
    database.dispose()


def open_customers(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    [page] = [h for h, info in at._registered_pages.items() if info.get("url_pathname") == "customers"]
    at._page_hash = page
    at.run()
    assert not at.exception, at.exception
    return at


def busiest(db: Database) -> Customer:
    """The customer with the most orders."""
    with db.session() as s:
        customer_id = s.scalar(
            select(Order.customer_id).group_by(Order.customer_id).order_by(func.count().desc()).limit(1)
        )
        return s.get(Customer, customer_id)


def test_support_finds_a_customer_by_last_name_and_sees_how_it_was_read(seeded):
    customer = busiest(seeded)
    last = customer.name.split()[-1] if " " in customer.name else customer.email.split("@")[0]
    at = open_customers()
    at.text_input(key="customer_q").input(last).run()
    assert not at.exception and not at.error
    assert any("Read as:" in c.value for c in at.caption)
    hits = at.dataframe[0].value
    assert customer.email in list(hits["Email"])
    assert all(link.startswith("/customers?customer=cus_") for link in hits["Open"])


@pytest.mark.parametrize("role", ["support", "finance", "admin"])
def test_the_customer_page_shows_balance_orders_ledger_and_bills(seeded, monkeypatch, role):
    monkeypatch.setenv("BILLING_LOCAL_ROLE", role)
    customer = busiest(seeded)
    with seeded.session() as s:
        balance = orders._customer_balance(s, customer.id)
        count = s.scalar(select(func.count()).select_from(Order).where(Order.customer_id == customer.id))
    at = open_customers({"customer": customer.public_id})
    assert not at.error
    values = {m.label: m.value for m in at.metric}
    assert values["Orders"] == f"{count:,}"
    assert values["Credits balance"] == format_credits(balance)
    frames = [d.value for d in at.dataframe]
    orders_frame = next(f for f in frames if "Invoice" in f.columns and "Order" in f.columns)
    assert len(orders_frame) == min(count, 25)
    bills = next(f for f in frames if "Description" in f.columns)
    assert set(bills[""]) <= {"Complete Order", "Download invoice", ""}
    edit = [e for e in at.expander if e.label == "Edit billing details"]
    assert bool(edit) == (role != "support")


def test_finance_edits_billing_details_with_a_reason_and_an_audit_event(seeded, monkeypatch):
    monkeypatch.setenv("BILLING_LOCAL_ROLE", "finance")
    customer = busiest(seeded)
    at = open_customers({"customer": customer.public_id})
    at.text_input(key="edit_company").input("Nordlicht GmbH")
    at.text_input(key="edit_reason").input("customer sent new details")
    at.button(key="edit_save").click().run()
    assert not at.error, [e.value for e in at.error]
    with seeded.session() as s:
        assert s.get(Customer, customer.id).company == "Nordlicht GmbH"
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "customer.edit_billing"))
        assert event.after["company"] == "Nordlicht GmbH" and event.before["company"] == customer.company


def test_a_customer_whose_name_is_markup_or_a_link_is_shown_as_text(seeded):
    """Names and emails come from customers: none may become bold, a badge or a live link for support."""
    from tests.test_hardening import GFM_AUTOLINK, MARKDOWN_ELEMENTS, resolved

    customer = busiest(seeded)
    name = "**Reset** your password at [sso](https://evil.example) or www.evil.example :red[now]"
    email = "it.desk@evil-sso.example"
    with seeded.session() as s, s.begin():
        row = s.get(Customer, customer.id)
        row.name, row.email = name, email
    at = open_customers({"customer": customer.public_id})
    assert [resolved(h.value).replace("\u2060", "") for h in at.subheader][:1] == [name]
    for kind in MARKDOWN_ELEMENTS:
        for element in at.get(kind):
            shown = resolved(str(element.value))
            assert GFM_AUTOLINK.search(shown) is None, (kind, shown)
            assert "**Reset**" not in str(element.value) and ":red[" not in str(element.value), (kind, shown)


def test_an_unknown_customer_link_says_so(seeded):
    at = open_customers({"customer": "cus_nobody"})
    assert any("No such customer" in e.value for e in at.error)


def paid_documents(db: Database, customer: Customer) -> int:
    with db.session() as s:
        return s.scalar(
            select(func.count()).select_from(Invoice).join(Order, Order.id == Invoice.order_id)
            .where(Order.customer_id == customer.id, Invoice.kind == "invoice")
        )  # fmt: skip


def test_after_an_edit_finance_regenerates_the_documents_with_the_new_details(seeded, monkeypatch):
    monkeypatch.setenv("BILLING_LOCAL_ROLE", "finance")
    customer = busiest(seeded)
    invoices = paid_documents(seeded, customer)
    assert invoices
    at = open_customers({"customer": customer.public_id})
    assert not [b for b in at.button if b.key == "regen_new_details"]  # nothing differs before an edit

    at.text_input(key="edit_company").input("Nordlicht GmbH")
    at.text_input(key="edit_reason").input("customer sent new details")
    at.button(key="edit_save").click().run()
    [offer] = [b for b in at.button if b.key == "regen_new_details"]
    assert offer.disabled  # not before the confirmation
    assert offer.label.startswith("Regenerate ") and "with the new details" in offer.label

    at.text_input(key="regen_reason").input("new company name")
    at.checkbox(key="regen_confirm").check().run()
    at.button(key="regen_new_details").click().run()

    assert not at.error, [e.value for e in at.error]
    assert any("have a new version with the new details" in s.value for s in at.success)
    assert not [b for b in at.button if b.key == "regen_new_details"]
    with seeded.session() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "customer.regenerate_invoices"))
        assert event.reason == "new company name" and event.after["details"]["company"] == "Nordlicht GmbH"
        assert event.after["documents"] >= invoices


def test_support_is_not_offered_regeneration(seeded):
    customer = busiest(seeded)
    with seeded.session() as s:
        customers.update_billing_details(
            s, ADMIN, customer.public_id, reason="r", address=None, company="Changed Ltd", tax_id=None,
            country=customer.country,
        )  # fmt: skip
    at = open_customers({"customer": customer.public_id})
    assert not at.error
    assert not [b for b in at.button if b.key == "regen_new_details"]
