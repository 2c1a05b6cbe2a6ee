"""Pricing what-ifs: the same amounts quoted under the current and a proposed pricing, side by side.

Pure functions over two ``Pricing`` objects. Every figure comes from ``pricing.quote``; an amount one
pricing refuses (say, below its custom minimum) gives a row carrying the reason, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from billing_core.core.errors import BillingError, PricingError
from billing_core.pricing.catalog import MAX_FILE_CHARS, Method, Pricing, parse_pricing, quote

WHATIF_SOURCE = "the what-if pricing"


@dataclass(frozen=True)
class Side:
    """One pricing's answer for one amount: the quote's figures, or why it refused."""

    pricing_version: str
    plan: str | None = None
    credits: int | None = None  # hundredths of a credit
    fee_cents: int | None = None
    total_cents: int | None = None
    refusal: str | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class ComparisonRow:
    label: str
    amount_cents: int
    current: Side
    whatif: Side

    def _diff(self, name: str) -> int | None:
        if not (self.current.ok and self.whatif.ok):
            return None
        return getattr(self.whatif, name) - getattr(self.current, name)

    @property
    def credits_diff(self) -> int | None:
        return self._diff("credits")

    @property
    def fee_diff(self) -> int | None:
        return self._diff("fee_cents")

    @property
    def total_diff(self) -> int | None:
        return self._diff("total_cents")


def parse_whatif(text: str, source: str = WHATIF_SOURCE) -> Pricing:
    """A what-if pricing from uploaded or edited TOML; raises PricingError saying what is wrong."""
    return parse_pricing(text, source=source)


def pricing_file_text(path: str | Path) -> str:
    """The text of a pricing file, as the starting point of an edited what-if."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PricingError(f"Pricing file {path} cannot be read: {exc}") from None


def uploaded_text(data: bytes, name: str) -> str:
    """An uploaded what-if file as text; a file that is too large or not UTF-8 is refused with a reason."""
    if len(data) > MAX_FILE_CHARS:
        raise PricingError(
            f"{name} is {len(data):,} bytes; a pricing file is at most {MAX_FILE_CHARS:,}. Upload a pricing .toml file."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PricingError(f"{name} is not a UTF-8 text file; upload a pricing .toml file.") from None


def side(amount_cents: int, method: Method | str, pricing: Pricing) -> Side:
    try:
        q = quote(amount_cents, method, pricing)
    except BillingError as exc:
        return Side(pricing_version=pricing.version, refusal=str(exc))
    return Side(
        pricing_version=pricing.version,
        plan=q.plan.value,
        credits=q.credits,
        fee_cents=q.fee_cents,
        total_cents=q.total_cents,
    )


def comparison_amounts(current: Pricing, whatif: Pricing, typed_cents: int | None = None) -> list[tuple[str, int]]:
    """The amounts worth comparing: current plans, plans only the what-if has, and the typed amount."""
    amounts = [(plan.name, plan.amount_cents) for plan in current.plans]
    seen = {cents for _, cents in amounts}
    for plan in whatif.plans:
        if plan.amount_cents not in seen:
            amounts.append((f"{plan.name} (what-if plan)", plan.amount_cents))
            seen.add(plan.amount_cents)
    if typed_cents is not None and typed_cents not in seen:
        amounts.append(("Typed amount", typed_cents))
    return amounts


def compare(
    current: Pricing, whatif: Pricing, method: Method | str, amounts: Sequence[tuple[str, int]]
) -> list[ComparisonRow]:
    """One row per (label, amount): each pricing's quote for ``method`` and what-if minus current."""
    return [
        ComparisonRow(label, cents, side(cents, method, current), side(cents, method, whatif))
        for label, cents in amounts
    ]
