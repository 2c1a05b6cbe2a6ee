"""The simulator preselects what the product's "Top Up" links ask for (``?plan=``, ``?amount=``); a bad
value says why and preselects nothing."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from billing_core.pricing.catalog import load_pricing, preselect
from tests import test_app_simulator as base

APP = base.APP
app_env, sqlite_url = base.app_env, base.sqlite_url  # the simulator tests' fixtures

PRICING = load_pricing()


def opened(query: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def chosen_plans(at: AppTest) -> list[str]:
    return [b.label for b in at.button if b.key and b.key.startswith("plan_") and b.proto.type == "primary"]


@pytest.mark.parametrize(
    ("plan", "amount_text", "label"),
    [("study", "20.00", "Choose Study"), ("standard", "100.00", "Choose Standard"), ("max", "1500.00", "Choose Max")],
)
def test_a_plan_in_the_link_is_preselected(app_env, sqlite_url, plan, amount_text, label):
    app_env(sqlite_url)
    at = opened({"plan": plan})
    assert at.text_input(key="amount").value == amount_text
    assert chosen_plans(at) == [label]
    assert not at.warning[1:] and not at.error


def test_an_amount_in_the_link_is_preselected_and_priced(app_env, sqlite_url):
    app_env(sqlite_url)
    at = opened({"amount": "250"})
    assert at.text_input(key="amount").value == "250.00"
    assert chosen_plans(at) == []  # a custom amount
    assert {m.label: m.value for m in at.metric}["Credits"] == "250"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"plan": "platinum"}, "is not one of study, standard, pro, max"),
        ({"plan": "custom"}, "is not one of"),
        ({"amount": "abc"}, "cannot be chosen"),
        ({"amount": "0.50"}, "smallest custom top-up"),
        ({"plan": "pro", "amount": "250"}, "choose one"),
    ],
)
def test_a_bad_value_in_the_link_says_why_and_chooses_nothing(app_env, sqlite_url, query, reason):
    app_env(sqlite_url)
    at = opened(query)
    [problem] = [w.value for w in at.warning if "link" in w.value]
    assert reason in problem.replace("\\", "")
    assert at.text_input(key="amount").value == ""
    assert chosen_plans(at) == []


def test_choosing_a_plan_clears_the_links_problem(app_env, sqlite_url):
    app_env(sqlite_url)
    at = opened({"plan": "platinum"})
    at.button(key="plan_pro").click().run()
    assert not [w for w in at.warning if "link" in w.value]
    assert at.text_input(key="amount").value == "500.00"


def test_preselect_quotes_a_hostile_value_back_short():
    chosen = preselect(PRICING, plan="x" * 5000)
    assert chosen.amount_cents is None and len(chosen.problem) < 120
    assert preselect(PRICING, plan=" PRO ").amount_cents == 50_000
    assert preselect(PRICING).amount_cents is None and preselect(PRICING).problem is None
