"""Settings from the environment and ``.streamlit/secrets.toml``, checked once at start-up.

Environment variables win over the secrets file. A broken setting raises ConfigError naming the
setting and the file (or variable) it came from, so start-up fails with one clear sentence.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from billing_core.access.roles import Role
from billing_core.core.errors import ConfigError, PricingError
from billing_core.pricing.catalog import DEFAULT_PRICING_FILE, Pricing, load_pricing

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SECRETS_FILE = PROJECT_ROOT / ".streamlit" / "secrets.toml"
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'data' / 'billing.db'}"

# setting name -> (environment variable, path in secrets.toml)
_SOURCES = {
    "database_url": ("DATABASE_URL", ("database_url",)),
    "stripe_api_key": ("STRIPE_API_KEY", ("stripe", "api_key")),
    "stripe_api_base": ("STRIPE_API_BASE", ("stripe", "api_base")),
    "pricing_file": ("BILLING_PRICING_FILE", ("billing", "pricing_file")),
    "invoice_series": ("BILLING_INVOICE_SERIES", ("billing", "invoice_series")),
    "sandbox_invoice_series": ("BILLING_SANDBOX_INVOICE_SERIES", ("billing", "sandbox_invoice_series")),
    "credit_note_series": ("BILLING_CREDIT_NOTE_SERIES", ("billing", "credit_note_series")),
    "sandbox_credit_note_series": ("BILLING_SANDBOX_CREDIT_NOTE_SERIES", ("billing", "sandbox_credit_note_series")),
    "local_mode": ("BILLING_LOCAL_MODE", ("access", "local_mode")),
    "local_email": ("BILLING_LOCAL_EMAIL", ("access", "local_email")),
    "local_default_role": ("BILLING_LOCAL_ROLE", ("access", "local_default_role")),
    "company_name": ("BILLING_COMPANY_NAME", ("company", "name")),
    "company_address": ("BILLING_COMPANY_ADDRESS", ("company", "address")),
    "company_tax_id": ("BILLING_COMPANY_TAX_ID", ("company", "tax_id")),
    "company_email": ("BILLING_COMPANY_EMAIL", ("company", "email")),
    "company_country": ("BILLING_COMPANY_COUNTRY", ("company", "country")),
    "invoice_dir": ("BILLING_INVOICE_DIR", ("invoices", "storage_dir")),
    "invoice_logo": ("BILLING_INVOICE_LOGO", ("invoices", "logo")),
    "invoice_bucket": ("BILLING_INVOICE_BUCKET", ("invoices", "bucket")),
    "invoice_bucket_prefix": ("BILLING_INVOICE_BUCKET_PREFIX", ("invoices", "bucket_prefix")),
    "invoice_bucket_endpoint": ("BILLING_INVOICE_BUCKET_ENDPOINT", ("invoices", "bucket_endpoint_url")),
    "invoice_bucket_region": ("BILLING_INVOICE_BUCKET_REGION", ("invoices", "bucket_region")),
    "task_engine": ("BILLING_TASK_ENGINE", ("tasks", "engine")),
    "invoice_paper": ("BILLING_INVOICE_PAPER", ("invoices", "paper")),
    "report_timezones": ("BILLING_REPORT_TIMEZONES", ("reports", "timezones")),
    "sign_in_name": ("BILLING_SIGN_IN_NAME", ("access", "sign_in_name")),
    "einvoice_default": ("BILLING_EINVOICE_DEFAULT", ("einvoice", "default")),
    "einvoice_countries": ("BILLING_EINVOICE_COUNTRIES", ("einvoice", "countries")),
    "einvoice_customers": ("BILLING_EINVOICE_CUSTOMERS", ("einvoice", "customers")),
}
# What a buyer's invoice file is: a PDF; a Factur-X PDF/A-3 with its EN 16931 CII XML; that and a UBL file.
EINVOICE_FORMATS = ("pdf", "facturx", "facturx+ubl")
# Time zones whose local days the revenue rollup keeps exactly (billing_core.revenue.rollup).
DEFAULT_REPORT_TIMEZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai")


@dataclass(frozen=True)
class Company:
    """The seller as printed on invoices."""

    name: str = "Model Router Ltd."
    address: str = "1 Example Street, Dublin D02, Ireland"
    tax_id: str = "IE1234567X"
    email: str = "billing@example.com"
    country: str = "IE"


@dataclass(frozen=True)
class SignIn:
    """The OpenID Connect provider of ``[auth]`` in the secrets file, which ``st.login`` reads itself.

    Only what the app shows or checks is kept here; the client and cookie secrets stay with Streamlit.
    """

    server_metadata_url: str
    client_id: str
    redirect_uri: str
    provider_name: str


@dataclass(frozen=True)
class RoleMapping:
    """Who gets which role (``[access.roles]``): by exact email, by a groups claim, by email domain.

    Pairs keep the file's order: of several listed groups a person belongs to, the first one decides.
    """

    emails: tuple[tuple[str, Role], ...] = ()
    domains: tuple[tuple[str, Role], ...] = ()
    groups: tuple[tuple[str, Role], ...] = ()
    groups_claim: str = "groups"


@dataclass(frozen=True)
class CreditPolicy:
    """``[credits]``: how usage draws on the pools, when a change needs two approvals, how long a
    proposal waits, when credits expire. Amounts in hundredths of a credit or cents."""

    draw_order: str = "promotional_first"  # or "paid_first"
    two_approvals_above: int = 500_00  # adjustments of more credits need a second approver
    refund_approval_above_cents: int = 1_000_00  # refunds of more than this wait for an approval
    manual_completion_approval: bool = False  # a manual completion (provider reference) waits for an approval
    proposal_hours: int = 72  # a proposal nobody decided in this time can no longer be approved
    paid_expiry_days: int = 365  # paid credits unused this long after purchase expire (first in, first out)
    promotional_expiry_days: int = 90  # a grant's own term, unless the grant says otherwise
    notice_days: int = 30  # customers whose credits expire within this many days are listed


DRAW_ORDERS = ("promotional_first", "paid_first")
_BOOLEAN_POLICIES = {"manual_completion_approval"}


def _credit_policy(table: dict, path: Path) -> CreditPolicy:
    values: dict[str, object] = {}
    known = {f for f in CreditPolicy.__dataclass_fields__}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"Setting credits.{key} (in {path}): unknown; known are {', '.join(sorted(known))}.")
        if key == "draw_order":
            if value not in DRAW_ORDERS:
                raise ConfigError(f"Setting credits.draw_order (in {path}): must be one of {', '.join(DRAW_ORDERS)}.")
        elif key in _BOOLEAN_POLICIES:
            if not isinstance(value, bool):
                raise ConfigError(f"Setting credits.{key} (in {path}): must be true or false.")
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**12:
            raise ConfigError(f"Setting credits.{key} (in {path}): must be a whole number from 0 to 10^12.")
        values[key] = value
    return CreditPolicy(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    pricing_file: Path = DEFAULT_PRICING_FILE
    invoice_series: str = "INV-{year}"
    sandbox_invoice_series: str = "SBX-{year}"
    credit_note_series: str = "CN-{year}"
    sandbox_credit_note_series: str = "SBX-CN-{year}"
    local_mode: bool = False
    local_email: str = "local@localhost"
    local_default_role: str = "analyst"
    company: Company = field(default_factory=Company)
    invoice_dir: Path | str = PROJECT_ROOT / "data" / "invoices"
    invoice_logo: Path | str | None = None
    invoice_paper: str = "A4"
    # A team's S3-compatible bucket for invoice files instead of invoice_dir; credentials come from boto3's
    # own chain (AWS_* variables, ~/.aws files, instance roles), never from here.
    invoice_bucket: str | None = None
    invoice_bucket_prefix: str = ""
    invoice_bucket_endpoint: str | None = None
    invoice_bucket_region: str | None = None
    # "local" (a process pool the page starts) or "procrastinate" (tasks in PostgreSQL, run by workers).
    task_engine: str = "local"
    report_timezones: tuple[str, ...] = DEFAULT_REPORT_TIMEZONES
    sign_in: SignIn | None = None
    roles: RoleMapping = field(default_factory=RoleMapping)
    # E-invoice format per buyer: by customer public id, else by country, else the default.
    einvoice_default: str = "pdf"
    einvoice_countries: tuple[tuple[str, str], ...] = ()
    einvoice_customers: tuple[tuple[str, str], ...] = ()

    def einvoice_format(self, buyer: dict) -> str:
        """The e-invoice format configured for a buyer (an invoice's frozen buyer snapshot)."""
        by_customer = dict(self.einvoice_customers).get(str(buyer.get("customer") or ""))
        country = (buyer.get("country") or "").upper()
        return by_customer or dict(self.einvoice_countries).get(country, self.einvoice_default)

    credits: CreditPolicy = field(default_factory=CreditPolicy)

    @property
    def stripe_mode(self) -> str:
        """'LIVE', 'TEST', or 'SIMULATED' when no Stripe key is configured."""
        if not self.stripe_api_key:
            return "SIMULATED"
        return "LIVE" if "_live_" in self.stripe_api_key else "TEST"

    def pricing(self) -> Pricing:
        return load_pricing(self.pricing_file)


def load_settings(env: dict[str, str] | None = None, secrets_file: str | Path | None = None) -> Settings:
    """Read settings; raise ConfigError naming the setting and its source when one is broken."""
    env = dict(os.environ if env is None else env)
    path = Path(secrets_file or env.get("BILLING_SECRETS_FILE") or DEFAULT_SECRETS_FILE)
    secrets = _read_secrets(path)

    raw: dict[str, tuple[object, str]] = {}
    for name, (var, keys) in _SOURCES.items():
        if env.get(var, "").strip():
            raw[name] = (env[var].strip(), f"environment variable {var}")
            continue
        node: object = secrets
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            raw[name] = (node, f"{'.'.join(keys)} in {path}")

    values: dict[str, object] = {}
    company: dict[str, str] = {}
    for name, (value, origin) in raw.items():
        values[name] = _validate(name, value, origin)
    for name in list(values):
        if name.startswith("company_"):
            company[name.removeprefix("company_")] = values.pop(name)  # type: ignore[assignment]
    sign_in_name = values.pop("sign_in_name", None)
    sign_in = _sign_in(secrets.get("auth"), path, sign_in_name)  # type: ignore[arg-type]
    if sign_in is not None and values.get("local_mode"):
        raise ConfigError(
            f"Setting local_mode ({raw['local_mode'][1]}): must be off while sign-in is configured "
            f"([auth] in {path}); local mode would let anyone pick a role without signing in."
        )
    roles = _role_mapping(_table(secrets, ("access", "roles"), path), path)
    settings = Settings(
        **values,  # type: ignore[arg-type]
        company=Company(**company),
        sign_in=sign_in,
        roles=roles,
        credits=_credit_policy(_table(secrets, ("credits",), path), path),
    )
    if settings.task_engine == "procrastinate" and not settings.database_url.startswith("postgresql"):
        origin = raw["task_engine"][1]
        raise ConfigError(
            f"Setting task_engine ({origin}): procrastinate keeps its queue in PostgreSQL; set a "
            "postgresql+psycopg:// database_url, or use the local engine."
        )
    series = ["invoice_series", "sandbox_invoice_series", "credit_note_series", "sandbox_credit_note_series"]
    for i, name in enumerate(series):
        for other in series[:i]:
            if getattr(settings, name) == getattr(settings, other):
                origin = raw.get(name, (None, "the default"))[1]
                raise ConfigError(
                    f"Setting {name} ({origin}): must differ from {other}; each kind of document "
                    "(real or sandbox, invoice or credit note) numbers in its own series."
                )
    try:
        settings.pricing()
    except PricingError as exc:
        origin = raw.get("pricing_file", (None, "the default"))[1]
        raise ConfigError(f"Setting pricing_file ({origin}): {exc}") from None
    return settings


def _read_secrets(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The settings file {path} is not valid TOML: {exc}") from None


def _table(secrets: dict, keys: tuple[str, ...], path: Path) -> dict:
    node: object = secrets
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise ConfigError(f"Setting {'.'.join(keys)} (in {path}): must be a table, e.g. [{'.'.join(keys)}].")
    return node


# Values copied from documentation and examples; a cookie secret must be the operator's own.
_PLACEHOLDER_WORDS = (
    "changeme",
    "replaceme",
    "yoursecret",
    "cookiesecret",
    "secretkey",
    "placeholder",
    "example",
    "xxxxxx",
)
MIN_COOKIE_SECRET = 32


def _weak_cookie_secret(value: str) -> str | None:
    """Why ``value`` is not fit to sign session cookies, or None. Never quotes the value itself."""
    if len(value) < MIN_COOKIE_SECRET:
        return f"is shorter than {MIN_COOKIE_SECRET} characters"
    letters = re.sub(r"[^a-z0-9]", "", value.lower())
    if any(word in letters for word in _PLACEHOLDER_WORDS):
        return "looks like a placeholder from an example"
    if len(set(value)) < 10:
        return "repeats too few different characters"
    return None


def _sign_in(auth: object, path: Path, provider_name: object) -> SignIn | None:
    """``[auth]`` checked the way st.login will use it; None when sign-in is not configured."""
    if auth is None:
        return None
    if not isinstance(auth, dict):
        raise ConfigError(f"Setting auth (in {path}): must be a table [auth].")

    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError(f"Setting auth.{key} (in {path}): {reason}")

    texts: dict[str, str] = {}
    for key in ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url"):
        value = auth.get(key)
        if not isinstance(value, str) or not value.strip():
            raise fail(
                key,
                "is missing; sign-in needs redirect_uri, cookie_secret, client_id, client_secret "
                "and server_metadata_url in [auth].",
            )
        texts[key] = value.strip()
    if weakness := _weak_cookie_secret(texts["cookie_secret"]):
        raise fail(
            "cookie_secret",
            f"{weakness}; set a random value of at least {MIN_COOKIE_SECRET} characters, "
            'e.g. from python -c "import secrets; print(secrets.token_urlsafe(48))".',
        )
    if not re.match(r"^https?://[^\s/]+(/[^\s]*)?/oauth2callback$", texts["redirect_uri"]):
        raise fail("redirect_uri", "must be this app's address ending in /oauth2callback.")
    metadata = texts["server_metadata_url"]
    if not re.match(r"^https://[^\s]+$", metadata) and not re.match(
        r"^http://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?/[^\s]*$", metadata
    ):
        raise fail("server_metadata_url", "must be an https URL (plain http only on this machine).")
    if provider_name is None:
        provider_name = make_url_host(metadata)
    return SignIn(
        server_metadata_url=metadata,
        client_id=texts["client_id"],
        redirect_uri=texts["redirect_uri"],
        provider_name=str(provider_name),
    )


def make_url_host(url: str) -> str:
    """The host of an http(s) URL: the provider's name when none is configured."""
    return re.sub(r"^https?://", "", url).split("/", 1)[0].split(":", 1)[0]


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


def _role_mapping(table: dict, path: Path) -> RoleMapping:
    unknown = sorted(set(table) - {"emails", "domains", "groups", "groups_claim"})
    if unknown:
        raise ConfigError(
            f"Setting access.roles.{unknown[0]} (in {path}): unknown; use emails, domains, groups or groups_claim."
        )

    def pairs(kind: str, check) -> tuple[tuple[str, Role], ...]:
        entries = table.get(kind, {})
        if not isinstance(entries, dict):
            raise ConfigError(f'Setting access.roles.{kind} (in {path}): must be a table, e.g. {{"x" = "finance"}}.')
        seen: dict[str, Role] = {}
        for key, role in entries.items():
            name = f"access.roles.{kind}.{key[:80]}"
            if role not in _ROLES:
                raise ConfigError(f"Setting {name} (in {path}): the role must be one of {', '.join(sorted(_ROLES))}.")
            normal = check(key.strip(), name)
            if normal in seen:
                raise ConfigError(f"Setting {name} (in {path}): listed twice.")
            seen[normal] = Role(role)
        return tuple(seen.items())

    def email(key: str, name: str) -> str:
        if not _EMAIL.match(key) or len(key) > 320:
            raise ConfigError(f"Setting {name} (in {path}): is not an email address.")
        return key.lower()

    def domain(key: str, name: str) -> str:
        if not _DOMAIN.match(key.lower()):
            raise ConfigError(f"Setting {name} (in {path}): write a domain without @, e.g. company.com.")
        return key.lower()

    def group(key: str, name: str) -> str:
        if not key or len(key) > 200:
            raise ConfigError(f"Setting {name} (in {path}): must be a group name.")
        return key

    claim = table.get("groups_claim", "groups")
    if not isinstance(claim, str) or not re.match(r"^[A-Za-z0-9_:./-]{1,100}$", claim):
        raise ConfigError(f"Setting access.roles.groups_claim (in {path}): must be a claim name such as groups.")
    return RoleMapping(
        emails=pairs("emails", email),
        domains=pairs("domains", domain),
        groups=pairs("groups", group),
        groups_claim=claim,
    )


def _timezones(value: object, fail) -> tuple[str, ...]:
    """A comma-separated string or a list of IANA names, e.g. "UTC, Europe/Berlin"; no repeats."""
    names = value if isinstance(value, list) else str(value).split(",")
    zones = tuple(str(n).strip() for n in names if str(n).strip())
    if not zones or len(zones) > 12 or len(set(zones)) != len(zones):
        raise fail("list one to twelve different time zones, e.g. UTC,America/New_York.")
    for zone in zones:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise fail(f"{zone[:40]!r} is not an IANA time zone such as Europe/Berlin.") from None
    if len(",".join(zones)) > 400:
        raise fail("the list is too long.")
    return zones


def _einvoice_map(name: str, value: object, fail) -> tuple[tuple[str, str], ...]:
    """Countries (ISO codes) or customer ids to formats: "FR=facturx,BE=facturx+ubl", or a TOML table."""
    if isinstance(value, dict):
        pairs = list(value.items())
    else:
        text = str(value)
        if len(text) > 20_000:
            raise fail("is too long.")
        pairs = [tuple(part.split("=", 1)) for part in text.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise fail('write KEY=FORMAT pairs separated by commas, e.g. "FR=facturx,BE=facturx+ubl".')
    found: dict[str, str] = {}
    for key, fmt in pairs:
        key, fmt = str(key).strip(), str(fmt).strip()
        if name == "einvoice_countries":
            key = key.upper()
            if not re.fullmatch(r"[A-Z]{2}", key):
                raise fail(f"{key[:20]!r} is not a two-letter country code.")
        elif not re.fullmatch(r"[A-Za-z0-9_]{1,64}", key):
            raise fail(f"{key[:20]!r} is not a customer id such as cus_0123456789abcdef.")
        if fmt not in EINVOICE_FORMATS:
            raise fail(f"the format for {key[:20]} must be one of {', '.join(EINVOICE_FORMATS)}.")
        found[key] = fmt
    return tuple(found.items())


_SERIES = re.compile(r"^[A-Za-z0-9_-]*(\{year\})?[A-Za-z0-9_-]*$")
_ROLES = {"support", "finance", "analyst", "admin"}


def _validate(name: str, value: object, origin: str) -> object:
    def fail(reason: str) -> ConfigError:
        return ConfigError(f"Setting {name} ({origin}): {reason}")

    if name == "local_mode":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise fail(f"must be true or false, not {str(value)[:20]!r}.")
    if name == "report_timezones":
        return _timezones(value, fail)
    if name in ("einvoice_countries", "einvoice_customers"):
        return _einvoice_map(name, value, fail)
    if not isinstance(value, str) or not value.strip():
        raise fail("must be a non-empty string.")
    value = value.strip()
    if name == "database_url":
        try:
            url = make_url(value)
        except ArgumentError:
            raise fail("is not a database URL (e.g. postgresql+psycopg://user@host/db).") from None
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise fail(f"{url.get_backend_name()} is not supported; use sqlite or postgresql.")
        if url.get_backend_name() == "postgresql" and url.drivername not in {"postgresql", "postgresql+psycopg"}:
            raise fail("use the psycopg 3 driver: postgresql+psycopg://...")
        if url.drivername == "postgresql":
            value = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return value
    if name == "stripe_api_key":
        if not re.match(r"^(sk|rk)_(test|live)_[A-Za-z0-9]+$", value):
            raise fail("must be a Stripe secret key (sk_test_..., sk_live_..., rk_...).")
        return value
    if name == "stripe_api_base":
        if not re.match(r"^https?://[^\s]+$", value):
            raise fail("must be an http(s) URL.")
        return value.rstrip("/")
    if name == "pricing_file":
        path = Path(value)
        return path if path.is_absolute() else PROJECT_ROOT / path
    if name.endswith("_series"):
        if not _SERIES.match(value) or len(value) > 30:
            raise fail("may hold letters, digits, '-', '_' and {year}, e.g. INV-{year}.")
        return value
    if name == "einvoice_default":
        if value not in EINVOICE_FORMATS:
            raise fail(f"must be one of {', '.join(EINVOICE_FORMATS)}.")
        return value
    if name == "invoice_bucket":
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", value):
            raise fail("must be an S3 bucket name (3-63 lowercase letters, digits, '.' and '-').")
        return value
    if name == "invoice_bucket_endpoint":
        if not re.match(r"^https?://[^\s@]+$", value):
            raise fail("must be an http(s) URL without credentials, e.g. https://s3.example.com.")
        return value.rstrip("/")
    if name == "invoice_bucket_prefix":
        if len(value) > 200 or not re.match(r"^[A-Za-z0-9._/-]+$", value):
            raise fail("may hold letters, digits, '.', '_', '-' and '/', at most 200 characters.")
        return value.strip("/")
    if name == "task_engine":
        if value not in {"local", "procrastinate"}:
            raise fail("must be local or procrastinate.")
        return value
    if name == "local_default_role":
        if value not in _ROLES:
            raise fail(f"must be one of {', '.join(sorted(_ROLES))}.")
        return value
    return value
