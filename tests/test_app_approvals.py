"""Support proposes a grant on the customer page, finance approves it in the Approvals queue (AppTest):
the sidebar counts it while it waits, the balance and the liability roll-forward move by the grant."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from billing_core.access.roles import Actor, Role
from billing_core.core.models import CreditPool
from billing_core.credits import ledger, liability
from tests.test_app_credits import APP, holder, seeded  # noqa: F401 - the fixture

FAY = Actor("fay@company.test", Role.FINANCE)


def open_page(name: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    [page] = [h for h, info in at._registered_pages.items() if info.get("url_pathname") == name]
    at._page_hash = page
    at.run()
    assert not at.exception, at.exception
    return at


def sidebar_says(at: AppTest, text: str) -> bool:
    return any(text in str(getattr(el, "proto", "")) for el in at.sidebar)


def promotional_grants(db) -> int:
    with db.session() as s:
        lines = liability.roll_forward(s, FAY)
    return sum(line.credits.grants for line in lines if line.pool is CreditPool.PROMOTIONAL)


def test_support_proposes_finance_approves_and_balance_and_liability_move_by_it(seeded, monkeypatch):  # noqa: F811
    customer = holder(seeded)
    with seeded.session() as s:
        before = ledger._balance(s, customer.id)
    grants_before = promotional_grants(seeded)

    monkeypatch.setenv("BILLING_LOCAL_ROLE", "support")
    monkeypatch.setenv("BILLING_LOCAL_EMAIL", "sam@company.test")
    at = open_page("customers", {"customer": customer.public_id})
    at.text_input(key="adj_credits").input("12.50")
    at.text_input(key="adj_reason").input("model outage on 3 Nov")
    at.text_input(key="adj_note").input("Sorry for the outage")
    at.button[[b.label for b in at.button].index("Propose adjustment")].click().run()
    assert not at.exception, at.exception
    assert "waits for an approval from finance" in at.success[0].value
    with seeded.session() as s:
        assert ledger._balance(s, customer.id) == before

    monkeypatch.setenv("BILLING_LOCAL_ROLE", "finance")
    monkeypatch.setenv("BILLING_LOCAL_EMAIL", "fay@company.test")
    at = open_page("approvals")
    assert sidebar_says(at, "Approvals waiting: 1")
    at.button(key="appr_approve").click().run()
    assert not at.exception, at.exception
    assert "approved and booked" in at.success[0].value
    with seeded.session() as s:
        after = ledger._balance(s, customer.id)
    assert (after.promotional - before.promotional, after.paid - before.paid) == (12_50, 0)
    assert promotional_grants(seeded) - grants_before == 12_50
    at.run()  # the sidebar is drawn before the page acts: the next run counts what is left
    assert sidebar_says(at, "Approvals waiting: 0")
