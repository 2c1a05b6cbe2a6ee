"""Email addresses typed by people or sent by a sign-in provider: checked in linear time.

No regular expression: a pattern such as ``[^@]+\\.[^@]{2,}$`` backtracks over every dot, and a long
address typed into a form held the server for seconds. The length is checked before anything else.
"""

from __future__ import annotations

EMAIL_MAX_CHARS = 320  # 64 for the local part, "@", 255 for the domain
LOCAL_MAX_CHARS = 64


def parse_email(text: object) -> str | None:
    """The address lower-cased, or None unless it is one local part, one "@" and a dotted domain
    (every label non-empty, the last at least two characters) with no whitespace, at most 320 long."""
    if not isinstance(text, str) or len(text) > EMAIL_MAX_CHARS + 64:  # room for surrounding blanks
        return None
    email = text.strip()
    if len(email) > EMAIL_MAX_CHARS or email.count("@") != 1 or any(ch.isspace() for ch in email):
        return None
    local, _, domain = email.partition("@")
    labels = domain.split(".")
    if not 1 <= len(local) <= LOCAL_MAX_CHARS or len(labels) < 2 or not all(labels) or len(labels[-1]) < 2:
        return None
    return email.lower()
