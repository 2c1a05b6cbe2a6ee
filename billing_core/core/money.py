"""Money as integer cents: the one place amounts are parsed from people and formatted for them.

Every amount in the system is an ``int`` number of cents (USD). ``Decimal`` appears only at the
edges, when a rate multiplies an amount or when text becomes cents; ``float`` never does.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billing_core.core.errors import InvalidAmount

CENT = Decimal("0.01")
# Larger than any top-up could be; far below where int64 columns or JSON numbers lose precision.
MAX_CENTS = 100_000_000_000  # one billion dollars
AMOUNT_MAX_CHARS = 40  # "$1,000,000,000.00 USD" with room to spare

_GROUPED = re.compile(r"^\d{1,3}(,\d{3})+(\.\d*)?$")
_PLAIN = re.compile(r"^(\d+(\.\d*)?|\.\d+)$")


def parse_amount(text: str | int | Decimal) -> int:
    """Turn what a person typed ("100", "100.5", "$1,500.00") into cents, or raise InvalidAmount."""
    if isinstance(text, bool):
        raise InvalidAmount("Enter an amount in dollars, for example 100 or 1,500.00.")
    if isinstance(text, int):
        return _checked(Decimal(text))
    if isinstance(text, Decimal):
        if not text.is_finite():
            raise InvalidAmount("The amount must be a finite number.")
        return _checked(text)
    raw = (text or "").strip()
    if not raw:
        raise InvalidAmount("Enter an amount.")
    if len(raw) > AMOUNT_MAX_CHARS:
        raise InvalidAmount("That amount is far too long to be a price.")
    body = raw
    if body.upper().endswith("USD"):
        body = body[:-3].strip()
    if body.startswith("-") or body.startswith("−"):
        raise InvalidAmount("The amount cannot be negative.")
    if body.startswith("+"):
        body = body[1:].strip()
    if body.startswith("$"):
        body = body[1:].strip()
    if body.startswith("-"):
        raise InvalidAmount("The amount cannot be negative.")
    if body.lower() in {"nan", "inf", "infinity"}:
        raise InvalidAmount("The amount must be a finite number.")
    if _GROUPED.match(body):
        body = body.replace(",", "")
    elif not _PLAIN.match(body):
        raise InvalidAmount(f"“{_shorten(raw)}” is not an amount; type digits such as 100 or 1,500.00.")
    try:
        value = Decimal(body)
    except InvalidOperation:  # pragma: no cover - the patterns above admit only valid decimals
        raise InvalidAmount(f"“{_shorten(raw)}” is not an amount.") from None
    return _checked(value)


def _checked(value: Decimal) -> int:
    if value < 0:
        raise InvalidAmount("The amount cannot be negative.")
    if value == 0:
        raise InvalidAmount("The amount must be more than zero.")
    if value != value.quantize(CENT, rounding=ROUND_HALF_UP):
        raise InvalidAmount("Use at most two decimals (whole cents).")
    cents = int(value * 100)
    if cents > MAX_CENTS:
        raise InvalidAmount(f"The amount is too large (the most accepted is {format_cents(MAX_CENTS)}).")
    return cents


def _shorten(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_decimal(cents: int) -> Decimal:
    """Cents as a Decimal number of dollars, exact: 150050 -> Decimal('1500.50')."""
    return (Decimal(cents) / 100).quantize(CENT)


def from_decimal(dollars: Decimal) -> int:
    """A Decimal of dollars rounded half-up to the cent, as cents: the only rounding rule for money."""
    return int((dollars * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_plain(cents: int) -> str:
    """'1500.50': dollars and cents with no symbol or grouping, for CSV, JSON and the CLI."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def format_cents(cents: int, currency: str = "USD") -> str:
    """'$1,500.50' for people; other currencies as '1,500.50 EUR'."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    number = f"{whole:,}.{part:02d}"
    if currency == "USD":
        return f"{sign}${number}"
    return f"{sign}{number} {currency}"


def format_unit_price(dollars: Decimal, currency: str = "USD") -> str:
    """A price per unit, to a hundredth of a cent where it has one ('$0.0125'), grouped and signed as
    format_cents does it: '-$263.75', never '$-263.75'."""
    sign = "-" if dollars < 0 else ""
    whole, _, part = f"{abs(dollars).quantize(Decimal('0.0001')).normalize():f}".partition(".")
    number = f"{int(whole):,}.{part.ljust(2, '0')}"
    if currency == "USD":
        return f"{sign}${number}"
    return f"{sign}{number} {currency}"


def format_credits(hundredths: int) -> str:
    """Credits are kept in hundredths like cents: 150050 -> '1,500.50', 2000 -> '20'."""
    whole, part = divmod(abs(hundredths), 100)
    sign = "-" if hundredths < 0 else ""
    return f"{sign}{whole:,}" if part == 0 else f"{sign}{whole:,}.{part:02d}"


COMPACT_FROM = 1_000_000  # cents: from $10,000.00 amounts are shown as $10K, $31.25M, $1.29B
_COMPACT_UNITS = ((100_000_000_000, "B"), (100_000_000, "M"), (100_000, "K"))  # largest first


def format_compact(cents: int) -> str:
    """A headline amount short enough for a narrow tile: whole below $10,000 ('$9,999.99'), then in
    thousands, millions or billions rounded half-up to two decimals, trailing zeros dropped ('$10K',
    '$1.5M', '$31.25M'). It is never the only figure shown: put ``format_cents`` beside it (a tooltip)."""
    if abs(cents) < COMPACT_FROM:
        return format_cents(cents)
    i = next(i for i, (size, _) in enumerate(_COMPACT_UNITS) if abs(cents) >= size)
    value = _in_units(abs(cents), _COMPACT_UNITS[i][0])
    if value >= 1000 and i > 0:  # $999.995K rounds to $1M, not $1000K
        i -= 1
        value = _in_units(abs(cents), _COMPACT_UNITS[i][0])
    sign = "-" if cents < 0 else ""
    return f"{sign}${value:f}".rstrip("0").rstrip(".") + _COMPACT_UNITS[i][1]


def _in_units(cents: int, unit_cents: int) -> Decimal:
    return (Decimal(cents) / unit_cents).quantize(CENT, rounding=ROUND_HALF_UP)
