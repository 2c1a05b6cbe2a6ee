from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core.core import money
from billing_core.core.errors import InvalidAmount


@pytest.mark.parametrize(
    ("typed", "cents"),
    [
        ("100", 10000),
        ("100.5", 10050),
        ("100.50", 10050),
        ("$1,500.00", 150000),
        ("  $ 20 ", 2000),
        ("1500 USD", 150000),
        (".99", 99),
        ("25000", 2500000),
        ("1,234,567.89", 123456789),
    ],
)
def test_typed_amounts_become_exact_cents(typed, cents):
    assert money.parse_amount(typed) == cents


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "Enter an amount"),
        ("   ", "Enter an amount"),
        ("abc", "not an amount"),
        ("-5", "negative"),
        ("$-5", "negative"),
        ("0", "more than zero"),
        ("0.00", "more than zero"),
        ("1.234", "two decimals"),
        ("NaN", "finite"),
        ("inf", "finite"),
        ("1e5", "not an amount"),
        ("1,50", "not an amount"),
        ("12,34.00", "not an amount"),
        ("99999999999999", "too large"),
        ("1" * 500, "too long"),
        ("'; DROP TABLE orders; --", "not an amount"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(typed, reason):
    with pytest.raises(InvalidAmount, match=reason):
        money.parse_amount(typed)


def test_decimal_and_int_inputs_are_checked_like_text():
    assert money.parse_amount(Decimal("12.30")) == 1230
    assert money.parse_amount(20) == 2000
    with pytest.raises(InvalidAmount):
        money.parse_amount(Decimal("NaN"))
    with pytest.raises(InvalidAmount):
        money.parse_amount(True)


def test_formatting_for_people_and_machines():
    assert money.format_cents(150050) == "$1,500.50"
    assert money.format_cents(-80) == "-$0.80"
    assert money.format_cents(1000, "EUR") == "10.00 EUR"
    assert money.format_plain(5) == "0.05"
    assert money.format_plain(-150050) == "-1500.50"
    assert money.format_credits(2000) == "20"
    assert money.format_credits(150050) == "1,500.50"


def test_rounding_rule_is_half_up_to_the_cent():
    assert money.from_decimal(Decimal("0.005")) == 1
    assert money.from_decimal(Decimal("0.0049")) == 0
    assert money.from_decimal(Decimal("2.675")) == 268  # a float would give 2.67


@given(st.integers(min_value=1, max_value=money.MAX_CENTS))
def test_parsing_round_trips_formatting(cents):
    assert money.parse_amount(money.format_cents(cents)) == cents
    assert money.parse_amount(money.format_plain(cents)) == cents
    assert money.to_decimal(cents) * 100 == cents


@pytest.mark.parametrize(
    ("dollars", "shown"),
    [
        (Decimal("-263.75"), "-$263.75"),
        (Decimal("0.0125"), "$0.0125"),
        (Decimal("1500"), "$1,500.00"),
        (Decimal("-0.5"), "-$0.50"),
    ],
)
def test_a_unit_price_is_signed_and_grouped_as_every_amount_is(dollars, shown):
    assert money.format_unit_price(dollars) == shown
    assert money.format_unit_price(dollars, "EUR") == shown.replace("$", "") + " EUR"


@pytest.mark.parametrize(
    ("cents", "shown"),
    [
        (60000, "$600.00"),
        (999999, "$9,999.99"),  # whole below $10,000
        (1000000, "$10K"),
        (1000500, "$10.01K"),
        (99999499, "$999.99K"),
        (99999500, "$1M"),  # rounds up into the next unit, never "$1000K"
        (150000000, "$1.5M"),
        (3125134567, "$31.25M"),
        (12883100000, "$128.83M"),
        (12890000000, "$128.9M"),
        (129000000000, "$1.29B"),
        (-26375000, "-$263.75K"),
        (-5000, "-$50.00"),
    ],
)
def test_compact_amounts_fit_a_tile_and_round_half_up(cents, shown):
    assert money.format_compact(cents) == shown


@given(st.integers(min_value=-money.MAX_CENTS, max_value=money.MAX_CENTS))
def test_compact_amounts_are_at_most_nine_characters_and_close_to_the_exact_one(cents):
    shown = money.format_compact(cents)
    assert len(shown.lstrip("-")) <= 9
    if abs(cents) >= money.COMPACT_FROM:
        unit = {"K": 10**5, "M": 10**8, "B": 10**11}[shown[-1]]
        back = Decimal(shown.lstrip("-$")[:-1]) * unit
        assert abs(back - abs(cents)) <= Decimal(unit) / 200  # within half of the last digit shown
