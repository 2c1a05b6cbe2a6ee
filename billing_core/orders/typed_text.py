"""What the search box's text is read as: pure, so a page can say it as one types.

The box is read as one of: an order id (``ord_…``) or customer id (``cus_…``), whole or its first
``ID_PREFIX_CHARS``+ characters (a bare hex fragment is tried as an order id, then a customer id);
a provider reference (Stripe ``pi_…``, Airwallex ``int_…``, simulated ``sim_pi_…``, Alipay's long
digit string; exact, else its start); an amount ("527.50", "$500", "1,500"), matched against the
order's amount or total; an email, or part of one (a domain, with or without "@"); otherwise words
of a name, company, email or tax id, in any order, found by the customers' text index
(billing_core.orders.customer_index: FTS5 trigrams on SQLite, pg_trgm on PostgreSQL, case and accents
folded). One letter or symbol (other than a Han, kana or Hangul character, which is a name) would name
thousands of customers: it is refused with a note asking for two letters, and nothing is read.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

from billing_core.core import money
from billing_core.core.errors import BillingError
from billing_core.orders import customer_index

MAX_QUERY_CHARS = 320  # the longest email address
MAX_TYPED_CHARS = 64 * 1024  # what is cleaned of controls and blanks before MAX_QUERY_CHARS applies
MIN_WORD_CHARS = 2  # one letter or symbol (not Han, kana or Hangul) names too many customers to list

_ORDER_ID = re.compile(r"^ord_[0-9a-z]+$", re.IGNORECASE)
_CUSTOMER_ID = re.compile(r"^cus_[0-9a-z]+$", re.IGNORECASE)
_PROVIDER_REF = re.compile(r"^((sim_pi|pi|int|ch|py|re)_[0-9A-Za-z_]+|[0-9]{16,40})$")
# A bare fragment of an id (hex, with a digit): tried as the start of an order id, then of a customer id.
_ID_FRAGMENT = re.compile(r"^(?=.*[0-9])[0-9a-f]{6,16}$", re.IGNORECASE)
_DOMAIN = re.compile(r"^@?[0-9a-z-]+(\.[0-9a-z-]+)+$", re.IGNORECASE)
_AMOUNT = re.compile(r"^(\$\s*)?([0-9]{1,3}(,[0-9]{3})+|[0-9]{1,7})(\.[0-9]{1,2})?(\s*usd)?$", re.IGNORECASE)
ID_PREFIX_CHARS = 6  # the shortest prefix of an id (after its ord_/cus_) or reference searched as one
_PUBLIC_ID_CHARS = 20  # "ord_" or "cus_" and 16 hex digits


class SearchError(BillingError):
    """The search as typed cannot be run; the message says what to change."""


class QueryKind(enum.StrEnum):
    ALL = "all orders"
    ORDER_ID = "order id"
    ORDER_ID_PREFIX = "start of an order id"
    CUSTOMER_ID = "customer id"
    CUSTOMER_ID_PREFIX = "start of a customer id"
    PROVIDER_REF = "provider reference"
    PROVIDER_REF_PREFIX = "start of a provider reference"
    EMAIL = "email"
    EMAIL_PART = "part of an email"
    EMAIL_DOMAIN = "email domain"
    CUSTOMER = "words of a name, company, email or tax id"
    CUSTOMER_PREFIX = "start of a name or email"  # words of one letter each: too short for the text index
    TOO_SHORT = "too short to search"
    AMOUNT = "amount or total"


@dataclass(frozen=True)
class Interpretation:
    kind: QueryKind
    term: str
    notes: tuple[str, ...] = ()
    amount_cents: int | None = None
    fragment: bool = False  # hex typed without ord_/cus_: the start of an order id, a customer id, or words


def _too_long(length: int) -> str:
    return (
        f"The search text is {length:,} characters long; nothing it can find is longer than "
        f"{MAX_QUERY_CHARS}. Paste just the order id, email, name or payment reference."
    )


def interpret(text: str | None) -> Interpretation:
    """Clean what was typed and decide what it is; pure, so the page can show it as one types."""
    raw = text or ""
    if len(raw) > MAX_TYPED_CHARS:  # refused before any character is looked at
        raise SearchError(_too_long(len(raw)))
    kept = [c for c in raw if unicodedata.category(c) not in ("Cc", "Cs")]
    notes = []
    if len(kept) != len(raw):
        removed = len(raw) - len(kept)
        notes.append(f"Ignored {removed:,} control or invalid character{'s' if removed != 1 else ''}.")
    term = unicodedata.normalize("NFC", "".join(kept)).strip()
    if len(term) > MAX_QUERY_CHARS:
        raise SearchError(_too_long(len(term)))
    if not term:
        return Interpretation(QueryKind.ALL, "", tuple(notes))
    for pattern, whole, prefix in (
        (_ORDER_ID, QueryKind.ORDER_ID, QueryKind.ORDER_ID_PREFIX),
        (_CUSTOMER_ID, QueryKind.CUSTOMER_ID, QueryKind.CUSTOMER_ID_PREFIX),
    ):
        if pattern.match(term):
            kind = whole if len(term) >= _PUBLIC_ID_CHARS or len(term) < 4 + ID_PREFIX_CHARS else prefix
            if kind is whole and len(term) < _PUBLIC_ID_CHARS:
                notes.append(
                    f"Ids have {_PUBLIC_ID_CHARS - 4} characters after the prefix; type at least "
                    f"{ID_PREFIX_CHARS} to search by their start."
                )
            return Interpretation(kind, term.lower(), tuple(notes))
    if _PROVIDER_REF.match(term):
        return Interpretation(QueryKind.PROVIDER_REF, term, tuple(notes))
    if _AMOUNT.match(term):
        try:
            cents = money.parse_amount(term)
        except BillingError:
            cents = None
        if cents is not None:
            return Interpretation(QueryKind.AMOUNT, term, tuple(notes), amount_cents=cents)
    if _ID_FRAGMENT.match(term):
        return Interpretation(QueryKind.ORDER_ID_PREFIX, "ord_" + term.lower(), tuple(notes), fragment=True)
    if len(term) < MIN_WORD_CHARS and not customer_index.is_ideographic(term):
        notes.append(f"Type at least {MIN_WORD_CHARS} letters of a name, company or email.")
        return Interpretation(QueryKind.TOO_SHORT, term, tuple(notes))
    if "@" in term and " " not in term:
        return Interpretation(QueryKind.EMAIL_PART, term.lower(), tuple(notes))
    return Interpretation(QueryKind.CUSTOMER, term, tuple(notes))


def looks_like_domain(term: str) -> bool:
    """Whether ``term`` ("mail.test", "@mail.test") could be what follows an email's "@"."""
    return _DOMAIN.match(term) is not None


__all__ = [
    "ID_PREFIX_CHARS",
    "MAX_QUERY_CHARS",
    "MIN_WORD_CHARS",
    "Interpretation",
    "QueryKind",
    "SearchError",
    "interpret",
    "looks_like_domain",
]
