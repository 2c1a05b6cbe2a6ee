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

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from billing_core.errors import ConfigError, PricingError
from billing_core.pricing import DEFAULT_PRICING_FILE, Pricing, load_pricing

PROJECT_ROOT = Path(__file__).resolve().parent.parent
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
    "invoice_paper": ("BILLING_INVOICE_PAPER", ("invoices", "paper")),
}


@dataclass(frozen=True)
class Company:
    """The seller as printed on invoices."""

    name: str = "Model Router Ltd."
    address: str = "1 Example Street, Dublin D02, Ireland"
    tax_id: str = "IE1234567X"
    email: str = "billing@example.com"
    country: str = "IE"


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
    settings = Settings(**values, company=Company(**company))  # type: ignore[arg-type]
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
    if name == "local_default_role":
        if value not in _ROLES:
            raise fail(f"must be one of {', '.join(sorted(_ROLES))}.")
        return value
    return value
