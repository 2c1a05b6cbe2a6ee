import time
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core.core.errors import InvalidAmount, PricingError
from billing_core.pricing import whatif
from billing_core.pricing.catalog import DEFAULT_PRICING_FILE, Method, PlanId, load_pricing, parse_pricing, quote

DEFAULT = load_pricing()
TEXT = DEFAULT_PRICING_FILE.read_text()


@pytest.mark.parametrize(
    ("plan", "amount", "stripe_fee"),
    [
        (PlanId.STUDY, 2000, 110),
        (PlanId.STANDARD, 10000, 550),
        (PlanId.PRO, 50000, 2750),
        (PlanId.MAX, 150000, 8250),
    ],
)
def test_plan_presets_quote_as_the_customer_sees_them(plan, amount, stripe_fee):
    q = quote(amount, Method.STRIPE, DEFAULT)
    assert q.plan is plan
    assert q.credits == amount  # 1 credit per USD, credits in hundredths like cents
    assert q.fee_cents == stripe_fee
    assert q.total_cents == amount + stripe_fee
    assert q.pricing_version == "2026.1"


def test_catalog_marks_pro_most_popular():
    assert [p.id for p in DEFAULT.plans] == [PlanId.STUDY, PlanId.STANDARD, PlanId.PRO, PlanId.MAX]
    assert [p.id for p in DEFAULT.plans if p.popular] == [PlanId.PRO]


def test_minimum_fee_applies_to_small_stripe_top_ups():
    q = quote(500, Method.STRIPE, DEFAULT)  # 5.5% of $5 is $0.275
    assert q.fee_cents == 80
    assert "below the minimum" in q.fee_rule


def test_fee_rounds_half_up_not_to_even():
    q = quote(1900, Method.STRIPE, DEFAULT)  # 5.5% of $19.00 = 104.5 cents
    assert q.fee_cents == 105  # banker's rounding would give 104
    assert "rounded half-up" in q.fee_rule


def test_custom_amount_limits():
    assert quote("5", "stripe", DEFAULT).plan is PlanId.CUSTOM
    assert quote("25000", "stripe", DEFAULT).credits == 2_500_000
    with pytest.raises(InvalidAmount, match="smallest custom top-up is \\$5.00"):
        quote("4.99", "stripe", DEFAULT)
    with pytest.raises(InvalidAmount, match="largest custom top-up is \\$25,000.00"):
        quote("25000.01", "stripe", DEFAULT)


def test_unknown_method_is_refused():
    with pytest.raises(PricingError, match="Unknown payment method"):
        quote(2000, "paypal", DEFAULT)


def test_bonus_tiers_add_credits_rounded_down():
    text = TEXT + '\n[[bonus_tiers]]\nmin_amount = "500.00"\npercent = "5"\n'
    text += '\n[[bonus_tiers]]\nmin_amount = "1500.00"\npercent = "10"\n'
    pricing = parse_pricing(text.replace('version = "2026.1"', 'version = "bonus"'))
    assert quote(10000, Method.STRIPE, pricing).bonus_credits == 0
    assert quote(50000, Method.STRIPE, pricing).bonus_credits == 2500
    assert quote(150000, Method.STRIPE, pricing).bonus_credits == 15000
    odd = quote(50001, Method.STRIPE, pricing)  # 5% of 500.01 credits = 25.0005 -> 25.00
    assert odd.bonus_credits == 2500
    assert "5% bonus" in odd.credits_rule


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('version = "2026.1"\n', ""), "version is missing"),
        (lambda t: t.replace('fee_rate = "0.055"', "fee_rate = 0.055"), "quoted string"),
        (lambda t: t.replace('fee_rate = "0.055"', 'fee_rate = "1.5"'), "between 0 and 1"),
        (lambda t: t.replace('min = "5.00"', 'min = "30000"'), "custom.min is above custom.max"),
        (lambda t: t.replace('id = "max"', 'id = "mega"'), "must be study, standard, pro or max"),
        (lambda t: t.replace("[methods.alipay]", "[methods.paypal]"), "unknown method"),
        (lambda t: t + "\n[broken", "not valid TOML"),
        (lambda t: t.replace('amount = "20.00"', 'amount = "abc"'), "plans\\[0\\].amount"),
    ],
)
def test_broken_pricing_files_name_the_key(edit, message):
    with pytest.raises(PricingError, match=message):
        parse_pricing(edit(TEXT), source="what-if.toml")


def test_missing_pricing_file_is_named(tmp_path):
    with pytest.raises(PricingError, match="nope.toml does not exist"):
        load_pricing(tmp_path / "nope.toml")


amounts = st.integers(min_value=DEFAULT.custom_min_cents, max_value=DEFAULT.custom_max_cents)
methods = st.sampled_from(list(Method))


@given(amounts, methods)
def test_quote_invariants(amount, method):
    q = quote(amount, method, DEFAULT)
    rule = DEFAULT.fees[method]
    assert q.total_cents == q.amount_cents + q.fee_cents
    assert q.fee_cents >= rule.min_fee_cents
    exact = Decimal(amount) * rule.rate
    assert q.fee_cents == max(int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP)), rule.min_fee_cents)
    assert q.credits == amount  # 1 credit per USD, no bonus in the default file
    assert all(isinstance(v, int) for v in (q.amount_cents, q.fee_cents, q.total_cents, q.credits))


@given(amounts, methods, st.sampled_from(["1", "1.5", "0.8", "12.345"]))
def test_credits_never_exceed_what_was_paid_for(amount, method, rate):
    pricing = parse_pricing(TEXT.replace('credits_per_usd = "1"', f'credits_per_usd = "{rate}"'))
    q = quote(amount, method, pricing)
    exact = Decimal(amount) * Decimal(rate)  # in hundredths of a credit
    assert q.credits <= exact < q.credits + 1


@given(amounts)
def test_typed_and_integer_amounts_quote_the_same(amount):
    typed = f"${amount // 100:,}.{amount % 100:02d}"
    assert quote(typed, "stripe", DEFAULT) == quote(amount, "stripe", DEFAULT)


# --- bounds: a pricing file cannot make a quote slow --------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('credits_per_usd = "1"', 'credits_per_usd = "1e999990"'), "between 0 and 1000000"),
        (lambda t: t.replace('credits_per_usd = "1"', 'credits_per_usd = "1e400000"'), "between 0 and 1000000"),
        (lambda t: t.replace('credits_per_usd = "1"', 'credits_per_usd = "1e-999990"'), "at most 6 decimal places"),
        (lambda t: t.replace('credits_per_usd = "1"', 'credits_per_usd = "1.0000001"'), "at most 6 decimal places"),
        (lambda t: t.replace('credits_per_usd = "1"', f'credits_per_usd = "{"1" * 40}"'), "at most 32 characters"),
        (lambda t: t.replace('credits_per_usd = "1"', f"credits_per_usd = 1{'0' * 5000}"), "number too long"),
        (lambda t: t.replace('fee_rate = "0.055"', 'fee_rate = "5.5e-99999"'), "at most 6 decimal places"),
        (lambda t: t + '\n[[bonus_tiers]]\nmin_amount = "500.00"\npercent = "1e99999"\n', "between 0 and 100"),
        (lambda t: t.replace('version = "2026.1"', f'version = "{"v" * 201}"'), "at most 200 characters"),
        (lambda t: t + "\nx = " + "[" * 10_000, "nests too deep"),
        (lambda t: t + "\n# " + "x" * 70_000, "a pricing file is at most 65,536"),
    ],
    ids=[
        "huge exponent",
        "exponent that broke money.py",
        "tiny exponent",
        "seven places",
        "forty digits",
        "integer of 5000 digits",
        "tiny fee rate",
        "huge bonus",
        "long version",
        "nested arrays",
        "70 kB file",
    ],
)
def test_a_pricing_file_with_an_unbounded_number_or_size_is_refused_at_once(edit, message):
    started = time.perf_counter()
    with pytest.raises(PricingError, match=message):
        parse_pricing(edit(TEXT), source="what-if.toml")
    assert time.perf_counter() - started < 0.5


def test_the_largest_accepted_credits_per_usd_quotes_the_largest_top_up_quickly():
    pricing = parse_pricing(TEXT.replace('credits_per_usd = "1"', 'credits_per_usd = "999999.999999"'))
    started = time.perf_counter()
    q = quote(DEFAULT.custom_max_cents, Method.STRIPE, pricing)
    assert time.perf_counter() - started < 0.1
    assert q.base_credits == 2_499_999_999_997  # 25,000 USD x 999,999.999999 credits, in hundredths, rounded down


def test_an_uploaded_what_if_file_over_the_size_cap_is_refused_before_decoding():
    with pytest.raises(PricingError, match="at most 65,536"):
        whatif.uploaded_text(b"\xff" * (64 * 1024 + 1), "big.toml")
