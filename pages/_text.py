"""Text on pages: what people and files wrote, escaped for markdown-rendering elements; signed amounts.

Only functions (see ``_guard.hand_over_to_router``).
"""

from __future__ import annotations

import re

from billing_core.core.money import format_cents, format_credits

# --- money in tables: formatted here, computed in billing_core ---------------------------------


def signed_cents(cents: int | None) -> str:
    if cents is None:
        return "—"
    return ("+" if cents > 0 else "") + format_cents(cents)


def signed_credits(hundredths: int | None) -> str:
    if hundredths is None:
        return "—"
    return ("+" if hundredths > 0 else "") + format_credits(hundredths)


# --- text from people and files in markdown-rendering elements ---------------------------------

_MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|~:$&=\"'")
# GitHub-flavoured markdown turns www.x, http://x and a@b.c into live links after escapes are
# resolved, so escaping cannot stop it; an invisible word joiner where each starts does.
_JOINER = "\u2060"
_AUTOLINK_STARTS = re.compile(r"(?i)(?<=www)(?=\.)|(?<=:)(?=//)|(?<=@)")


def plain(text: object) -> str:
    """Text for st.error/st.warning/st.caption shown exactly as written: every markdown, math ($),
    directive (:red[...]) and shortcode character is escaped, so a customer's name stays a name,
    and a URL or email address in it stays text, never a link."""
    unlinked = _AUTOLINK_STARTS.sub(_JOINER, str(text))
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in unlinked)


if __name__ == "__main__":
    from pages._guard import hand_over_to_router  # not at the top: _guard imports this module

    hand_over_to_router()
