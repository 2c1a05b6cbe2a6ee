"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL (default: the local server's billing_test database, created
if missing). Where it cannot be reached the PostgreSQL half is skipped, except under CI=true, where
a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from billing_core.access.roles import Actor, Role
from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.core.models import Base
from billing_core.demo import seeding
from billing_core.pricing.catalog import load_pricing
from tests.bucket_support import moto_endpoint, store  # noqa: F401  (fixtures: the moto bucket, each store)
from tests.e2e_support import CHROMIUM_ARGS, free_port
from tests.helpers import DEMO_END

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Browser assertions wait for Streamlit's reruns; on a loaded 2-core machine 5 s is not enough.
expect.set_options(timeout=20_000)
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/billing_test")
OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"


@pytest.fixture(scope="session", autouse=True)
def _demo_data_ends_on_a_fixed_day():
    """A seed without an end date ends on DEMO_END in tests, not on the day the suite runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(seeding, "default_end", lambda: DEMO_END)
        yield


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where every half of the suite must run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this fails the run instead of skipping)")
    pytest.skip(reason)


def _ensure_pg_database(url: str) -> str | None:
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no PostgreSQL here"
        return f"PostgreSQL at {parsed.render_as_string(hide_password=True)} is not reachable: {exc.__class__.__name__}"
    finally:
        admin.dispose()
    return None


@pytest.fixture(scope="session")
def pg_database():
    problem = _ensure_pg_database(PG_URL)
    if problem:
        unavailable(problem)
    database = Database(PG_URL)
    with database.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    with database.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.dispose()
    return path


def _truncate_all(database: Database) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> Database:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "billing.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
    else:
        database = request.getfixturevalue("pg_database")
        _truncate_all(database)
        yield database


@pytest.fixture
def session(db):
    with db.session() as s:
        yield s


@pytest.fixture
def settings(db) -> Settings:
    return Settings(database_url=db.url)


@pytest.fixture(scope="session")
def pricing():
    return load_pricing()


@pytest.fixture
def admin() -> Actor:
    return Actor("ada@company.test", Role.ADMIN, "Ada Admin")


@pytest.fixture
def support() -> Actor:
    return Actor("sam@company.test", Role.SUPPORT, "Sam Support")


@pytest.fixture
def finance() -> Actor:
    return Actor("fay@company.test", Role.FINANCE, "Fay Finance")


@pytest.fixture
def analyst() -> Actor:
    return Actor("ann@company.test", Role.ANALYST, "Ann Analyst")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        unavailable("Chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def browser(chromium_path) -> Iterator[Browser]:
    """Headless Chromium for the browser tests, one per test module."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def viewport() -> dict[str, int]:
    """The browser page's size; a test module overrides this fixture for a taller page."""
    return {"width": 1400, "height": 1000}


@pytest.fixture
def page(browser, viewport) -> Iterator[Page]:
    """A fresh browser context and page, waiting up to 20 s for each action."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory):
    """A real, stateful fake Stripe (localstripe) on a loopback port for the whole session."""
    import subprocess
    import sys
    import time
    import urllib.request

    exe = Path(sys.executable).with_name("localstripe")
    if not exe.exists():
        unavailable("localstripe is not installed (pip install -r requirements-test.txt)")
    port = free_port()
    log = (tmp_path_factory.mktemp("localstripe") / "localstripe.log").open("w")
    proc = subprocess.Popen(
        [str(exe), "--port", str(port), "--from-scratch"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=log.name.rsplit("/", 1)[0],
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{url}/v1/balance", timeout=1)  # loopback only
            break
        except OSError as exc:
            if "401" in str(exc) or "HTTP Error" in str(exc):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"localstripe did not start: {exc}")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture
def stripe_gateway(localstripe_url):
    from billing_core.payments.stripe_gateway import StripeGateway

    return StripeGateway("sk_test_localstripe", localstripe_url, retries=0)


def pay_at_stripe(localstripe_url: str, ref: str, card: str = "4242424242424242") -> None:
    """Play the customer: attach a card to the PaymentIntent and confirm it at (local) Stripe."""
    import stripe

    client = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe_url})
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    client.v1.payment_intents.update(ref, params={"payment_method": method.id})
    client.v1.payment_intents.confirm(ref)
