"""Typed countries: names in any case or accent, codes, the customers' own-language names; the rest refused."""

from __future__ import annotations

import pytest

from billing_core.core import countries
from billing_core.core.errors import InvalidCountry


@pytest.mark.parametrize(
    ("typed", "codes"),
    [
        ("Germany", ("DE",)),
        ("germany, US", ("DE", "US")),
        ("de", ("DE",)),
        ("Deutschland, ESPANA, españa", ("DE", "ES")),
        ("United States, USA, U.S.", ("US",)),
        ("UK, United Kingdom", ("GB",)),
        ("South Korea, 대한민국, Korea", ("KR",)),
        ("Taiwan, 中国", ("TW", "CN")),
        ("  ", ()),
        ("", ()),
    ],
)
def test_names_and_codes_become_iso_codes(typed, codes):
    assert countries.parse_countries(typed) == codes


@pytest.mark.parametrize(("typed", "named"), [("Narnia", "“Narnia”"), ("Germany, XX", "“XX”"), ("DEU1", "“DEU1”")])
def test_an_unknown_country_is_refused_by_name(typed, named):
    with pytest.raises(InvalidCountry, match=named) as refused:
        countries.parse_countries(typed)
    assert "Germany" in str(refused.value)  # says what would work


def test_a_huge_list_is_refused_without_echoing_it():
    with pytest.raises(InvalidCountry) as refused:
        countries.parse_countries("x" * 5000)
    assert len(str(refused.value)) < 200


def test_every_code_has_a_name_shown_without_commas():
    assert len(countries.COUNTRIES) == 249
    assert all(len(code) == 2 and "," not in names[0] for code, names in countries.COUNTRIES.items())
    assert countries.name_of("DE") == "Germany" and countries.name_of("ZZ") == "ZZ"
