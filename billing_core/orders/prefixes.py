"""Prefixes as index ranges in code-point order, for the search's starts of ids, emails and names.

The start of a name (when every typed word is one letter), case-insensitively in any script: the query
side expands the prefix into its case variants, each character by the simple (one-to-one) Unicode case
folding: "зо" becomes the code-point ranges ["Зо", "Зп"), ["ЗО", "ЗП"), ["зо", "зп"), ["зО", "зП").
Ranges are index range scans on both databases: SQLite compares text by code point (BINARY), and on
PostgreSQL the name and email indexes use ``text_pattern_ops`` with the ``~>=~``/``~<~`` operators, byte
(so code point) order whatever the collation. Beyond ``MAX_PREFIX_RANGES`` variants, the remaining
characters are checked one by one (``substr(name, i, 1) IN (variants)``) on the rows the ranges found.

A range's ends are values (``starts_with``) or, for a statement built once, named parameters
(``starts_with_param``, given ``prefix_params``).
"""

from __future__ import annotations

import itertools
from functools import cache

from sqlalchemy import ColumnElement, and_, bindparam, func, literal_column, or_

MAX_PREFIX_RANGES = 32


def _fold(ch: str) -> str:
    """Simple (one character to one character) case folding; a character without one is itself."""
    folded = ch.casefold()
    if len(folded) == 1:
        return folded
    lowered = ch.lower()
    return lowered if len(lowered) == 1 else ch


@cache
def _case_classes() -> dict[str, tuple[str, ...]]:
    """Folded character -> every character that folds to it (only where there is more than one)."""
    classes: dict[str, set[str]] = {}
    for code in range(0x20000):  # every cased letter in Unicode lies below U+20000
        ch = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        key = _fold(ch)
        if key != ch:
            classes.setdefault(key, {key}).add(ch)
    return {key: tuple(sorted(chars)) for key, chars in classes.items()}


def case_variants(ch: str) -> tuple[str, ...]:
    return _case_classes().get(_fold(ch), (ch,))


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars and ord(chars[-1]) == 0x10FFFF:
        chars.pop()
    if not chars:
        return None
    code = ord(chars[-1]) + 1
    chars[-1] = chr(0xE000 if 0xD800 <= code <= 0xDFFF else code)
    return "".join(chars)


def starts_with(column, prefix: str, dialect: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, as an index range in code-point order."""
    return _code_point_range(column, prefix, _successor(prefix), dialect)


def prefix_params(name: str, prefix: str) -> dict[str, str]:
    """The parameters of ``starts_with_param(column, name, ...)`` for ``prefix``: the range's start
    (``<name>_from``) and, unless no string bounds it, its end (``<name>_to``)."""
    upper = _successor(prefix)
    return {f"{name}_from": prefix} | ({} if upper is None else {f"{name}_to": upper})


def starts_with_param(column, name: str, dialect: str, *, bounded: bool = True) -> ColumnElement[bool]:
    """``starts_with`` for a statement built once: the range's ends are the parameters ``prefix_params``
    gives (``bounded``: it gave an end)."""
    upper = bindparam(f"{name}_to", type_=column.type) if bounded else None
    return _code_point_range(column, bindparam(f"{name}_from", type_=column.type), upper, dialect)


def _code_point_range(column, lower, upper, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        lower_bound = column.op("~>=~", is_comparison=True)(lower)
        upper_bound = column.op("~<~", is_comparison=True)(upper) if upper is not None else None
    else:
        lower_bound = column >= lower
        upper_bound = column < upper if upper is not None else None
    return lower_bound if upper_bound is None else and_(lower_bound, upper_bound)


def name_starts_with(column, prefix: str, dialect: str) -> ColumnElement[bool]:
    variants = [case_variants(ch) for ch in prefix]
    ranged, combinations = 0, 1
    while ranged < len(prefix) and combinations * len(variants[ranged]) <= MAX_PREFIX_RANGES:
        combinations *= len(variants[ranged])
        ranged += 1
    ranges = [starts_with(column, "".join(p), dialect) for p in itertools.product(*variants[:ranged])]
    rest = [
        func.substr(column, literal_column(str(i + 1)), literal_column("1")).in_(variants[i])
        for i in range(ranged, len(prefix))
    ]
    return and_(or_(*ranges), *rest)


__all__ = [
    "MAX_PREFIX_RANGES",
    "case_variants",
    "name_starts_with",
    "prefix_params",
    "starts_with",
    "starts_with_param",
]
