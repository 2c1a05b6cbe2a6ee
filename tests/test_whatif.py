"""What-if pricing: both pricings quote the same amounts; refusals become rows, not exceptions."""

from __future__ import annotations

import pytest

from billing_core.core.errors import PricingError
from billing_core.pricing.catalog import DEFAULT_PRICING_FILE, quote
from billing_core.pricing.whatif import compare, comparison_amounts, parse_whatif, pricing_file_text, uploaded_text

DEFAULT_TOML = DEFAULT_PRICING_FILE.read_text(encoding="utf-8")


def proposal(**replace: str):
    text = DEFAULT_TOML
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return parse_whatif(text)


@pytest.fixture
def cheaper_stripe():
    return proposal(**{'version = "2026.1"': 'version = "2026.2-cheap"', 'fee_rate = "0.055"': 'fee_rate = "0.04"'})


def test_amounts_are_the_plan_presets_then_the_typed_amount(pricing):
    amounts = comparison_amounts(pricing, pricing, typed_cents=4200)
    assert amounts == [("Study", 2000), ("Standard", 10000), ("Pro", 50000), ("Max", 150000), ("Typed amount", 4200)]


def test_a_typed_amount_equal_to_a_preset_is_not_repeated(pricing):
    assert len(comparison_amounts(pricing, pricing, typed_cents=50000)) == 4


def test_plans_only_the_whatif_has_are_added(pricing):
    whatif = proposal(**{'amount = "1500.00"': 'amount = "2000.00"'})
    assert ("Max (what-if plan)", 200000) in comparison_amounts(pricing, whatif)


def test_each_side_matches_quote_and_differences_are_whatif_minus_current(pricing, cheaper_stripe):
    rows = compare(pricing, cheaper_stripe, "stripe", comparison_amounts(pricing, cheaper_stripe))
    pro = next(r for r in rows if r.label == "Pro")
    now, then = quote(50000, "stripe", pricing), quote(50000, "stripe", cheaper_stripe)

    assert (pro.current.credits, pro.current.fee_cents, pro.current.total_cents) == (
        now.credits,
        now.fee_cents,
        now.total_cents,
    )
    assert (pro.whatif.fee_cents, pro.whatif.total_cents) == (then.fee_cents, then.total_cents)
    assert pro.current.pricing_version == "2026.1"
    assert pro.whatif.pricing_version == "2026.2-cheap"
    assert pro.fee_diff == 2000 - 2750
    assert pro.total_diff == -750
    assert pro.credits_diff == 0


def test_a_bonus_tier_shows_as_extra_credits(pricing):
    bonus = proposal(
        **{"# [[bonus_tiers]]\n# min_amount": "[[bonus_tiers]]\nmin_amount", '# percent = "5"': 'percent = "5"'}
    )
    rows = {r.label: r for r in compare(pricing, bonus, "alipay", comparison_amounts(pricing, bonus))}
    assert rows["Standard"].credits_diff == 0
    assert rows["Pro"].credits_diff == 2500  # 5% of 500 credits, in hundredths
    assert rows["Max"].credits_diff == 7500


def test_an_amount_outside_one_pricings_custom_range_gives_a_reason_not_an_exception(pricing):
    stricter = proposal(**{'min = "5.00"': 'min = "50.00"'})
    [row] = compare(pricing, stricter, "stripe", [("Typed amount", 1000)])

    assert row.current.ok and row.current.total_cents == 1080  # $10 + 5.5% is $0.55, below the $0.80 minimum
    assert not row.whatif.ok
    assert row.whatif.refusal == "The smallest custom top-up is $50.00."
    assert row.whatif.total_cents is None
    assert (row.credits_diff, row.fee_diff, row.total_diff) == (None, None, None)


def test_a_method_the_whatif_drops_gives_a_reason(pricing):
    no_alipay = proposal(**{'[methods.alipay]\nlabel = "Alipay"\nfee_rate = "0.03"\nmin_fee = "0.30"': ""})
    rows = compare(pricing, no_alipay, "alipay", [("Study", 2000)])
    assert rows[0].current.ok
    assert rows[0].whatif.refusal == "Pricing 2026.1 does not accept alipay payments."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = ", "the what-if pricing is not valid TOML"),
        (DEFAULT_TOML.replace('credits_per_usd = "1"', "credits_per_usd = 1.5"), "write credits_per_usd as a quoted"),
        (DEFAULT_TOML.replace('max = "25000.00"', 'max = "1.00"'), "custom.min is above custom.max"),
        ("", "version is missing"),
    ],
)
def test_a_broken_whatif_file_raises_a_pricing_error_that_says_what_is_wrong(text, message):
    with pytest.raises(PricingError, match=message):
        parse_whatif(text)


def test_the_default_file_parses_to_the_current_pricing(pricing):
    parsed = parse_whatif(DEFAULT_TOML)
    assert (parsed.plans, parsed.fees, parsed.digest) == (pricing.plans, pricing.fees, pricing.digest)
    assert parsed.source == "the what-if pricing"


def test_an_upload_that_is_not_utf8_text_is_refused_with_its_name():
    with pytest.raises(PricingError, match=r"proposal\.toml is not a UTF-8 text file"):
        uploaded_text(b"\xff\xfe\x00binary", "proposal.toml")


def test_a_missing_pricing_file_is_refused_with_its_path(tmp_path):
    with pytest.raises(PricingError, match="cannot be read"):
        pricing_file_text(tmp_path / "missing.toml")
    assert pricing_file_text(DEFAULT_PRICING_FILE) == DEFAULT_TOML
