from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, text, update

from billing_core.core.errors import BillingError
from billing_core.core.models import Customer, Order, OrderStatus
from billing_core.demo import seeding as demo
from billing_core.orders import lifecycle as orders
from billing_core.orders import search
from billing_core.orders.customers import find_customers
from billing_core.orders.search import Cursor, OrderQuery, SearchError, count_matches, search_orders
from tests.helpers import SUPPORT, make_customer, make_order, paid

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

PEOPLE = [
    ("zoya@example.com", "Зоя Смирнова", "KZ"),
    ("elodie.martin@example.fr", "Élodie Martin", "FR"),
    ("wang.fang@example.cn", "王芳", "CN"),
    ("Zoe.Mueller@Example.com", "Zoë Müller", "DE"),
    ("zoi@example.gr", "Ζωή Παπαδοπούλου", "GR"),
    ("ahmed@example.ae", "أحمد العلي", "AE"),
    ("legit@example.com", "100% Legit_Co", "US"),
    ("emil@example.com", "Emil Eriksson", "SE"),
]


@pytest.fixture
def shop(session, admin, analyst, pricing, settings):
    """Three orders per person, an hour apart, the first of each pair of people at the same instant."""
    by_email = {}
    for n, (email, name, country) in enumerate(PEOPLE):
        customer = make_customer(session, admin, email=email, name=name, country=country)
        placed = []
        for k, (amount, method) in enumerate([("20", "stripe"), ("100", "airwallex"), ("500", "alipay")]):
            now = T0 + timedelta(hours=k, minutes=n // 2)  # pairs of people share created_at exactly
            placed.append(
                orders.create_order(
                    session, admin, customer_id=customer.id, amount=amount, method=method, pricing=pricing, now=now
                )
            )
        orders.complete_order(session, admin, placed[0].id, settings=settings, reason="t", payment=paid(placed[0]))
        session.execute(update(Order).where(Order.id == placed[1].id).values(status=OrderStatus.FAILED))
        session.commit()
        by_email[customer.email] = [orders._get_order(session, o.id) for o in placed]
    sandbox = make_customer(session, analyst, email="sandy@example.com", name="Sandy Sandbox", sandbox=True)
    by_email["sandy@example.com"] = [make_order(session, analyst, sandbox, pricing)]
    return by_email


def ids(page):
    return {row.public_id for row in page.rows}


def of(shop, email, *which):
    return {shop[email][i].public_id for i in (which or range(len(shop[email])))}


def everything(session, query, page_size=4):
    rows, cursor = [], None
    while True:
        page = search_orders(session, SUPPORT, query, page_size=page_size, after=cursor)
        rows += page.rows
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def test_order_id_finds_exactly_that_order(session, shop):
    order = shop["zoya@example.com"][1]
    page = search_orders(session, SUPPORT, OrderQuery(text=f"  {order.public_id.upper()} "))
    assert ids(page) == {order.public_id}
    assert page.understood_as == "order id"


def test_paid_order_row_carries_what_support_needs(session, shop):
    order = shop["elodie.martin@example.fr"][0]
    (row,) = search_orders(session, SUPPORT, OrderQuery(text=order.public_id)).rows
    assert (row.customer_email, row.customer_name, row.status) == ("elodie.martin@example.fr", "Élodie Martin", "paid")
    assert row.invoice_number and row.provider_ref == f"sim_pi_{order.public_id}"
    assert (row.amount_cents, row.fee_cents, row.total_cents, row.credits) == (
        order.amount_cents,
        order.fee_cents,
        order.total_cents,
        order.credits,
    )
    assert row.created_at == order.created_at and not row.sandbox


def test_provider_reference_finds_its_order(session, shop):
    order = shop["wang.fang@example.cn"][0]
    page = search_orders(session, SUPPORT, OrderQuery(text=order.provider_ref))
    assert ids(page) == {order.public_id}
    assert page.understood_as == "provider reference"


@pytest.mark.parametrize("ref", ["pi_3NotARealOne", "int_hk12345", "2026030122001412345678901234", "sim_pi_nope"])
def test_unknown_provider_references_find_nothing(session, shop, ref):
    page = search_orders(session, SUPPORT, OrderQuery(text=ref))
    assert page.rows == [] and page.understood_as in {"provider reference", "start of a provider reference"}


def test_customer_public_id_finds_their_orders(session, shop):
    customer = session.scalar(select(Customer).where(Customer.email == "ahmed@example.ae"))
    page = search_orders(session, SUPPORT, OrderQuery(text=customer.public_id))
    assert ids(page) == of(shop, "ahmed@example.ae")
    assert page.understood_as == "customer id"


def test_email_is_matched_whatever_its_case(session, shop):
    page = search_orders(session, SUPPORT, OrderQuery(text="ZOE.MUELLER@example.COM"))
    assert ids(page) == of(shop, "zoe.mueller@example.com")
    assert page.understood_as == "email"


def test_email_prefix_finds_every_customer_it_starts(session, shop):
    page = search_orders(session, SUPPORT, OrderQuery(text="ZO"), page_size=50)
    assert ids(page) == of(shop, "zoya@example.com") | of(shop, "zoe.mueller@example.com") | of(shop, "zoi@example.gr")
    assert search_orders(session, SUPPORT, OrderQuery(text="zoya@exa")).understood_as == "part of an email"


@pytest.mark.parametrize(
    ("typed", "email"),
    [
        ("зо", "zoya@example.com"),
        ("ЗОЯ С", "zoya@example.com"),
        ("ÉLO", "elodie.martin@example.fr"),
        ("élodie m", "elodie.martin@example.fr"),
        ("王", "wang.fang@example.cn"),
        ("ζωή", "zoi@example.gr"),
        ("ΖΩΉ ΠΑΠΑ", "zoi@example.gr"),
        ("أحمد", "ahmed@example.ae"),
        ("zoë mü", "zoe.mueller@example.com"),
    ],
)
def test_name_prefix_matches_any_script_case_insensitively(session, shop, typed, email):
    page = search_orders(session, SUPPORT, OrderQuery(text=typed))
    assert ids(page) == of(shop, email)
    assert page.understood_as == "words of a name, company, email or tax id"


def test_long_name_prefix_beyond_the_ranged_characters_is_still_exact(session, shop):
    assert ids(search_orders(session, SUPPORT, OrderQuery(text="emil eriksson"))) == of(shop, "emil@example.com")
    assert search_orders(session, SUPPORT, OrderQuery(text="emil erikssom")).rows == []


def test_walking_every_page_returns_each_order_once_newest_first(session, shop):
    rows = everything(session, OrderQuery(), page_size=4)
    expected = [o for placed in shop.values() for o in placed if not o.sandbox]
    assert len(rows) == len(expected) == len({r.public_id for r in rows})
    keys = [(r.created_at, r.public_id) for r in rows]
    by_id = {o.public_id: o.id for o in expected}
    assert [(r.created_at, by_id[r.public_id]) for r in rows] == sorted(
        ((o.created_at, o.id) for o in expected), reverse=True
    )
    assert len({k[0] for k in keys}) < len(keys)  # the data really has ties on created_at


@pytest.mark.parametrize("statuses", [["pending"], ["pending", "failed"], ["paid", "failed", "pending"]])
def test_paging_a_status_filter_visits_each_match_once(session, shop, statuses):
    rows = everything(session, OrderQuery(statuses=statuses), page_size=3)
    expected = {o.public_id for placed in shop.values() for o in placed if o.status in statuses and not o.sandbox}
    assert [r.public_id for r in rows] and len(rows) == len(expected) and {r.public_id for r in rows} == expected
    assert [r.created_at for r in rows] == sorted((r.created_at for r in rows), reverse=True)


def test_each_filter_narrows_and_they_combine(session, shop):
    real = [o for placed in shop.values() for o in placed if not o.sandbox]

    def matching(**query):
        return {r.public_id for r in everything(session, OrderQuery(**query), page_size=50)}

    assert matching(statuses=["failed"]) == {o.public_id for o in real if o.status is OrderStatus.FAILED}
    assert matching(methods=["alipay"]) == {o.public_id for o in real if o.method == "alipay"}
    assert matching(plans=["pro"]) == {o.public_id for o in real if o.plan == "pro"}
    assert matching(amount_min_cents=5000, amount_max_cents=10000) == {
        o.public_id for o in real if 5000 <= o.amount_cents <= 10000
    }
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    assert matching(created_from=start, created_before=end) == {
        o.public_id for o in real if start <= o.created_at < end
    }
    assert matching(text="zo", statuses=["failed", "pending"], methods=["airwallex"], created_from=T0) == {
        shop[e][1].public_id for e in ("zoya@example.com", "zoe.mueller@example.com", "zoi@example.gr")
    }
    assert matching(text="zo", plans=["max"]) == set()


def test_sandbox_orders_are_hidden_unless_asked_for(session, shop):
    sandbox_order = shop["sandy@example.com"][0].public_id
    assert search_orders(session, SUPPORT, OrderQuery(text="sandy")).rows == []
    assert sandbox_order not in {r.public_id for r in everything(session, OrderQuery())}
    shown = search_orders(session, SUPPORT, OrderQuery(text="sandy", include_sandbox=True))
    assert ids(shown) == {sandbox_order} and shown.rows[0].sandbox


def test_count_is_exact_below_the_cap_and_capped_above(session, shop):
    assert count_matches(session, SUPPORT, OrderQuery(text="zo")).label == "9"
    assert count_matches(session, SUPPORT, OrderQuery(statuses=["paid"])).value == len(PEOPLE)
    capped = count_matches(session, SUPPORT, OrderQuery(), limit=10)
    assert (capped.value, capped.capped, capped.label) == (10, True, "10+")
    assert count_matches(session, SUPPORT, OrderQuery(text="nobody-here")).label == "0"


HOSTILE = [
    "' OR 1=1 --",
    "'; DROP TABLE orders; --",
    '" OR ""="',
    "%",
    "_",
    "%%",
    "z%",
    "z_ya",
    "\\",
    "\\%",
    "<script>alert(1)</script>",
    "ord_' OR '1'='1",
    "pi_%",
    "cus_%",
    "@",
    "%@%",
    "\x1b[31m\x07",
    "\ud800qq",
    "🤖💸",
    "Robert'); DROP TABLE customers;--",
    "\u202e",
    "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨",
]


@pytest.mark.parametrize("typed", HOSTILE)
def test_hostile_text_is_just_text(session, shop, typed):
    page = search_orders(session, SUPPORT, OrderQuery(text=typed))
    assert page.rows == [] and count_matches(session, SUPPORT, OrderQuery(text=typed)).value == 0
    assert session.scalar(text("SELECT count(*) FROM orders")) == 3 * len(PEOPLE) + 1


@pytest.mark.parametrize("typed", ["\x00", " ", "\ud800", "\t\r\n", "\x00" * 10_000])
def test_text_that_is_nothing_once_cleaned_lists_all_orders(session, shop, typed):
    page = search_orders(session, SUPPORT, OrderQuery(text=typed))
    assert page.understood_as == "all orders" and len(page.rows) == 3 * len(PEOPLE)


def test_percent_and_underscore_are_literal_characters_in_names(session, shop):
    assert ids(search_orders(session, SUPPORT, OrderQuery(text="100% legit_"))) == of(shop, "legit@example.com")
    assert search_orders(session, SUPPORT, OrderQuery(text="100_")).rows == []


def test_control_characters_are_removed_and_reported(session, shop):
    page = search_orders(session, SUPPORT, OrderQuery(text="\x00зо\x00"))
    assert ids(page) == of(shop, "zoya@example.com")
    assert page.notes == ("Ignored 2 control or invalid characters.",)
    assert ids(search_orders(session, SUPPORT, OrderQuery(text="zoya\x00@example.com"))) == of(shop, "zoya@example.com")


def test_ten_thousand_characters_are_refused_with_a_message(session, shop):
    with pytest.raises(SearchError, match="10,000 characters") as refused:
        search_orders(session, SUPPORT, OrderQuery(text="a" * 10_000))
    assert isinstance(refused.value, BillingError)
    with pytest.raises(SearchError):
        count_matches(session, SUPPORT, OrderQuery(text="'" * 10_000))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (OrderQuery(statuses=["lost"]), "not a known order status"),
        (OrderQuery(methods=["paypal"]), "not a known payment method"),
        (OrderQuery(amount_min_cents=500, amount_max_cents=100), "larger than the largest"),
        (OrderQuery(amount_min_cents=-1), "negative"),
        (OrderQuery(created_from=T0, created_before=T0), "before the end"),
        (OrderQuery(created_from=datetime(2026, 1, 1)), "time zone"),
    ],
)
def test_impossible_filters_say_why(session, query, message):
    with pytest.raises(SearchError, match=message):
        search_orders(session, SUPPORT, query)


def test_a_cursor_from_the_last_page_continues_nowhere(session, shop):
    page = search_orders(session, SUPPORT, OrderQuery(), after=Cursor(T0 - timedelta(days=1), 1))
    assert page.rows == [] and page.next_cursor is None


# --- every kind of search uses an index ----------------------------------------------------------


@pytest.fixture
def seeded(db, admin):
    demo.seed(db, orders=20_000, seed=5, actor=admin)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return db


def _plans_of(db, run, setup: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(SQL, plan text) of every SELECT ``run`` sends, explained with the very same parameters.

    ``setup`` statements run on the explaining connection first (planner settings).
    """
    sent = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.session() as session:
            run(session)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    explain = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement in setup:
            cursor.execute(statement)
        plans = []
        for statement, parameters in sent:
            cursor.execute(explain + statement, parameters)
            plans.append((statement, "\n".join(str(row[-1] if db.dialect == "sqlite" else row[0]) for row in cursor)))
        return plans
    finally:
        raw.close()


def _full_scans(db, plan: str) -> list[str]:
    lines = plan.splitlines()
    if db.dialect == "sqlite":
        return [line for line in lines if line.strip() in {"SCAN orders", "SCAN customers", "SCAN invoices"}]
    return [line for line in lines if "Seq Scan" in line]


def _sample(db):
    with db.session() as session:
        return session.execute(
            select(Order.public_id, Order.provider_ref, Customer.email, Customer.name, Order.status)
            .join(Customer, Customer.id == Order.customer_id)
            .where(Order.provider_ref.is_not(None))
            .order_by(Order.id)
            .offset(1234)
            .limit(1)
        ).one()


@pytest.mark.parametrize(
    "kind",
    ["order id", "provider reference", "email", "email prefix", "name prefix", "pending newest", "two statuses"],
)
def test_every_search_kind_uses_an_index(seeded, kind):
    order_id, ref, email, name, _ = _sample(seeded)
    query = {
        "order id": OrderQuery(text=order_id),
        "provider reference": OrderQuery(text=ref),
        "email": OrderQuery(text=email),
        "email prefix": OrderQuery(text=email[:7]),
        "name prefix": OrderQuery(text=name[:3].upper()),
        "pending newest": OrderQuery(statuses=["pending"]),
        "two statuses": OrderQuery(statuses=["refunded", "cancelled"]),
    }[kind]

    def run(session):
        page = search_orders(session, SUPPORT, query)
        assert page.rows
        second = search_orders(session, SUPPORT, query, after=page.next_cursor) if page.next_cursor else None
        assert second is None or not ids(second) & ids(page)

    plans = _plans_of(seeded, run)
    assert plans
    for statement, plan in plans:
        assert not _full_scans(seeded, plan), f"{statement}\n{plan}"


def test_a_common_name_lists_its_customers_orders_from_the_customer_index(seeded):
    def run(session):
        assert search_orders(session, SUPPORT, OrderQuery(text="jo")).rows
        count_matches(session, SUPPORT, OrderQuery(text="jo"))

    # As in test_customer_search: at 20,000 orders PostgreSQL prices a sequential scan lower; off, the
    # plan shows the index can answer.
    setup = ("SET enable_seqscan = off",) if seeded.dialect == "postgresql" else ()
    plans = [p for s, p in _plans_of(seeded, run, setup) if "FROM orders" in s]
    assert plans
    for plan in plans:
        assert not _full_scans(seeded, plan), plan
        if seeded.dialect == "sqlite":
            assert "COVERING INDEX ix_orders_customer_id_created_at" in plan, plan
            assert "ix_orders_created_at" not in plan, plan


def test_several_customers_orders_are_their_newest_ones_page_after_page(seeded):
    # PostgreSQL reads each customer's newest orders by their own index and merges them (a LATERAL
    # join); SQLite reads the IN list. Either way the pages are exactly the customers' newest orders.
    query = OrderQuery(text="jo", statuses=("paid",))
    with seeded.session() as session:
        plan = search._plan(session, query)
        assert len(plan.customer_ids) > 1
        expected = session.scalars(
            select(Order.public_id)
            .where(Order.customer_id.in_(plan.customer_ids), Order.status == OrderStatus.PAID)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(30)
        ).all()
        first = search_orders(session, SUPPORT, query, page_size=10)
        second = search_orders(session, SUPPORT, query, page_size=10, after=first.next_cursor)
        third = search_orders(session, SUPPORT, query, page_size=10, after=second.next_cursor)
    listed = [r.public_id for page in (first, second, third) for r in page.rows]
    assert len(expected) == 30 and listed == expected


@pytest.mark.parametrize("typed", ["j", "*", "%", "@", "é"])
def test_one_letter_or_symbol_asks_for_two_letters_and_reads_nothing(seeded, typed):
    sent = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(seeded.engine, "before_cursor_execute", capture)
    try:
        with seeded.session() as session:
            page = search_orders(session, SUPPORT, OrderQuery(text=typed))
            count = count_matches(session, SUPPORT, OrderQuery(text=typed))
            hits = find_customers(session, SUPPORT, typed).hits
    finally:
        event.remove(seeded.engine, "before_cursor_execute", capture)
    assert hits == []
    assert page.rows == [] and count.value == 0
    assert page.understood_as == "too short to search"
    assert page.notes == ("Type at least 2 letters of a name, company or email.",)
    assert not [s for s in sent if "FROM orders" in s or "FROM customers" in s]


def test_one_han_character_is_still_a_name(session, shop):
    assert ids(search_orders(session, SUPPORT, OrderQuery(text="王"))) == of(shop, "wang.fang@example.cn")


def test_orders_of_the_first_customers_when_many_match_and_the_count_says_so(session, shop, monkeypatch):
    monkeypatch.setattr(search, "CUSTOMER_FANOUT", 2)
    page = search_orders(session, SUPPORT, OrderQuery(text="zo"), page_size=50)
    assert len({r.customer_email for r in page.rows}) == 2 and len(page.rows) == 6
    assert "More than 2 customers match" in page.notes[0]
    count = count_matches(session, SUPPORT, OrderQuery(text="zo"))
    assert (count.value, count.capped, count.label) == (6, True, "6+")


def test_a_text_search_counts_no_further_than_its_cap(session, shop, monkeypatch):
    monkeypatch.setattr(search, "TEXT_COUNT_CAP", 4)
    count = count_matches(session, SUPPORT, OrderQuery(text="zo"))
    assert (count.value, count.label) == (4, "4+")
    assert count_matches(session, SUPPORT, OrderQuery(), limit=10).label == "10+"


def test_an_amount_counts_no_further_than_the_text_cap(session, shop, monkeypatch):
    # $20 is every person's first order: a common amount is tens of thousands of orders at scale.
    monkeypatch.setattr(search, "TEXT_COUNT_CAP", 4)
    count = count_matches(session, SUPPORT, OrderQuery(text="20.00"), limit=100)
    assert (count.value, count.capped, count.label) == (4, True, "4+")
    page = search_orders(session, SUPPORT, OrderQuery(text="$20"), count_limit=100)
    assert page.count.label == "4+" and len(page.rows) == len(PEOPLE)  # the rows are all listed
