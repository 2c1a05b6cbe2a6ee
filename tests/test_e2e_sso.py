"""End to end: single sign-on against a real OpenID Connect provider (oidc-provider-mock on
loopback), a real `streamlit run app.py`, headless Chromium. Each role signs in, sees exactly its
pages, is refused a page's URL it may not use, and signs out; no configured secret reaches the page
or the server log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from billing_core.core.db import Database
from tests.e2e_support import app_env, free_port, start_streamlit

pytestmark = pytest.mark.e2e

COOKIE_SECRET = "e2e-Ck7Qm2Xv9Lk4Tz8Wn3Hc6Jf1Yd5Gs0Pa-Cookie"
CLIENT_SECRET = "e2e-Cs3Rb7Mq2Xv9Lk4Tz8Wn6Jf1Yd5Gs0Pa-Client"
STRIPE_KEY = "sk_test_E2eRb7Mq2Xv9Lk4Tz8Wn3Hc6Jf1Yd5Gs0Pa"
SECRETS = (COOKIE_SECRET, CLIENT_SECRET, STRIPE_KEY)
# One person per role, each mapped by a different rule of [access.roles].
USERS = {
    "support": {"email": "sam@support.company.test", "email_verified": True, "name": "Sam Support"},  # by domain
    "finance": {"email": "fay@company.test", "email_verified": True, "name": "Fay Finance"},  # by exact email
    "analyst": {
        "email": "ann@company.test",
        "email_verified": True,
        "name": "Ann Analyst",
        "groups": ["billing-analysts"],
    },  # by group
    "admin": {
        "email": "ada@company.test",
        "email_verified": True,
        "name": "Ada Admin",
        "groups": ["billing-admins"],
    },  # by group
    "nobody": {"email": "eve@elsewhere.test", "email_verified": True, "name": "Eve Outsider"},
}
PAGES = {
    "support": ["Orders", "Customers", "Credits"],
    "finance": ["Orders", "Customers", "Revenue", "Invoices", "Audit log", "Credits", "Approvals"],
    "analyst": ["Top-up simulator", "Revenue"],
    "admin": ["Top-up simulator", "Orders", "Customers", "Revenue", "Invoices", "Audit log", "Credits", "Approvals"],
}
URLS = {"Top-up simulator": "simulator", "Orders": "orders", "Revenue": "revenue", "Invoices": "invoices"}
URLS["Customers"] = "customers"
URLS["Audit log"] = "audit"
URLS["Credits"] = "credits"
URLS["Approvals"] = "approvals"


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[str]:
    """A local OpenID Connect provider whose sign-in page offers one button per person above."""
    mock = pytest.importorskip("oidc_provider_mock")
    users = [mock.User(sub=claims["email"], claims=claims) for claims in USERS.values()]
    with mock.run_server_in_thread(port=free_port(), user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def app_server(oidc_provider, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """`streamlit run app.py` with sign-in configured; yields its base URL and its log file."""
    tmp = tmp_path_factory.mktemp("sso")
    url = f"sqlite:///{tmp / 'billing.db'}"
    database = Database(url)
    database.migrate()
    database.dispose()
    port = free_port()
    secrets = tmp / "secrets.toml"
    secrets.write_text(
        f"""
[auth]
redirect_uri = "http://localhost:{port}/oauth2callback"
cookie_secret = "{COOKIE_SECRET}"
client_id = "billing-ops"
client_secret = "{CLIENT_SECRET}"
server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"

[access]
sign_in_name = "Company SSO"

[access.roles]
emails = {{"fay@company.test" = "finance"}}
domains = {{"support.company.test" = "support"}}
groups = {{"billing-admins" = "admin", "billing-analysts" = "analyst"}}

[stripe]
api_key = "{STRIPE_KEY}"
"""
    )
    env = app_env({"DATABASE_URL": url, "BILLING_SECRETS_FILE": str(secrets)})
    args = ["--secrets.files", str(secrets), "--logger.level", "debug"]
    with start_streamlit(env, tmp, port=port, host="localhost", args=args) as server:
        yield server.base, server.log
    text = server.log.read_text()
    leaked = [name for name, secret in zip(("cookie", "client", "stripe"), SECRETS, strict=True) if secret in text]
    assert not leaked, f"the server log holds the {leaked} secret"


def sign_in(page: Page, base: str, who: str) -> None:
    page.goto(base)
    page.get_by_role("button", name="Sign in with Company SSO").click()
    page.get_by_role("button", name=USERS[who]["email"], exact=True).click()  # the provider's one-click user
    page.wait_for_url(f"{base}/**")


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    end_session = page.get_by_role("button", name="End session")  # the provider asks first
    signed_out = page.get_by_role("button", name="Sign in with Company SSO")
    expect(end_session.or_(signed_out)).to_be_visible()
    if end_session.is_visible():
        end_session.click()
    expect(signed_out).to_be_visible()


def nav_titles(page: Page) -> list[str]:
    links = page.get_by_test_id("stSidebarNav").get_by_role("link").all_inner_texts()
    return [text.strip().splitlines()[-1] for text in links]  # the icon's name comes first


def assert_no_secret(page: Page) -> None:
    html = page.content()
    for secret in SECRETS:
        assert secret not in html


def test_a_stranger_sees_only_the_sign_in_button(app_server, page):
    base, _ = app_server
    page.goto(f"{base}/invoices")
    expect(page.get_by_role("button", name="Sign in with Company SSO")).to_be_visible()
    expect(page.get_by_role("heading", name="Invoices")).to_have_count(0)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    assert_no_secret(page)


@pytest.mark.parametrize("who", ["support", "finance", "analyst", "admin"])
def test_each_role_signs_in_sees_its_pages_is_refused_others_and_signs_out(app_server, page, who, output_dir):
    base, _ = app_server
    sign_in(page, base, who)
    expected = PAGES[who]
    expect(page.get_by_role("heading", name=expected[0], exact=True)).to_be_visible()
    expect(page.get_by_text(USERS[who]["name"])).to_be_visible()
    expect(page.get_by_text("Payments: TEST")).to_be_visible()
    if len(expected) > 1:
        expect(page.get_by_test_id("stSidebarNav").get_by_role("link")).to_have_count(len(expected))
        assert sorted(nav_titles(page)) == sorted(expected)
    else:
        expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # one page: no navigation at all
    page.screenshot(path=str(output_dir / f"sso-{who}.png"))
    assert_no_secret(page)

    for title, url in URLS.items():
        if title in expected:
            continue
        page.goto(f"{base}/{url}")  # typed by hand
        expect(page.get_by_role("heading", name="Not for your role")).to_be_visible()
        expect(page.get_by_text(f"The {who} role may not open the {title} page.")).to_be_visible()
        expect(page.get_by_role("heading", name=title, exact=True)).to_have_count(0)
        assert page.url.endswith(f"/{url}")  # the address stays what was typed
    if len(expected) < len(URLS):
        page.get_by_role("link", name=f"Open {expected[0]}").click()
        expect(page.get_by_role("heading", name=expected[0], exact=True)).to_be_visible()

    page.goto(base)
    sign_out(page)
    expect(page.get_by_role("heading", name=expected[0], exact=True)).to_have_count(0)


def test_a_person_no_rule_names_sees_no_access_and_can_sign_out(app_server, page):
    base, _ = app_server
    sign_in(page, base, "nobody")
    expect(page.get_by_role("heading", name="No access")).to_be_visible()
    expect(page.get_by_text("eve@\u2060elsewhere.test")).to_be_visible()  # text, not a mailto link
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    for url in URLS.values():
        page.goto(f"{base}/{url}")
        expect(page.get_by_text("Page not found")).to_be_visible()
        expect(page.get_by_role("heading", name="No access")).to_be_visible()
    page.goto(base)
    sign_out(page)
