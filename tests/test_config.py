import pytest

from billing_core.core.config import load_settings
from billing_core.core.errors import ConfigError


def test_defaults_work_without_any_setting(tmp_path):
    settings = load_settings(env={}, secrets_file=tmp_path / "none.toml")
    assert settings.database_url.startswith("sqlite:///")
    assert settings.stripe_mode == "SIMULATED"
    assert settings.local_mode is False
    assert settings.pricing().version == "2026.1"


def test_secrets_file_is_read_and_environment_wins(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        'database_url = "sqlite:///x.db"\n'
        '[stripe]\napi_key = "sk_test_abc123"\n'
        '[company]\nname = "Routers GmbH"\ntax_id = "DE123456789"\n'
        "[access]\nlocal_mode = true\n"
    )
    settings = load_settings(env={"DATABASE_URL": "postgresql://u@h/db"}, secrets_file=secrets)
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.stripe_mode == "TEST"
    assert settings.company.name == "Routers GmbH"
    assert settings.company.tax_id == "DE123456789"
    assert settings.local_mode is True


def test_live_key_is_recognised(tmp_path):
    settings = load_settings(env={"STRIPE_API_KEY": "sk_live_xyz"}, secrets_file=tmp_path / "none.toml")
    assert settings.stripe_mode == "LIVE"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_URL": "not a url"}, r"Setting database_url \(environment variable DATABASE_URL\)"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "mysql is not supported"),
        ({"STRIPE_API_KEY": "pk_test_123"}, "Setting stripe_api_key"),
        ({"BILLING_LOCAL_MODE": "maybe"}, "Setting local_mode"),
        ({"BILLING_LOCAL_ROLE": "root"}, "Setting local_default_role"),
        ({"BILLING_INVOICE_SERIES": "INV {year}!"}, "Setting invoice_series"),
        ({"BILLING_PRICING_FILE": "/nowhere/pricing.toml"}, "Setting pricing_file .*does not exist"),
    ],
)
def test_a_broken_setting_names_itself_and_its_source(env, named, tmp_path):
    with pytest.raises(ConfigError, match=named):
        load_settings(env=env, secrets_file=tmp_path / "none.toml")


def test_broken_setting_in_file_names_the_file(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[stripe]\napi_key = "nonsense"\n')
    with pytest.raises(ConfigError, match=r"stripe\.api_key in .*secrets\.toml"):
        load_settings(env={}, secrets_file=secrets)


def test_unparsable_secrets_file_is_named(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[stripe\n")
    with pytest.raises(ConfigError, match="secrets.toml is not valid TOML"):
        load_settings(env={}, secrets_file=secrets)


def test_broken_pricing_file_stops_start_up(tmp_path):
    bad = tmp_path / "pricing.toml"
    bad.write_text('version = "x"\n')
    with pytest.raises(ConfigError, match="pricing.toml: credits_per_usd is missing"):
        load_settings(env={"BILLING_PRICING_FILE": str(bad)}, secrets_file=tmp_path / "none.toml")


def test_same_series_for_real_and_sandbox_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="sandbox_invoice_series"):
        load_settings(
            env={"BILLING_INVOICE_SERIES": "INV-{year}", "BILLING_SANDBOX_INVOICE_SERIES": "INV-{year}"},
            secrets_file=tmp_path / "none.toml",
        )


def test_the_four_eyes_settings_are_read_from_the_credits_table(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[credits]\nrefund_approval_above_cents = 25000\nmanual_completion_approval = true\n")
    policy = load_settings(env={}, secrets_file=secrets).credits
    assert (policy.refund_approval_above_cents, policy.manual_completion_approval) == (25000, True)
    assert load_settings(env={}, secrets_file=tmp_path / "none.toml").credits.manual_completion_approval is False


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('manual_completion_approval = "yes"', "credits.manual_completion_approval .*must be true or false"),
        ("manual_completion_approval = 1", "credits.manual_completion_approval .*must be true or false"),
        ("refund_approval_above_cents = true", "credits.refund_approval_above_cents .*whole number"),
        ("refund_approval_above_cents = -1", "credits.refund_approval_above_cents .*whole number"),
    ],
)
def test_a_broken_four_eyes_setting_names_itself(tmp_path, line, message):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f"[credits]\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, secrets_file=secrets)
