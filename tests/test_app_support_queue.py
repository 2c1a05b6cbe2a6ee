"""Support's queue on the Orders page through AppTest: links for every role, a pasted id or reference
opening its order, a list checked with the gateway, the stuck view, the reconcile dry run, the labels."""

from __future__ import annotations

import re

import pytest

from billing_core.core.models import OrderStatus
from billing_core.orders import lifecycle as orders
from billing_core.payments.simulated import SimulatedGateway
from tests import test_app_orders as base
from tests.helpers import make_customer, make_order
from tests.test_app_orders import ADMIN, PRICING, metrics, run_action, seed, start, status_of

app_env, sqlite_db = base.app_env, base.sqlite_db  # the Orders page tests' fixtures


def with_open_payment(db, email="wait@example.com"):
    """An order whose payment is open at the gateway and not paid (the gateway says pending)."""
    with db.session() as s:
        order = make_order(s, ADMIN, make_customer(s, ADMIN, email=email), PRICING, amount="100")
        payment = SimulatedGateway(db).create_payment(orders._payment_request(s, order))
        return orders.attach_payment(s, ADMIN, order.public_id, payment)


def subheaders(at) -> list[str]:
    return [h.value for h in at.subheader]


def searched_as(at) -> str:
    [caption] = [c.value for c in at.caption if c.value.startswith("Searched as")]
    return caption


@pytest.mark.parametrize("role", ["support", "finance"])
def test_an_order_link_at_the_start_page_reaches_the_first_page_whole(app_env, sqlite_db, role):
    """ "/" opens the role's first page with the link's query (tests/test_e2e_support_links.py opens
    /orders?order=… itself in a browser, for every role)."""
    order = seed(sqlite_db)
    app_env(sqlite_db.url, role=role)
    at = start({"order": order.public_id})
    assert f"Order {order.public_id}" in subheaders(at)
    assert at.query_params["order"] == order.public_id


def test_a_link_with_a_provider_reference_opens_its_order(app_env, db):
    order = seed(db)
    app_env(db.url, role="support")
    at = start({"order": order.provider_ref})
    assert not at.error, [e.value for e in at.error]
    assert f"Order {order.public_id}" in subheaders(at)
    assert at.query_params["order"] == order.public_id  # the link now names the order itself


def test_a_pasted_order_id_opens_its_order_and_close_keeps_it_closed(app_env, sqlite_db):
    order = seed(sqlite_db)
    seed(sqlite_db, email="other@example.com")
    app_env(sqlite_db.url)
    at = start()
    at.text_input(key="q").input(order.public_id).run()
    assert f"Order {order.public_id}" in subheaders(at)
    at.button(key="close_order").click().run()
    assert "order" not in at.query_params
    at.run()
    assert f"Order {order.public_id}" not in subheaders(at)


def test_a_pasted_provider_reference_opens_its_order(app_env, db):
    order = seed(db)
    app_env(db.url)
    at = start()
    at.text_input(key="q").input(order.provider_ref).run()
    assert f"Order {order.public_id}" in subheaders(at)


def test_a_name_matching_one_order_does_not_open_it(app_env, sqlite_db):
    seed(sqlite_db)
    app_env(sqlite_db.url)
    at = start()
    at.text_input(key="q").input("müller").run()
    assert not [h for h in subheaders(at) if h.startswith("Order ")]
    assert "order" not in at.query_params


def test_a_status_filter_is_said_in_searched_as(app_env, sqlite_db):
    seed(sqlite_db)
    app_env(sqlite_db.url)
    at = start()
    assert "Searched as: **all orders**" in searched_as(at)
    at.multiselect(key="f_status").set_value(["pending", "expired"]).run()
    caption = searched_as(at)
    assert "all orders" not in caption
    assert "orders with status pending or expired" in caption


def test_the_gateway_saying_pending_is_not_good_news(app_env, db):
    order = with_open_payment(db)
    app_env(db.url, role="support")
    at = start({"order": order.public_id})
    at.button(key="check_gateway").click().run()
    assert any("The gateway says pending" in i.value for i in at.info)
    assert not [s.value for s in at.success if "gateway says" in s.value]


def test_check_these_shows_each_answer_in_the_list_and_the_stuck_view_lists_the_paid_one(app_env, db):
    paid = seed(db, email="paid@example.com")
    waiting = with_open_payment(db)
    app_env(db.url, role="support")
    at = start()
    table = at.dataframe[0].value.set_index("Order")
    assert set(table["Gateway (last check)"]) == {"not checked"}

    at.button(key="check_these").click().run()

    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value.set_index("Order")
    assert table.loc[paid.public_id, "Gateway (last check)"].startswith("succeeded · ")
    # When, with its year: a stuck order's last check can be from an earlier year.
    assert re.fullmatch(r"succeeded · \d{4}-\d{2}-\d{2} \d{2}:\d{2}", table.loc[paid.public_id, "Gateway (last check)"])
    assert table.loc[waiting.public_id, "Gateway (last check)"].startswith("pending · ")
    assert any("1 succeeded" in i.value and "1 pending" in i.value for i in at.info)
    assert status_of(db, paid).status is OrderStatus.PENDING  # asked, not completed

    at.segmented_control(key="orders_view").set_value("Stuck: paid at the gateway, unpaid here").run()
    assert list(at.dataframe[0].value["Order"]) == [paid.public_id]


def test_after_completing_from_a_filtered_list_the_list_is_a_new_table(app_env, sqlite_db):
    """The tick belongs to the table of the orders it was given: when the completed order leaves the
    pending list, the table (and its selection) is a new one, so no other order inherits the tick."""
    order = seed(sqlite_db)
    seed(sqlite_db, email="second@example.com")
    app_env(sqlite_db.url, role="support")
    at = start({"order": order.public_id})
    at.text_input(key="q").input("").run()
    at.multiselect(key="f_status").set_value(["pending"]).run()
    before = at.dataframe[0]
    assert order.public_id in list(before.value["Order"])
    run_action(at, "Complete from gateway", reason="paid")
    after = at.dataframe[0]
    assert order.public_id not in list(after.value["Order"])
    assert after.proto.id != before.proto.id
    assert metrics(at)["Status"] == "paid"  # the completed order stays open


def test_bulk_reconcile_is_a_dry_run_first_then_apply(app_env, db):
    order = seed(db)
    with_open_payment(db)
    app_env(db.url, role="support")
    at = start()
    assert metrics(at)["Stuck orders in range"] == "2"
    assert at.button(key="run_reconcile").disabled  # no dry run yet

    at.button(key="dry_run_reconcile").click().run()

    assert not at.error, [e.value for e in at.error]
    rows = at.dataframe[-1].value.set_index("order")
    assert rows.loc[order.public_id, "outcome"] == "would complete"
    assert rows.loc[order.public_id, "becomes"] == "paid"
    assert set(rows["becomes"]) == {"paid", "pending"}
    assert status_of(db, order).status is OrderStatus.PENDING  # the dry run changed nothing
    assert metrics(at)["Stuck orders in range"] == "2"

    at.checkbox(key="reconcile_confirm").check().run()
    at.button(key="run_reconcile").click().run()

    assert status_of(db, order).status is OrderStatus.PAID
    assert metrics(at)["Stuck orders in range"] == "1"
    assert list(at.dataframe[-1].value.set_index("order")["outcome"])  # the applied run's rows
    assert "completed" in set(at.dataframe[-1].value["outcome"])
