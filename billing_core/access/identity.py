"""Who a signed-in person is here: their provider's claims mapped to one role, or to none.

Deny by default: a person no rule names gets no role, and the app shows them nothing but that.
"""

from __future__ import annotations

from collections.abc import Mapping

from billing_core.access.roles import Actor, Role
from billing_core.core.config import RoleMapping
from billing_core.core.emails import parse_email

_NAME_LIMIT = 120
NOT_VERIFIED = (
    "Your sign-in provider does not say that the email address {email} is verified, so Billing Ops "
    "cannot tell it is yours. Verify it with the provider, then sign in again."
)
NOT_ASCII = (
    "Your email address contains characters other than plain ASCII letters, digits and punctuation. "
    "Billing Ops accepts only ASCII addresses, since look-alike characters (such as the Kelvin sign "
    "for K) could pass for someone else's address. Ask an administrator to register an ASCII address."
)
NOT_AN_EMAIL = "Your sign-in provider sent no usable email address, and every change here is recorded under one."


def _verified(claims: Mapping[str, object]) -> bool:
    """Only a claim of exactly true (or the string "true") verifies; absent, null, "FALSE", "0" do not."""
    value = claims.get("email_verified")
    return value is True or value == "true"


def email_of(claims: Mapping[str, object]) -> str | None:
    """The ``email`` claim, lower-cased, or None unless it is a well-formed ASCII address that the
    provider marks verified. ASCII is checked before lower-casing: "\u212aim@x" lower-cases to "kim@x"."""
    email = claims.get("email")
    if not isinstance(email, str) or not email.isascii() or not _verified(claims):
        return None
    return parse_email(email)


def refusal_of(claims: Mapping[str, object]) -> str | None:
    """Why the email claim counts for nothing, in words for the person signing in; None when it counts."""
    email = claims.get("email")
    if not isinstance(email, str) or parse_email(email) is None:
        return NOT_AN_EMAIL
    if not email.isascii():
        return NOT_ASCII
    if not _verified(claims):
        return NOT_VERIFIED.format(email=email.strip()[:320])
    return None


def _groups(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list | tuple):
        return {g for g in value if isinstance(g, str)}
    return set()


def role_for(claims: Mapping[str, object], mapping: RoleMapping) -> Role | None:
    """The role for these claims: an exact email first, then the first listed group they belong
    to, then their email's domain (exactly, not its subdomains); None when no rule matches."""
    email = email_of(claims)
    if email is None:  # unverified, non-ASCII or malformed: no rule applies, not even a group's
        return None
    for listed, role in mapping.emails:
        if listed == email:
            return role
    groups = _groups(claims.get(mapping.groups_claim))
    for group, role in mapping.groups:
        if group in groups:
            return role
    domain = email.rpartition("@")[2]
    for listed, role in mapping.domains:
        if listed == domain:
            return role
    return None


def actor_for(claims: Mapping[str, object], mapping: RoleMapping) -> Actor | None:
    """The acting person for a signed-in user, or None when they have no role or no usable email
    (every change is audited under an email)."""
    role = role_for(claims, mapping)
    email = email_of(claims)
    if role is None or email is None:
        return None
    name = claims.get("name")
    return Actor(email, role, name.strip()[:_NAME_LIMIT] if isinstance(name, str) else "")
