"""Hostile input in every search box and upload: no error page, no injection, no markup rendered
from data; every CSV export formula-safe; no configured secret in page text or logs."""

from __future__ import annotations

import ast
import csv
import io
import logging
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from billing_core.access import audit
from billing_core.access.roles import Actor, Role
from billing_core.core import exports
from billing_core.core.db import Database, describe_url
from billing_core.core.errors import NotFound, shown_to_people
from billing_core.core.models import AuditEvent, Customer
from billing_core.credits import usage
from billing_core.payments.simulated import SimulatedGateway
from billing_core.pricing import catalog
from billing_core.reconcile import settlement
from billing_core.reconcile import stuck as reconcile
from pages._text import plain
from tests import test_app_access as access_app
from tests.test_app_access import PEOPLE, SECRETS, page_text

# The same sign-in configuration (with distinctive fake secrets) as the access tests.
sqlite_db = access_app.sqlite_db
signed_in_env = access_app.signed_in_env

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
MARKUP = "**bold** [link](javascript:alert(1)) $x^2$ :red[alarm]"
HOSTILE = [
    "'; DROP TABLE audit_events; --",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    MARKUP,
    "\x00\x07\x1b[31m\u202e\r\n\t ctl",
    '=HYPERLINK("http://evil.test","x")',
    "9" * 20_000,
]
# Every text box a person types into to find or filter, per page.
SEARCH_BOXES = [
    ("orders", "text_input", "q"),
    ("orders", "text_input", "f_min"),
    ("orders", "text_input", "f_max"),
    ("invoices", "text_input", "bills_customer"),
    ("invoices", "text_input", "bills_country"),
    ("invoices", "text_input", "bills_from"),
    ("invoices", "text_input", "bills_to"),
    ("revenue", "text_input", "rev_countries"),
    ("simulator", "text_input", "amount"),
    ("simulator", "text_area", "whatif_text"),
    ("audit", "text_input", "audit_who"),
    ("audit", "text_input", "audit_id"),
]
UPLOADS = [
    ("orders", "settlement_file", "csv"),
    ("simulator", "whatif_file", "toml"),
    ("revenue", "rev_whatif_file", "toml"),
    ("credits", "usage_file", "csv"),
]
# (name, content); the uploader's own extension is appended (the browser and Streamlit refuse others).
HOSTILE_FILES = [
    ("**x**<img src=x onerror=alert(1)>", f'version = "{MARKUP}"\n<script>\n'.encode()),
    ("[link](javascript:alert(1)) $x^2$", f'version = "{MARKUP}"\nreference,amount\n{MARKUP},1\n'.encode()),
    ("binary\u202e\x07", b"\xff\xfe\x00garbage,=1+2,@SUM(A1)\r\n" * 50),
    ("huge", b"order_id,amount\n" + b"=cmd|'/C calc'!A0," + b"9" * 2_000_000 + b"\n"),
]
# Elements whose text Streamlit renders as markdown.
MARKDOWN_ELEMENTS = ("markdown", "caption", "error", "warning", "info", "success", "title", "subheader", "header")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.user = {"is_logged_in": True, "sub": "ada", **PEOPLE[Role.ADMIN]}
    at.run()
    at._page_hash = calc_hash(page)
    at.run()
    assert not at.exception, at.exception
    return at


def rendered_markup(at: AppTest) -> list[str]:
    """Markdown-rendered texts that carry hostile markup unescaped."""
    found = []
    for kind in MARKDOWN_ELEMENTS:
        for element in at.get(kind):
            value = re.sub(r"\\.", "", str(getattr(element, "value", "")))  # escaped characters are text
            if any(marker in value for marker in ("**bold**", "<script>", "<img", "$x^2$", ":red[alarm]", "**x**")):
                found.append(f"{kind}: {value[:120]}")
    return found


@pytest.mark.parametrize("hostile", HOSTILE, ids=["sql", "html", "markdown", "control", "formula", "huge"])
@pytest.mark.parametrize(("page", "kind", "key"), SEARCH_BOXES, ids=[f"{p}-{k}" for p, _, k in SEARCH_BOXES])
def test_hostile_text_in_a_search_box_is_only_text(signed_in_env, sqlite_db, page, kind, key, hostile):
    at = open_page(page)
    getattr(at, kind)(key=key).input(hostile).run()
    assert not at.exception, at.exception
    assert rendered_markup(at) == []
    with sqlite_db.session() as s:  # the tables are still there
        assert s.scalar(select(func.count()).select_from(AuditEvent)) is not None
        assert s.scalar(select(func.count()).select_from(Customer)) is not None


@pytest.mark.parametrize(("name", "content"), HOSTILE_FILES, ids=["html", "markdown", "binary", "huge"])
@pytest.mark.parametrize(("page", "key", "ext"), UPLOADS, ids=[f"{p}-{k}" for p, k, _ in UPLOADS])
def test_a_hostile_upload_is_refused_or_shown_as_text(signed_in_env, page, key, ext, name, content):
    at = open_page(page)
    at.file_uploader(key=key).upload(f"{name}.{ext}", content, "text/plain").run()
    assert not at.exception, at.exception
    assert rendered_markup(at) == []


# --- exports ------------------------------------------------------------------------------------------


def test_audit_csv_defuses_formulas_from_people_and_records(db, session):
    evil = Actor('=HYPERLINK("http://evil.test")', Role.ADMIN)
    audit.record(session, evil, "order.complete", "order", "+ord_1", reason="@SUM(A1)", after={"x": "=1"})
    session.commit()
    rows = audit.export_rows(session, Actor("ada@company.test", Role.ADMIN), audit.AuditFilters())
    cells = [
        c for row in csv.reader(io.StringIO(exports.to_csv_bytes(rows, audit.EXPORT_COLUMNS).decode())) for c in row
    ]
    assert not [c for c in cells if c[:1] in exports.FORMULA_STARTS]
    assert {'\'=HYPERLINK("http://evil.test")', "'+ord_1", "'@SUM(A1)"} <= set(cells)


def test_every_csv_in_billing_core_is_written_by_exports():
    """Exports from every page (bills, revenue, reconcile, settlement, audit) go through
    exports.to_csv_bytes; each of those has its own formula test (test_bills, test_reports,
    test_reconcile, test_settlement, above). A second CSV writer would bypass the defusing."""
    writers = [
        str(path.relative_to(ROOT))
        for path in [*(ROOT / "billing_core").rglob("*.py"), *(ROOT / "pages").rglob("*.py")]
        if re.search(r"csv\.(writer|DictWriter)\(|\.to_csv\((index|path|buf)", path.read_text())
    ]
    assert writers == ["billing_core/core/exports.py"]


# --- secrets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["orders", "invoices", "revenue", "simulator", "audit"])
def test_no_secret_in_page_text_or_logs(signed_in_env, caplog, page):
    caplog.set_level(logging.DEBUG)
    text = page_text(open_page(page))
    for secret in SECRETS:
        assert secret not in text
        assert secret not in caplog.text


# --- Streamlit's own settings -------------------------------------------------------------------------


def streamlit_config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_uploads_are_capped_at_the_largest_file_a_page_takes():
    """Streamlit holds an upload in memory before any page code runs; its default is 200 MB."""
    cap = streamlit_config()["server"]["maxUploadSize"] * 1024 * 1024
    assert cap == settlement.MAX_BYTES
    # and each parser refuses more than its own cap before reading it (tests/test_adversarial_input.py)
    assert usage.MAX_BYTES <= cap and catalog.MAX_FILE_CHARS <= cap


def test_every_file_uploader_is_fed_hostile_files():
    """A new uploader must join UPLOADS above (and its parser tests/test_adversarial_input.py)."""
    sites = sorted(
        f"{path.name}:{node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else '?'}"
        for path in (ROOT / "pages").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "file_uploader"
    )
    assert sites == [
        "_orders_ui.py:Settlement report",  # orders / settlement_file
        "_widgets.py:Upload a what-if pricing (.toml)",  # simulator / whatif_file, revenue / rev_whatif_file
        "credits.py:Usage file (.csv)",  # credits / usage_file
    ]
    assert {page for page, _, _ in UPLOADS} == {"orders", "simulator", "revenue", "credits"}


def test_a_rerun_spends_no_time_on_a_full_garbage_collection_or_on_watching_the_source():
    """As Streamlit reads the config when the app is started from the repository (README): its defaults
    run gc.collect(2) after every script run (0.5-2 s of a page's wall time on a busy machine at 1,000,000
    orders) and poll every imported module's file."""
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from streamlit import config as c; c.get_config_options(force_reparse=True); "
            "print(c.get_option('runner.postScriptGC'), c.get_option('server.fileWatcherType'))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown == ["False", "none"]


def test_every_text_box_on_every_page_caps_what_can_be_typed():
    """The browser stops typing at max_chars and Streamlit's server cuts a longer value to it;
    billing_core still checks every length itself, for callers other than the pages."""
    uncapped = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        # pages/_bench.py drives the pages through AppTest (``at.text_input(key=...)``): it draws no box.
        for path in [ROOT / "app.py", *(p for p in (ROOT / "pages").glob("*.py") if p.name != "_bench.py")]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"text_input", "text_area", "chat_input"}
        and "max_chars" not in {k.arg for k in node.keywords}
    ]
    assert uncapped == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://billing:pw-secret@db.internal:5433/billing", "postgresql db.internal:5433/billing"),
        ("postgresql+psycopg://billing@db.internal/billing?password=pw-secret", "postgresql db.internal/billing"),
        (
            "postgresql+psycopg://db.internal/billing?sslpassword=pw-secret&user=billing",
            "postgresql db.internal/billing",
        ),
        ("sqlite:///data/billing.db", "sqlite data/billing.db"),
    ],
)
def test_the_database_is_described_by_host_port_and_name_only(url, shown):
    """What the sidebar shows every role, and the error page when the database cannot be opened."""
    assert describe_url(url) == shown
    assert Database.describe(type("D", (), {"url": url})()) == shown


def test_streamlit_offers_no_table_export_of_its_own():
    """Streamlit's "Download as CSV" on st.dataframe bypasses exports.to_csv_bytes (formula-safe)."""
    assert streamlit_config()["client"]["disableDataExport"] is True


# --- links from data and URLs ---------------------------------------------------------------------------

# What GitHub-flavoured markdown turns into a live link once escapes are resolved (its "literal
# autolinks"): www., http(s):// and email addresses.
GFM_AUTOLINK = re.compile(r"(?i)(?<![\w])(www\.[\w-]|https?://[\w-])|[\w.+-]@[\w-]+\.[\w-]")
LINKS = ["www.evil.example/login", EVIL_URL := "https://sso-company.evil.example/reset", "ana@evil.example", "WWW.X.IO"]


def resolved(markdown: str) -> str:
    """The text markdown makes of ``markdown``: each backslash escape becomes its character."""
    return re.sub(r"\\(.)", r"\1", markdown)


@pytest.mark.parametrize("text", [*LINKS, f"Call {LINKS[0]} or mail {LINKS[2]} (see {EVIL_URL})"])
def test_plain_text_keeps_urls_and_emails_from_becoming_links(text):
    shown = resolved(plain(text))
    assert GFM_AUTOLINK.search(shown) is None
    assert shown.replace("\u2060", "") == text  # and reads exactly as written


def test_an_order_link_carrying_a_url_is_not_echoed(signed_in_env):
    at = AppTest.from_file(APP, default_timeout=90)
    at.user = {"is_logged_in": True, "sub": "ada", **PEOPLE[Role.ADMIN]}
    at.query_params["order"] = EVIL_URL
    at.run()
    at._page_hash = calc_hash("orders")
    at.run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["No such order: the order id in this link matches no order."]
    for kind in MARKDOWN_ELEMENTS:
        for element in at.get(kind):
            assert GFM_AUTOLINK.search(resolved(str(getattr(element, "value", "")))) is None, kind


def test_a_revenue_link_carrying_a_url_shows_it_only_as_text(signed_in_env):
    at = AppTest.from_file(APP, default_timeout=90)
    at.user = {"is_logged_in": True, "sub": "ada", **PEOPLE[Role.ADMIN]}
    at.query_params["tz"] = EVIL_URL
    at.run()
    at._page_hash = calc_hash("revenue")
    at.run()
    assert not at.exception, at.exception
    notes = [resolved(w.value) for w in at.warning]
    assert any("sso-company" in note for note in notes)
    assert [note for note in notes if GFM_AUTOLINK.search(note)] == []


# --- exception text stays on the server -------------------------------------------------------------------

DRIVER_SECRET = "postgresql://billing:hunter2@db.internal/billing"


def test_an_unexpected_error_is_shown_as_its_type_and_a_sentence_and_logged_in_full(caplog):
    shown = shown_to_people(RuntimeError(f"connection to {DRIVER_SECRET} failed"), "checking order ord_1")
    assert shown == "Unexpected error (RuntimeError) while checking order ord_1; the details are in the server log."
    assert DRIVER_SECRET in caplog.text


def test_a_domain_error_is_shown_as_written():
    assert shown_to_people(NotFound("There is no order 'ord_x'."), "checking") == "There is no order 'ord_x'."


def test_a_reconcile_row_never_carries_the_text_of_an_unexpected_error(db, admin, support, settings, pricing, caplog):
    from tests.test_reconcile import open_orders, window

    sim = SimulatedGateway(db)
    open_orders(db, admin, pricing, sim, 1)

    class Broken:
        name = "simulated"

        def fetch_status(self, ref):
            raise RuntimeError(f"connection to {DRIVER_SECRET} failed")

    report = reconcile.reconcile(db, support, settings, **window(), gateway_for=lambda *a: Broken())
    (row,) = report.rows
    assert row.outcome is reconcile.Outcome.ERROR
    assert DRIVER_SECRET not in row.message and "RuntimeError" in row.message
    assert DRIVER_SECRET not in report.to_csv().decode()
    assert DRIVER_SECRET in caplog.text
