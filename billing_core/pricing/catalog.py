"""Pricing as data: the versioned TOML file, the plan catalog, and ``quote()``.

``quote(amount, method, pricing)`` is the one function that turns an amount into credits, fee and
total. The simulator, order creation, invoices and what-if analysis all call it, so the price shown
is the price charged is the price invoiced.

Rounding rules (the only ones):
- fee = amount x method rate, rounded half-up to the cent, never below the method's minimum fee;
- credits = amount x credits per USD (plus any bonus tier), rounded down to 1/100 credit, so a
  customer is never granted credit that was not paid for.
"""

from __future__ import annotations

import enum
import hashlib
import tomllib
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path

from billing_core.core import money
from billing_core.core.errors import InvalidAmount, PricingError

DEFAULT_PRICING_FILE = Path(__file__).with_name("pricing_default.toml")
# A pricing file is a page of text; every number in it is small and has few places. Bounds that keep
# one quote a few microseconds: "1e999990" credits per USD once made a quote a 35 s integer conversion.
MAX_FILE_CHARS = 64 * 1024
MAX_TEXT_CHARS = 200
MAX_NUMBER_CHARS = 32
MAX_CREDITS_PER_USD = Decimal(1_000_000)
RATE_PLACES = 6


class Method(enum.StrEnum):
    STRIPE = "stripe"
    AIRWALLEX = "airwallex"
    ALIPAY = "alipay"


class PlanId(enum.StrEnum):
    STUDY = "study"
    STANDARD = "standard"
    PRO = "pro"
    MAX = "max"
    CUSTOM = "custom"


@dataclass(frozen=True)
class Plan:
    id: PlanId
    name: str
    amount_cents: int
    popular: bool = False


@dataclass(frozen=True)
class MethodFee:
    method: Method
    label: str
    rate: Decimal
    min_fee_cents: int


@dataclass(frozen=True)
class BonusTier:
    min_amount_cents: int
    percent: Decimal


@dataclass(frozen=True)
class Pricing:
    version: str
    currency: str
    credits_per_usd: Decimal
    custom_min_cents: int
    custom_max_cents: int
    plans: tuple[Plan, ...]
    fees: dict[Method, MethodFee]
    bonus_tiers: tuple[BonusTier, ...] = ()
    source: str = "<memory>"
    digest: str = field(default="", compare=False)

    def plan(self, plan_id: PlanId | str) -> Plan:
        for plan in self.plans:
            if plan.id == plan_id:
                return plan
        raise PricingError(f"There is no plan “{plan_id}” in pricing {self.version}.")

    def plan_for_amount(self, amount_cents: int) -> PlanId:
        for plan in self.plans:
            if plan.amount_cents == amount_cents:
                return plan.id
        return PlanId.CUSTOM

    def bonus_for(self, amount_cents: int) -> BonusTier | None:
        eligible = [t for t in self.bonus_tiers if amount_cents >= t.min_amount_cents]
        return max(eligible, key=lambda t: t.min_amount_cents) if eligible else None


@dataclass(frozen=True)
class Quote:
    """What a customer is shown and charged; every figure carries the rule that produced it."""

    amount_cents: int
    method: Method
    plan: PlanId
    base_credits: int  # hundredths of a credit
    bonus_credits: int
    fee_cents: int
    pricing_version: str
    credits_rule: str
    fee_rule: str
    total_rule: str

    @property
    def credits(self) -> int:
        return self.base_credits + self.bonus_credits

    @property
    def total_cents(self) -> int:
        return self.amount_cents + self.fee_cents

    def as_json(self) -> dict[str, str]:
        return {
            "plan": self.plan.value,
            "method": self.method.value,
            "amount": money.format_plain(self.amount_cents),
            "credits": money.format_plain(self.credits),
            "bonus_credits": money.format_plain(self.bonus_credits),
            "fee": money.format_plain(self.fee_cents),
            "total": money.format_plain(self.total_cents),
            "currency": "USD",
            "pricing_version": self.pricing_version,
            "credits_rule": self.credits_rule,
            "fee_rule": self.fee_rule,
            "total_rule": self.total_rule,
        }


def parse_method(value: str | Method) -> Method:
    try:
        return Method(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in Method)
        raise PricingError(f"Unknown payment method “{str(value)[:40]}”; choose one of {choices}.") from None


def quote(amount: int | str, method: Method | str, pricing: Pricing) -> Quote:
    """Price a top-up of ``amount`` (cents, or text a person typed) paid by ``method``."""
    amount_cents = money.parse_amount(amount) if isinstance(amount, str) else amount
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise InvalidAmount("The amount must be a positive number of cents.")
    method = parse_method(method)
    fee_rule_data = pricing.fees.get(method)
    if fee_rule_data is None:
        raise PricingError(f"Pricing {pricing.version} does not accept {method.value} payments.")
    plan = pricing.plan_for_amount(amount_cents)
    if plan is PlanId.CUSTOM:
        lo, hi = pricing.custom_min_cents, pricing.custom_max_cents
        if amount_cents < lo:
            raise InvalidAmount(f"The smallest custom top-up is {money.format_cents(lo)}.")
        if amount_cents > hi:
            raise InvalidAmount(f"The largest custom top-up is {money.format_cents(hi)}.")

    dollars = money.to_decimal(amount_cents)
    base = _credit_hundredths(dollars * pricing.credits_per_usd)
    credits_rule = f"{money.format_cents(amount_cents)} × {_num(pricing.credits_per_usd)} credit per USD"
    tier = pricing.bonus_for(amount_cents)
    bonus = 0
    if tier is not None:
        bonus = _credit_hundredths(Decimal(base) / 100 * tier.percent / 100)
        credits_rule += (
            f" + {_num(tier.percent)}% bonus for top-ups of {money.format_cents(tier.min_amount_cents)} or more"
        )
    credits_rule += " (rounded down to 0.01 credit)"

    raw_fee = money.from_decimal(dollars * fee_rule_data.rate)
    fee = max(raw_fee, fee_rule_data.min_fee_cents)
    fee_rule = f"{_num(fee_rule_data.rate * 100)}% of {money.format_cents(amount_cents)}"
    if fee > raw_fee:
        fee_rule += f" is {money.format_cents(raw_fee)}, below the minimum, so {money.format_cents(fee)}"
    else:
        fee_rule += " rounded half-up to the cent"
        fee_rule += f" (minimum {money.format_cents(fee_rule_data.min_fee_cents)})"
    total_rule = f"{money.format_cents(amount_cents)} top-up + {money.format_cents(fee)} {fee_rule_data.label} fee"
    return Quote(
        amount_cents=amount_cents,
        method=method,
        plan=plan,
        base_credits=base,
        bonus_credits=bonus,
        fee_cents=fee,
        pricing_version=pricing.version,
        credits_rule=credits_rule,
        fee_rule=fee_rule,
        total_rule=total_rule,
    )


def _credit_hundredths(credits: Decimal) -> int:
    return int((credits * 100).to_integral_value(rounding=ROUND_DOWN))


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


# --- loading -----------------------------------------------------------------------------------


def load_pricing(path: str | Path | None = None) -> Pricing:
    """Read and validate a pricing file; errors name the file and the key at fault."""
    path = Path(path) if path else DEFAULT_PRICING_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PricingError(f"Pricing file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PricingError(f"Pricing file {path} cannot be read: {exc}") from None
    return parse_pricing(text, source=str(path))


def parse_pricing(text: str, source: str = "<text>") -> Pricing:
    if len(text) > MAX_FILE_CHARS:
        raise PricingError(f"{source} is {len(text):,} characters long; a pricing file is at most {MAX_FILE_CHARS:,}.")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PricingError(f"{source} is not valid TOML: {exc}") from None
    except (RecursionError, ValueError):  # arrays nested thousands deep; an integer of thousands of digits
        raise PricingError(f"{source} is not valid TOML: it nests too deep or holds a number too long.") from None
    reader = _Reader(data, source)
    version = reader.text("version")
    currency = reader.text("currency", "USD")
    if currency != "USD":
        raise PricingError(f"{source}: currency must be USD (got {currency!r}).")
    credits_per_usd = reader.decimal("credits_per_usd", most=MAX_CREDITS_PER_USD, places=RATE_PLACES)
    if credits_per_usd <= 0:
        raise PricingError(f"{source}: credits_per_usd must be more than zero.")

    custom = reader.table("custom")
    custom_min = _Reader(custom, source, "custom").cents("min")
    custom_max = _Reader(custom, source, "custom").cents("max")
    if custom_min > custom_max:
        raise PricingError(f"{source}: custom.min is above custom.max.")

    plans = []
    raw_plans = data.get("plans")
    if not isinstance(raw_plans, list) or not raw_plans:
        raise PricingError(f"{source}: [[plans]] must list the plan catalog.")
    for i, raw in enumerate(raw_plans):
        r = _Reader(raw, source, f"plans[{i}]")
        try:
            plan_id = PlanId(r.text("id"))
        except ValueError:
            raise PricingError(f"{source}: plans[{i}].id must be study, standard, pro or max.") from None
        if plan_id is PlanId.CUSTOM:
            raise PricingError(f"{source}: plans[{i}].id cannot be custom; custom is set in [custom].")
        plans.append(Plan(plan_id, r.text("name"), r.cents("amount"), bool(raw.get("popular", False))))
    if len({p.id for p in plans}) != len(plans) or len({p.amount_cents for p in plans}) != len(plans):
        raise PricingError(f"{source}: each plan needs its own id and its own amount.")

    fees: dict[Method, MethodFee] = {}
    for name, raw in reader.table("methods").items():
        try:
            method = Method(name)
        except ValueError:
            raise PricingError(f"{source}: unknown method [methods.{name}].") from None
        r = _Reader(raw, source, f"methods.{name}")
        rate = r.decimal("fee_rate", most=Decimal(1), places=RATE_PLACES)
        if not (0 <= rate < 1):
            raise PricingError(f"{source}: methods.{name}.fee_rate must be between 0 and 1.")
        fees[method] = MethodFee(method, r.text("label", name.title()), rate, r.cents("min_fee", allow_zero=True))
    if not fees:
        raise PricingError(f"{source}: [methods] must list at least one payment method.")

    tiers = []
    for i, raw in enumerate(data.get("bonus_tiers", []) or []):
        r = _Reader(raw, source, f"bonus_tiers[{i}]")
        percent = r.decimal("percent", most=Decimal(100), places=RATE_PLACES)
        if not (0 <= percent <= 100):
            raise PricingError(f"{source}: bonus_tiers[{i}].percent must be between 0 and 100.")
        tiers.append(BonusTier(r.cents("min_amount"), percent))

    return Pricing(
        version=version,
        currency=currency,
        credits_per_usd=credits_per_usd,
        custom_min_cents=custom_min,
        custom_max_cents=custom_max,
        plans=tuple(sorted(plans, key=lambda p: p.amount_cents)),
        fees=fees,
        bonus_tiers=tuple(tiers),
        source=source,
        digest=hashlib.sha256(text.encode()).hexdigest()[:12],
    )


class _Reader:
    """Typed access to one TOML table, with errors that say file and key."""

    def __init__(self, data: object, source: str, prefix: str = ""):
        if not isinstance(data, dict):
            raise PricingError(f"{source}: {prefix or 'the file'} must be a table.")
        self.data, self.source, self.prefix = data, source, prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def _get(self, key: str, default: object = None) -> object:
        if key not in self.data:
            if default is not None:
                return default
            raise PricingError(f"{self.source}: {self._key(key)} is missing.")
        return self.data[key]

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_CHARS:
            raise PricingError(
                f"{self.source}: {self._key(key)} must be a non-empty string of at most {MAX_TEXT_CHARS} characters."
            )
        return value.strip()

    def table(self, key: str) -> dict:
        value = self._get(key)
        if not isinstance(value, dict):
            raise PricingError(f"{self.source}: [{self._key(key)}] must be a table.")
        return value

    def decimal(self, key: str, *, most: Decimal, places: int) -> Decimal:
        """A number from 0 to ``most`` with at most ``places`` decimals, checked from its text
        before any arithmetic (the size of a Decimal's exponent is not bounded)."""
        value = self._get(key)
        if isinstance(value, float):
            raise PricingError(f'{self.source}: write {self._key(key)} as a quoted string, e.g. "0.055".')
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PricingError(f"{self.source}: {self._key(key)} must be a number.")
        text = value.strip() if isinstance(value, str) else str(value)
        if len(text) > MAX_NUMBER_CHARS:
            raise PricingError(
                f"{self.source}: {self._key(key)} must be a number of at most {MAX_NUMBER_CHARS} characters."
            )
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise PricingError(f"{self.source}: {self._key(key)} must be a number.") from None
        if not number.is_finite():
            raise PricingError(f"{self.source}: {self._key(key)} must be a finite number.")
        if not 0 <= number <= most:
            raise PricingError(f"{self.source}: {self._key(key)} must be between 0 and {_num(most)}.")
        if number != 0 and number.as_tuple().exponent < -places:
            raise PricingError(f"{self.source}: {self._key(key)} may have at most {places} decimal places.")
        return number

    def cents(self, key: str, allow_zero: bool = False) -> int:
        value = self._get(key)
        if allow_zero and str(value).strip() in {"0", "0.0", "0.00"}:
            return 0
        if isinstance(value, float):
            raise PricingError(f'{self.source}: write {self._key(key)} as a quoted string, e.g. "20.00".')
        try:
            return money.parse_amount(value if isinstance(value, str) else int(value))
        except (InvalidAmount, ValueError, TypeError) as exc:
            raise PricingError(f"{self.source}: {self._key(key)}: {exc}") from None
