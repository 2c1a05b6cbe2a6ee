"""Sign-in, roles and pages through AppTest with a mocked ``st.user`` (AppTest.user), and the
audit log page: strangers get a sign-in button, unmapped people a "no access" page, each role
exactly its pages; a page's URL a role may not use runs nothing of that page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from billing_core.access.roles import PAGES, Actor, Role
from billing_core.core.db import Database
from billing_core.orders import lifecycle as orders
from pages._guard import REFUSED_TITLE
from tests.helpers import make_customer

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
ADMIN = Actor("ada@company.test", Role.ADMIN, "Ada Admin")

COOKIE_SECRET = "ck-9Fq2Lm7Rx4Tz8Wv3Bn6Hj1Yd5Gs0Pa-CookieZ"
CLIENT_SECRET = "cs-Xq81VmLk27RtZp0WbNc4Hy6Jd3Gf5SaQ-Client"
DB_PASSWORD = "pw-Zr5Kt8Qm2Vx7Lb1Nc9Hf4Jd6Gs3Wy0-Database"
STRIPE_KEY = "sk_test_Rb7Mq2Xv9Lk4Tz8Wn3Hc6Jf1Yd5Gs0PaStripeSecret"
SECRETS = (COOKIE_SECRET, CLIENT_SECRET, DB_PASSWORD, STRIPE_KEY)
SIGN_IN = f"""
[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "{COOKIE_SECRET}"
client_id = "billing-ops"
client_secret = "{CLIENT_SECRET}"
server_metadata_url = "https://login.company.test/.well-known/openid-configuration"

[access]
sign_in_name = "Company SSO"

[access.roles]
emails = {{"fay@company.test" = "finance", "ada@company.test" = "admin"}}
domains = {{"support.company.test" = "support"}}
groups = {{"billing-analysts" = "analyst"}}

[stripe]
api_key = "{STRIPE_KEY}"
"""
# One signed-in person per role, each mapped by a different rule.
PEOPLE = {
    Role.SUPPORT: {"email": "sam@support.company.test", "email_verified": True, "name": "Sam Support"},
    Role.FINANCE: {"email": "fay@company.test", "email_verified": True, "name": "Fay Finance"},
    Role.ANALYST: {
        "email": "ann@company.test",
        "email_verified": True,
        "name": "Ann Analyst",
        "groups": ["billing-analysts"],
    },
    Role.ADMIN: {"email": "ada@company.test", "email_verified": True, "name": "Ada Admin"},
}
EXPECTED_PAGES = {
    Role.SUPPORT: {"orders", "customers", "credits"},
    Role.FINANCE: {"orders", "customers", "revenue", "invoices", "audit", "credits", "approvals"},
    Role.ANALYST: {"simulator", "revenue"},
    Role.ADMIN: {"simulator", "orders", "customers", "revenue", "invoices", "audit", "credits", "approvals"},
}
TITLES = {
    "simulator": "Top-up simulator",
    "orders": "Orders",
    "customers": "Customers",
    "revenue": "Revenue",
    "invoices": "Invoices",
    "audit": "Audit log",
    "credits": "Credits",
    "approvals": "Approvals",
}


@pytest.fixture
def sqlite_db(sqlite_template, tmp_path):
    path = tmp_path / "app.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def signed_in_env(monkeypatch, tmp_path, sqlite_db):
    """Sign-in configured the way production has it; returns the secrets file."""
    for var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "BILLING_PRICING_FILE", "BILLING_LOCAL_MODE"):
        monkeypatch.delenv(var, raising=False)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(SIGN_IN)
    monkeypatch.setenv("BILLING_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("DATABASE_URL", sqlite_db.url)
    return secrets


def run_as(user: dict | None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.user = {"is_logged_in": False} if user is None else {"is_logged_in": True, "sub": user["email"], **user}
    at.run()
    if page is not None:
        at._page_hash = calc_hash(page)  # what the browser asks for when someone types /<page>
        at.run()
    assert not at.exception, at.exception
    return at


def registered(at: AppTest) -> set[str]:
    """The pages st.navigation registered (the default page's URL is "", so match by hash), without the
    start pages that only say who may enter ("welcome") or open the role's first page ("home"), and
    without the refusals that answer at the addresses of the pages the role may not open."""
    by_hash = {calc_hash(page): page for page in [*PAGES, "welcome", "home"]}
    opened = {h for h, info in at._registered_pages.items() if info.get("page_name") != REFUSED_TITLE}
    return {by_hash.get(h, h) for h in opened} - {"welcome", "home"}


def page_text(at: AppTest) -> str:
    return "\n".join(str(getattr(node, "proto", "")) for node in at._tree)


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def test_a_stranger_sees_only_the_sign_in_button(signed_in_env):
    at = run_as(None)
    assert [b.label for b in at.button] == ["Sign in with Company SSO"]
    assert titles(at) == ["Billing Ops"]
    assert registered(at) == set()
    assert not at.sidebar.children or not list(at.sidebar)[1:]  # no database, no role, no pages
    assert "sqlite" not in page_text(at)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_stranger_typing_a_page_url_gets_the_sign_in_button(signed_in_env, page):
    at = run_as(None, page)
    assert titles(at) == ["Billing Ops"]
    assert [b.label for b in at.button] == ["Sign in with Company SSO"]


def test_a_signed_in_person_without_a_role_sees_no_access_and_can_sign_out(signed_in_env):
    at = run_as({"email": "eve@elsewhere.test", "email_verified": True, "name": "Eve", "groups": ["other"]})
    assert titles(at) == ["No access"]
    assert "eve@\u2060elsewhere" in at.error[0].value  # as text, not a mailto link
    assert [b.label for b in at.button] == ["Sign out"]
    assert registered(at) == set()

    at.button(key="sign_out").click().run()
    assert at.user == {"is_logged_in": False}
    at.run()
    assert [b.label for b in at.button] == ["Sign in with Company SSO"]


def test_an_unverified_email_is_not_trusted_for_a_role(signed_in_env):
    at = run_as({"email": "ada@company.test", "email_verified": False})
    assert titles(at) == ["No access"]


@pytest.mark.parametrize("claims", [{}, {"email_verified": "FALSE"}, {"email_verified": None}])
def test_a_token_not_saying_the_email_is_verified_gets_no_access_and_the_reason(signed_in_env, claims):
    at = run_as({"email": "ada@company.test", "name": "Ada Admin"} | claims)
    assert titles(at) == ["No access"]
    assert registered(at) == set()
    assert "does not say that the email address" in at.error[0].value


def test_a_look_alike_email_gets_no_access_and_is_told_only_ascii_is_accepted(signed_in_env):
    at = run_as({"email": "\u212ada@company.test", "email_verified": True, "groups": ["billing-analysts"]})
    assert titles(at) == ["No access"]
    assert registered(at) == set()
    assert "accepts only ASCII addresses" in at.error[0].value


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_exactly_its_pages(signed_in_env, role):
    at = run_as(PEOPLE[role])
    assert registered(at) == EXPECTED_PAGES[role]
    assert PEOPLE[role]["name"] in page_text(at)  # the sidebar says who is signed in
    assert "Sign out" in [b.label for b in at.sidebar.button]
    assert "Local mode" not in page_text(at)


@pytest.mark.parametrize(("role", "page"), [(role, page) for role in Role for page in sorted(EXPECTED_PAGES[role])])
def test_each_role_opens_each_of_its_pages(signed_in_env, role, page):
    at = run_as(PEOPLE[role], page)
    assert titles(at)[0] == TITLES[page]


@pytest.mark.parametrize(
    ("role", "page"), [(role, page) for role in Role for page in sorted(set(PAGES) - EXPECTED_PAGES[role])]
)
def test_a_page_a_role_may_not_use_never_runs_for_it(signed_in_env, role, page):
    at = run_as(PEOPLE[role], page)
    assert TITLES[page] not in titles(at)
    assert page not in registered(at)
    assert titles(at) == [REFUSED_TITLE]  # the address answers with why, and no page's content
    assert [e.value for e in at.error] == [f"The {role.value} role may not open the {TITLES[page]} page."]


def test_a_live_stripe_key_shows_live_on_every_page(signed_in_env):
    signed_in_env.write_text(SIGN_IN.replace("sk_test_", "sk_live_"))
    for page in sorted(EXPECTED_PAGES[Role.ADMIN]):
        at = run_as(PEOPLE[Role.ADMIN], page)
        assert "Payments: LIVE" in page_text(at)


def test_without_sign_in_or_local_mode_nobody_gets_in(monkeypatch, tmp_path, sqlite_db):
    monkeypatch.delenv("BILLING_LOCAL_MODE", raising=False)
    monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DATABASE_URL", sqlite_db.url)
    at = run_as(PEOPLE[Role.ADMIN])
    assert "sign-in is not configured" in at.error[0].value
    assert registered(at) == set()
    assert not at.button


def test_a_weak_cookie_secret_stops_the_app_naming_the_setting(signed_in_env):
    signed_in_env.write_text(SIGN_IN.replace(COOKIE_SECRET, "change-me"))
    at = run_as(PEOPLE[Role.ADMIN])
    assert "auth.cookie_secret" in at.error[0].value
    assert registered(at) == set()
    assert not at.button


def test_database_errors_never_show_its_password(signed_in_env, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://billing:{DB_PASSWORD}@127.0.0.1:1/nowhere")
    at = run_as(PEOPLE[Role.ADMIN])
    text = page_text(at)
    assert "cannot be opened" in text
    assert DB_PASSWORD not in text


def test_database_errors_never_show_a_password_given_as_a_query_parameter(signed_in_env, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://billing@127.0.0.1:1/nowhere?password={DB_PASSWORD}")
    at = run_as(PEOPLE[Role.ADMIN])
    text = page_text(at)
    assert "The database postgresql 127.0.0.1:1/nowhere cannot be opened" in text
    assert DB_PASSWORD not in text
    assert "billing@" not in text


@pytest.mark.parametrize("role", list(Role))
def test_no_configured_secret_appears_on_any_page(signed_in_env, role):
    for page in sorted(EXPECTED_PAGES[role]):
        text = page_text(run_as(PEOPLE[role], page))
        for secret in SECRETS:
            assert secret not in text, f"{page} shows a secret"


# --- the audit log page -------------------------------------------------------------------------------


def _seed_events(db: Database, n: int = 3) -> None:
    with db.session() as s:
        for i in range(n):
            make_customer(s, ADMIN, email=f"c{i}@example.com")
        orders.create_customer(s, ADMIN, email="=cmd@example.com", name='=HYPERLINK("x")', country="FR")


def test_audit_page_lists_events_and_shows_a_change_as_data(signed_in_env, sqlite_db):
    _seed_events(sqlite_db)
    at = run_as(PEOPLE[Role.FINANCE], "audit")
    table = at.dataframe[0].value
    assert len(table) == 4
    assert set(table["Action"]) == {"customer.create"}
    assert set(table["Who"]) == {"ada@company.test"}

    at.text_input(key="audit_who").input("nobody").run()
    assert len(at.dataframe[0].value) == 0
