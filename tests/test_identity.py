"""Sign-in settings and role resolution: who gets which role, and who gets none."""

from __future__ import annotations

import pytest

from billing_core.access.identity import NOT_ASCII, NOT_VERIFIED, actor_for, email_of, refusal_of, role_for
from billing_core.access.roles import Actor, Role
from billing_core.core.config import RoleMapping, load_settings
from billing_core.core.errors import ConfigError

GOOD_SECRET = "kT9vQ2mZ7xR4pL8wN3bF6hJ1cY5dG0sA-uE"
AUTH = f"""
[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "{GOOD_SECRET}"
client_id = "billing-ops"
client_secret = "client-secret-value"
server_metadata_url = "https://login.company.test/.well-known/openid-configuration"
"""
ROLES = """
[access.roles]
groups_claim = "groups"
emails = {"Ana@Company.test" = "finance", "boss@partner.test" = "admin"}
domains = {"company.test" = "support"}
groups = {"billing-analysts" = "analyst", "billing-admins" = "admin"}
"""


def settings_from(tmp_path, text: str, env: dict | None = None):
    path = tmp_path / "secrets.toml"
    path.write_text(text)
    return load_settings(env=env or {}, secrets_file=path)


@pytest.fixture
def mapping(tmp_path) -> RoleMapping:
    return settings_from(tmp_path, AUTH + ROLES).roles


# --- role resolution -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "role"),
    [
        ({"email": "ana@company.test", "email_verified": True}, Role.FINANCE),  # exact email, any case
        ({"email": "ANA@company.test", "email_verified": True}, Role.FINANCE),
        ({"email": "boss@partner.test", "email_verified": True}, Role.ADMIN),
        ({"email": "zed@company.test", "email_verified": True}, Role.SUPPORT),  # by domain
        (
            {"email": "zed@company.test", "email_verified": True, "groups": ["billing-analysts"]},
            Role.ANALYST,
        ),  # group beats domain
        (
            {"email": "ana@company.test", "email_verified": True, "groups": ["billing-admins"]},
            Role.FINANCE,
        ),  # email beats group
        (
            {"email": "x@elsewhere.test", "email_verified": True, "groups": ["billing-admins", "billing-analysts"]},
            Role.ANALYST,
        ),  # first listed
        (
            {"email": "x@elsewhere.test", "email_verified": True, "groups": "billing-admins"},
            Role.ADMIN,
        ),  # a single string claim
    ],
)
def test_role_comes_from_email_then_group_then_domain(mapping, claims, role):
    assert role_for(claims, mapping) is role


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"email": "stranger@elsewhere.test", "email_verified": True},
        {"email": "zed@sub.company.test", "email_verified": True},  # a subdomain is not the domain
        {"email": "zed@company.test.evil.test", "email_verified": True},
        {"email": "company.test", "email_verified": True},
        {"email": "zed@company.test", "email_verified": False},  # the provider did not verify it
        {"email": "ana@company.test", "email_verified": "false"},
        {"email": ["ana@company.test"]},
        {"email": "x@elsewhere.test", "email_verified": True, "groups": ["Billing-Admins"]},  # groups match exactly
        {"email": "x@elsewhere.test", "email_verified": True, "groups": {"billing-admins": True}},
        {"email": "x@elsewhere.test", "email_verified": True, "roles": ["billing-admins"]},  # not the configured claim
    ],
)
def test_anybody_no_rule_names_gets_no_role(mapping, claims):
    assert role_for(claims, mapping) is None


def test_groups_claim_name_is_configurable(tmp_path):
    mapping = settings_from(tmp_path, AUTH + ROLES.replace('"groups"', '"roles"')).roles
    assert (
        role_for({"email": "x@elsewhere.test", "email_verified": True, "roles": ["billing-admins"]}, mapping)
        is Role.ADMIN
    )
    assert (
        role_for({"email": "x@elsewhere.test", "email_verified": True, "groups": ["billing-admins"]}, mapping) is None
    )


def test_actor_carries_email_role_and_name(mapping):
    actor = actor_for(
        {"email": " Ana@Company.test ", "email_verified": True, "name": "Ana Finance", "sub": "1"}, mapping
    )
    assert actor == Actor("ana@company.test", Role.FINANCE, "Ana Finance")


def test_a_group_member_without_an_email_gets_no_actor(mapping):
    assert actor_for({"sub": "42", "groups": ["billing-admins"]}, mapping) is None


def test_empty_mapping_denies_everyone():
    assert (
        role_for({"email": "ana@company.test", "email_verified": True, "groups": ["billing-admins"]}, RoleMapping())
        is None
    )


# --- settings ----------------------------------------------------------------------------------------


def test_sign_in_settings_are_read_without_keeping_secrets(tmp_path):
    settings = settings_from(tmp_path, AUTH + ROLES)
    assert settings.sign_in is not None
    assert settings.sign_in.provider_name == "login.company.test"
    assert settings.sign_in.client_id == "billing-ops"
    assert GOOD_SECRET not in repr(settings)
    assert "client-secret-value" not in repr(settings)


def test_provider_name_can_be_set(tmp_path):
    settings = settings_from(tmp_path, AUTH + '[access]\nsign_in_name = "Company SSO"\n')
    assert settings.sign_in.provider_name == "Company SSO"


def test_no_auth_table_means_no_sign_in(tmp_path):
    assert settings_from(tmp_path, ROLES).sign_in is None


@pytest.mark.parametrize(
    "secret",
    [
        "short-but-random-Zq8",
        "your-cookie-secret-goes-here-please-1234",
        "CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "abababababababababababababababababababab",
    ],
)
def test_weak_cookie_secret_stops_start_up_naming_the_setting(tmp_path, secret):
    with pytest.raises(ConfigError, match=r"Setting auth\.cookie_secret \(in .*secrets\.toml\)") as caught:
        settings_from(tmp_path, AUTH.replace(GOOD_SECRET, secret))
    assert secret not in str(caught.value)


def test_missing_cookie_secret_stops_start_up(tmp_path):
    text = "\n".join(line for line in AUTH.splitlines() if not line.startswith("cookie_secret"))
    with pytest.raises(ConfigError, match=r"Setting auth\.cookie_secret .* is missing"):
        settings_from(tmp_path, text)


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("http://localhost:8501/oauth2callback", "http://localhost:8501/", "auth.redirect_uri"),
        ("https://login.company.test/", "http://login.company.test/", "auth.server_metadata_url"),
        ('client_id = "billing-ops"', 'client_id = ""', "auth.client_id"),
    ],
)
def test_broken_auth_settings_are_named(tmp_path, old, new, named):
    with pytest.raises(ConfigError, match=rf"Setting {named.replace('.', chr(92) + '.')} "):
        settings_from(tmp_path, AUTH.replace(old, new))


@pytest.mark.parametrize(
    ("roles", "named"),
    [
        ('emails = {"ana@company.test" = "root"}', r"access\.roles\.emails\.ana@company\.test .*one of"),
        ('emails = {"not-an-email" = "admin"}', r"access\.roles\.emails\.not-an-email .*not an email"),
        ('domains = {"@company.test" = "admin"}', r"access\.roles\.domains\.@company\.test .*without @"),
        ('groups = ["billing-admins"]', r"access\.roles\.groups .*must be a table"),
        ('email = {"ana@company.test" = "admin"}', r"access\.roles\.email .*unknown"),
        ('groups_claim = "a b"', r"access\.roles\.groups_claim"),
        ('emails = {"ana@company.test" = "admin", "ANA@company.test" = "support"}', "listed twice"),
    ],
)
def test_broken_role_mapping_is_named(tmp_path, roles, named):
    with pytest.raises(ConfigError, match=named):
        settings_from(tmp_path, f"[access.roles]\n{roles}\n")


def test_local_mode_cannot_be_on_with_sign_in(tmp_path):
    with pytest.raises(ConfigError, match=r"Setting local_mode \(environment variable BILLING_LOCAL_MODE\)"):
        settings_from(tmp_path, AUTH, env={"BILLING_LOCAL_MODE": "1"})


# --- the command line names who ran it ---------------------------------------------------------------


def test_cli_seed_records_the_actor_given(tmp_path, monkeypatch):
    from sqlalchemy import select

    from billing_core.cli.main import main
    from billing_core.core.db import Database
    from billing_core.core.models import AuditEvent

    monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "none.toml"))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["seed", "--orders", "30", "--actor", "ops@company.test", "--database-url", url]) == 0
    database = Database(url)
    with database.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "demo.seed")))
    database.dispose()
    assert [(e.actor_email, e.actor_role) for e in events] == [("ops@company.test", Role.ADMIN)]


def test_cli_refuses_an_actor_with_control_characters(tmp_path, monkeypatch, capsys):
    from billing_core.cli.main import main

    monkeypatch.setenv("BILLING_SECRETS_FILE", str(tmp_path / "none.toml"))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["setup", "--actor", "ops@company.test\x1b[2J", "--database-url", url]) == 2
    assert "--actor must be" in capsys.readouterr().err


# --- claims taken strictly ----------------------------------------------------------------------------


@pytest.mark.parametrize("verified", [None, False, "false", "False", "FALSE", "0", 0, 1, "yes", "True", "TRUE"])
def test_only_an_email_verified_claim_of_true_gives_a_role(mapping, verified):
    claims = {"email": "fay@company.test", "groups": ["billing-admins"], "email_verified": verified}
    assert role_for(claims, mapping) is None
    assert actor_for(claims, mapping) is None
    assert refusal_of(claims) == NOT_VERIFIED.format(email="fay@company.test")


def test_a_token_without_email_verified_gets_no_role(mapping):
    assert role_for({"email": "ana@company.test"}, mapping) is None
    assert actor_for({"email": "ana@company.test", "groups": ["billing-admins"]}, mapping) is None


@pytest.mark.parametrize("verified", [True, "true"])
def test_email_verified_true_or_the_string_true_verifies(mapping, verified):
    assert role_for({"email": "ana@company.test", "email_verified": verified}, mapping) is Role.FINANCE
    assert refusal_of({"email": "ana@company.test", "email_verified": verified}) is None


@pytest.mark.parametrize(
    "email",
    [
        "\u212aim@company.test",  # KELVIN SIGN lower-cases to "k"
        "ana@company.tes\u0442",  # Cyrillic te
        "\uff41na@company.test",  # fullwidth a, which NFKC folds to "a"
        "ana@company.test\u200b",  # zero-width space
        "bo\u00dfs@partner.test",
    ],
)
def test_a_non_ascii_email_gets_no_role_and_is_told_why(mapping, email):
    claims = {"email": email, "email_verified": True, "groups": ["billing-admins"]}
    assert email_of(claims) is None
    assert role_for(claims, mapping) is None
    assert actor_for(claims, mapping) is None
    assert refusal_of(claims) == NOT_ASCII


def test_kelvin_sign_does_not_become_an_admin_listed_by_email(tmp_path):
    mapping = settings_from(tmp_path, AUTH + '[access.roles]\nemails = {"kim@company.test" = "admin"}\n').roles
    assert role_for({"email": "kim@company.test", "email_verified": True}, mapping) is Role.ADMIN
    assert role_for({"email": "\u212aim@company.test", "email_verified": True}, mapping) is None
