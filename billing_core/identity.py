"""Who a signed-in person is here: their provider's claims mapped to one role, or to none.

Deny by default: a person no rule names gets no role, and the app shows them nothing but that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from billing_core.access import Actor, Role
from billing_core.config import RoleMapping

_EMAIL = re.compile(r"^[^@\s]{1,200}@[^@\s]{1,120}$")
_NAME_LIMIT = 120


def email_of(claims: Mapping[str, object]) -> str | None:
    """The ``email`` claim, lower-cased, or None when absent, malformed or marked unverified."""
    email = claims.get("email")
    if not isinstance(email, str) or not _EMAIL.match(email.strip()):
        return None
    if claims.get("email_verified") in (False, "false", "False"):
        return None
    return email.strip().lower()


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
    if email is not None:
        for listed, role in mapping.emails:
            if listed == email:
                return role
    groups = _groups(claims.get(mapping.groups_claim))
    for group, role in mapping.groups:
        if group in groups:
            return role
    if email is not None:
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
