"""Order search for support: one search box plus filters, answered and paged by the database.

What the box's text is read as (an id, a reference, an amount, an email or words) is
billing_core.orders.typed_text.

Every kind is an index lookup. Results are ordered newest first by (created_at, id) and paged by a
keyset cursor, never by OFFSET. Text finds customers first: the best ``CUSTOMER_FANOUT`` by the text
index (customer_index.best_matches: whole words, then starts of words, then parts), then their orders
through (customer_id, created_at, id), the page's ids taken from that index alone before its rows are
read. The first page with no filter but the text reads only the customers whose newest order can reach
it, and sums their order counts (``customer_orders``, kept with every new order). When more customers
match, the orders are those of the best ``CUSTOMER_FANOUT`` and a note says so. A domain that some
email has ("mail.test", "@mail.test") is read as an email domain, by its index. Their orders are counted
no further than ``TEXT_COUNT_CAP`` ("1,000+"); so are an amount's.

The start of a name (when every typed word is one letter), case-insensitively in any script, is a set of
code-point ranges (billing_core.orders.prefixes).

Text is only ever a bound parameter: a LIKE pattern escapes ``%``, ``_`` and backslashes, and an FTS5
query quotes every word as a string, so quotes, ``*``, ``NEAR``, ``-`` and ``:`` are ordinary characters.
Control characters (NUL included, which PostgreSQL refuses in text) and lone surrogates are removed
and the page says so; text longer than the longest email is refused with a message.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time
from functools import lru_cache
from operator import itemgetter

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.db import ids_value, one_of, read, remembered
from billing_core.core.models import Customer, Invoice, InvoiceKind, Order, OrderStatus
from billing_core.orders import customer_index
from billing_core.orders.prefixes import name_starts_with, prefix_params, starts_with, starts_with_param
from billing_core.orders.typed_text import (
    ID_PREFIX_CHARS,
    MAX_QUERY_CHARS,
    Interpretation,
    QueryKind,
    SearchError,
    interpret,
    looks_like_domain,
)
from billing_core.pricing.catalog import Method, PlanId

MAX_NAME_CHARS = 200  # customers.name
MAX_PAGE_SIZE = 500
# Text finds customers first, then their orders by (customer_id, created_at): at most this many
# customers' orders are listed (the page says so when more match).
CUSTOMER_FANOUT = 200
# A search by customer (words, an email, a customer id) or by an amount counts its orders no further than
# this ("1,000+"): counting is what costs most (a common amount has tens of thousands of orders).
TEXT_COUNT_CAP = 1_000


@dataclass(frozen=True)
class OrderQuery:
    """What support typed and picked. Dates are UTC days; ``created_before`` is exclusive."""

    text: str = ""
    statuses: Sequence[OrderStatus | str] = ()
    methods: Sequence[Method | str] = ()
    plans: Sequence[PlanId | str] = ()
    created_from: datetime | date | None = None
    created_before: datetime | date | None = None
    amount_min_cents: int | None = None  # on amount_cents, the top-up amount before fees
    amount_max_cents: int | None = None
    include_sandbox: bool = False


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: the next page starts strictly after it, newest first."""

    created_at: datetime
    id: int


@dataclass(frozen=True)
class OrderRow:
    public_id: str
    created_at: datetime
    customer_public_id: str
    customer_email: str
    customer_name: str
    plan: PlanId
    method: Method
    amount_cents: int
    fee_cents: int
    total_cents: int
    credits: int
    status: OrderStatus
    provider_ref: str | None
    invoice_number: str | None
    sandbox: bool
    gateway_state: str | None = None  # the latest gateway check's answer, if anybody asked
    gateway_checked_at: datetime | None = None


@dataclass(frozen=True)
class MatchCount:
    value: int
    capped: bool

    @property
    def label(self) -> str:
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


@dataclass(frozen=True)
class SearchPage:
    rows: list[OrderRow]
    next_cursor: Cursor | None
    understood_as: str  # e.g. "email prefix", for the page to show
    notes: tuple[str, ...] = ()
    count: MatchCount | None = None  # when asked for (``count_limit``): how many orders match


# --- the query --------------------------------------------------------------------------------


def _enums(values: Iterable, kind: type[enum.Enum], label: str) -> tuple:
    out = []
    for value in values or ():
        try:
            out.append(kind(value))
        except ValueError:
            raise SearchError(f"“{str(value)[:40]}” is not a known {label}.") from None
    return tuple(dict.fromkeys(out))


def _moment(value: datetime | date | None, label: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise SearchError(f"The {label} date needs a time zone.")
        return value.astimezone(UTC)
    return datetime.combine(value, time(), tzinfo=UTC)


@dataclass
class _Plan:
    """What to ask the database: order conditions, the customer scope, and how it was understood."""

    understood_as: str
    notes: tuple[str, ...]
    # Each condition is a ``_filter``: built once, its values in ``params`` under the names it binds, and
    # ``filters`` names them, so that the statements made of them are built once too (``_statement``).
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    params: dict[str, object] = field(default_factory=dict)
    statuses: tuple[OrderStatus, ...] = ()
    narrow: bool = False  # at most a few customers' orders: no need to merge per status
    customer_ids: list[int] = field(default_factory=list)  # the customers matched (at most CUSTOMER_FANOUT)
    more_customers: bool = False  # more than CUSTOMER_FANOUT matched: their orders are not all listed
    amount_cents: int | None = None  # the order's amount or its total
    nothing: bool = False
    dialect: str = "sqlite"
    customer_scope: ColumnElement[bool] | None = None  # the condition naming customer_ids, among conditions
    # customer id -> (order count, newest order's time), read with the customers (customer_orders)
    order_counts: dict[int, tuple[int, datetime | None]] = field(default_factory=dict)


def _plan(session: Session, query: OrderQuery) -> _Plan:
    meaning = interpret(query.text)
    plan = _Plan(understood_as=meaning.kind.value, notes=meaning.notes, dialect=session.get_bind().dialect.name)
    plan.statuses = _enums(query.statuses, OrderStatus, "order status")
    methods = _enums(query.methods, Method, "payment method")
    plans = _enums(query.plans, PlanId, "plan")
    start = _moment(query.created_from, "start")
    end = _moment(query.created_before, "end")
    low, high = query.amount_min_cents, query.amount_max_cents
    if start and end and start >= end:
        raise SearchError("The start date must be before the end date.")
    if (low is not None and low < 0) or (high is not None and high < 0):
        raise SearchError("Amounts cannot be negative.")
    if low is not None and high is not None and low > high:
        raise SearchError("The smallest amount is larger than the largest.")

    if methods:
        _add(plan, "methods", methods=list(methods))
    if plans:
        _add(plan, "plans", plans=list(plans))
    if start:
        _add(plan, "created_from", created_from=start)
    if end:
        _add(plan, "created_before", created_before=end)
    if low is not None:
        _add(plan, "amount_min", amount_min=low)
    if high is not None:
        _add(plan, "amount_max", amount_max=high)

    dialect = session.get_bind().dialect.name
    kind, term = resolve(session, meaning)
    plan.understood_as = kind.value
    # An order's sandbox flag is its customer's (billing_core.orders.lifecycle.create_order copies it), so a
    # search by customer hides sandbox customers and reads their orders from the index alone.
    visible = customer_index.visible(query.include_sandbox)
    if kind is QueryKind.TOO_SHORT:
        plan.nothing = True
    elif kind is QueryKind.ORDER_ID:
        _add(plan, "order_id", order_id=term)
        plan.narrow = True
    elif kind is QueryKind.ORDER_ID_PREFIX:
        _add_prefix(plan, "order_id", term)
        plan.narrow = True
    elif kind is QueryKind.PROVIDER_REF:
        exact = read(session, _one_order_with_ref(), {"provider_ref": term}).first()
        if exact is None and len(term) >= ID_PREFIX_CHARS:
            plan.understood_as = QueryKind.PROVIDER_REF_PREFIX.value
            _add_prefix(plan, "provider_ref", term)
        else:
            _add(plan, "provider_ref", provider_ref=term)
        plan.narrow = True
    elif kind is QueryKind.CUSTOMER_ID:
        _scope_to_customers_with(plan, session, "public_id", term, query.include_sandbox)
    elif kind is QueryKind.CUSTOMER_ID_PREFIX:
        _scope_to_customers(plan, session, [_customers(starts_with(Customer.public_id, term, dialect))], visible)
    elif kind is QueryKind.AMOUNT:
        plan.amount_cents = meaning.amount_cents
    elif kind is QueryKind.EMAIL_DOMAIN:
        _scope_to_customers_with(plan, session, "email_domain", term, query.include_sandbox)
    elif kind is QueryKind.EMAIL_PART:
        if read(session, _one_customer_with("email"), {"term": term}).first() is not None:
            plan.understood_as = QueryKind.EMAIL.value
            _scope_to_customers_with(plan, session, "email", term, query.include_sandbox)
        else:
            found = customer_index.best_matches(
                session, customer_index.typed_words(term), CUSTOMER_FANOUT + 1, include_sandbox=query.include_sandbox
            )
            if found is not None:
                _scope_to_ids(plan, {b.id: (b.orders, b.newest) for b in found})
            else:
                _scope_to_customers(plan, session, [_customers(starts_with(Customer.email, term, dialect))], visible)
    elif kind is QueryKind.CUSTOMER:
        found = customer_index.best_matches(
            session, customer_index.typed_words(term), CUSTOMER_FANOUT + 1, include_sandbox=query.include_sandbox
        )
        if found is not None:
            _scope_to_ids(plan, {b.id: (b.orders, b.newest) for b in found})
        else:
            plan.understood_as = QueryKind.CUSTOMER_PREFIX.value
            sources = [_customers(starts_with(Customer.email, term.lower(), dialect))]
            if len(term) <= MAX_NAME_CHARS:
                sources.append(_customers(name_starts_with(Customer.name, term, dialect)))
            _scope_to_customers(plan, session, sources, visible)
    if not plan.customer_ids and not query.include_sandbox:
        _add(plan, "visible")
    return plan


def _add(plan: _Plan, name: str, **values) -> None:
    """Add the condition ``_filter(name)`` to ``plan``, with its parameters' ``values``."""
    plan.conditions.append(_filter(name, plan.dialect))
    plan.filters.append(name)
    plan.params.update(values)


def _add_prefix(plan: _Plan, column: str, prefix: str) -> None:
    """Add "``column`` starts with ``prefix``" (an order id or a provider reference)."""
    bounds = prefix_params(column, prefix)
    _add(plan, f"{column}_prefix" if len(bounds) == 2 else f"{column}_prefix_open", **bounds)


@lru_cache(maxsize=64)
def _filter(name: str, dialect: str) -> ColumnElement[bool]:
    """The condition on orders called ``name``, its values bound as parameters: ``methods`` and ``plans``
    (lists), ``created_from``, ``created_before``, ``amount_min``, ``amount_max``, ``order_id``,
    ``provider_ref``, the ranges of ``prefix_params`` (``order_id_prefix``, ``provider_ref_prefix``),
    ``customer_id`` (one customer's orders), ``customer_ids`` (``ids_value``); ``visible`` has none."""
    if name.endswith(("_prefix", "_prefix_open")):
        param = name.removesuffix("_open").removesuffix("_prefix")
        column = {"order_id": Order.public_id, "provider_ref": Order.provider_ref}[param]
        return starts_with_param(column, param, dialect, bounded=not name.endswith("_open"))
    if name == "customer_ids":
        return one_of(Order.customer_id, (), dialect, name="customer_ids")
    return {
        "methods": lambda: Order.method.in_(bindparam("methods", expanding=True)),
        "plans": lambda: Order.plan.in_(bindparam("plans", expanding=True)),
        "created_from": lambda: Order.created_at >= bindparam("created_from"),
        "created_before": lambda: Order.created_at < bindparam("created_before"),
        "amount_min": lambda: Order.amount_cents >= bindparam("amount_min"),
        "amount_max": lambda: Order.amount_cents <= bindparam("amount_max"),
        "order_id": lambda: Order.public_id == bindparam("order_id"),
        "provider_ref": lambda: Order.provider_ref == bindparam("provider_ref"),
        "customer_id": lambda: Order.customer_id == bindparam("customer_id"),
        "visible": lambda: Order.sandbox.is_(false()),
    }[name]()


@lru_cache(maxsize=1)
def _one_order_with_ref() -> Select:
    return select(Order.id).where(Order.provider_ref == bindparam("provider_ref")).limit(1)


def _customers(condition: ColumnElement[bool]) -> Select:
    return select(Customer.id).where(condition)


def resolve(session: Session, meaning: Interpretation) -> tuple[QueryKind, str]:
    """What the text is where the data decides: a bare hex fragment is the start of an order id, else of
    a customer id, else words (a tax id); a domain ("mail.test", "@mail.test") that some email has is
    an email domain, else words or part of an email. Read once a transaction for the same text."""
    memo = remembered(session, "search.resolve")
    if meaning not in memo:
        memo[meaning] = _resolve(session, meaning)
    return memo[meaning]


def _resolve(session: Session, meaning: Interpretation) -> tuple[QueryKind, str]:
    if meaning.kind in (QueryKind.CUSTOMER, QueryKind.EMAIL_PART) and looks_like_domain(meaning.term):
        domain = meaning.term.removeprefix("@").lower()
        if read(session, _one_customer_with("email_domain"), {"term": domain}).first() is not None:
            return QueryKind.EMAIL_DOMAIN, domain
    if not meaning.fragment:
        return meaning.kind, meaning.term
    dialect = session.get_bind().dialect.name
    if session.scalar(select(Order.id).where(starts_with(Order.public_id, meaning.term, dialect)).limit(1)):
        return meaning.kind, meaning.term
    fragment = meaning.term.replace("ord_", "cus_", 1)
    if session.scalar(select(Customer.id).where(starts_with(Customer.public_id, fragment, dialect)).limit(1)):
        return QueryKind.CUSTOMER_ID_PREFIX, fragment
    return QueryKind.CUSTOMER, meaning.term.removeprefix("ord_")


def _scope_to_customers(
    plan: _Plan, session: Session, sources: list[Select], visible: Sequence[ColumnElement[bool]]
) -> None:
    """Resolve the matching customers first (at most CUSTOMER_FANOUT), then scope orders to them."""
    found: dict[int, tuple[int, datetime | None]] = {}
    for source in sources:
        read = customer_index.with_order_counts(source.where(*visible).limit(CUSTOMER_FANOUT + 1))
        for row in session.execute(read):
            found.setdefault(row.id, (row.orders, row.newest))
    _scope_to_ids(plan, found)


def _scope_to_customers_with(plan: _Plan, session: Session, column: str, term: str, include_sandbox: bool) -> None:
    """``_scope_to_customers`` of the customers whose ``column`` is ``term``, by a statement built once."""
    found = read(session, _customers_with(column, include_sandbox), {"term": term}).all()
    _scope_to_ids(plan, {row.id: (row.orders, row.newest) for row in found})


@lru_cache(maxsize=16)
def _customers_with(column: str, include_sandbox: bool) -> Select:
    """The first CUSTOMER_FANOUT + 1 customers (by id: the same ones every time, an email domain's from
    its index) whose ``column`` is the parameter ``term``, with their order counts."""
    visible = customer_index.visible(include_sandbox)
    equal = getattr(Customer, column) == bindparam("term")
    first = select(Customer.id).where(equal, *visible).order_by(Customer.id).limit(CUSTOMER_FANOUT + 1)
    counted = customer_index.with_order_counts(first)
    return counted.order_by(counted.selected_columns.id)


@lru_cache(maxsize=8)
def _one_customer_with(column: str) -> Select:
    """A customer whose ``column`` is the parameter ``term``, if any."""
    return select(Customer.id).where(getattr(Customer, column) == bindparam("term")).limit(1)


def _scope_to_ids(plan: _Plan, found: dict[int, tuple[int, datetime | None]]) -> None:
    """Scope orders to the customers ``found`` (id -> order count and newest order, best first; more than
    CUSTOMER_FANOUT: the first ones, said)."""
    if not found:
        plan.nothing = True
        return
    if len(found) > CUSTOMER_FANOUT:
        plan.more_customers = True
        plan.notes += (
            f"More than {CUSTOMER_FANOUT} customers match: the orders listed are those of the "
            f"{CUSTOMER_FANOUT} best matching. Type more of the name, or the email, to narrow.",
        )
    plan.narrow = True
    plan.order_counts = dict(itertools.islice(found.items(), CUSTOMER_FANOUT))
    plan.customer_ids = list(plan.order_counts)
    if len(plan.customer_ids) == 1:
        _add(plan, "customer_id", customer_id=plan.customer_ids[0])
    else:
        _add(plan, "customer_ids", customer_ids=ids_value(plan.customer_ids, plan.dialect))
    plan.customer_scope = plan.conditions[-1]


_PAGE_COLUMNS = (
    Order.id,
    Order.public_id,
    Order.created_at,
    Order.customer_id,
    Order.plan,
    Order.method,
    Order.amount_cents,
    Order.fee_cents,
    Order.total_cents,
    Order.credits,
    Order.status,
    Order.provider_ref,
    Order.sandbox,
    Order.gateway_state,
    Order.gateway_checked_at,
)
_NEWEST_FIRST = (Order.created_at.desc(), Order.id.desc())


def _after() -> ColumnElement[bool]:
    """After the cursor given as the parameters ``after_created_at`` and ``after_id``."""
    # The redundant created_at <= bound is what lets both planners range-scan the index.
    at = bindparam("after_created_at", type_=Order.created_at.type)
    return and_(Order.created_at <= at, or_(Order.created_at < at, Order.id < bindparam("after_id")))


def _statuses() -> ColumnElement[bool]:
    """The plan's statuses, given as the parameter ``statuses`` (``_params``)."""
    return Order.status.in_(bindparam("statuses", expanding=True))


def _params(plan: _Plan, after: Cursor | None = None) -> dict[str, object]:
    """The values of every parameter the plan's statements bind."""
    params = dict(plan.params)
    if plan.statuses:
        params["statuses"] = list(plan.statuses)
        params |= {f"status_{i}": status for i, status in enumerate(plan.statuses)}
    if plan.amount_cents is not None:
        params["amount_cents"] = plan.amount_cents
    if after is not None:
        params |= {"after_created_at": after.created_at, "after_id": after.id}
    return params


_STATEMENTS: dict[tuple, Select] = {}


def _statement(key: tuple, build: Callable[[], Select]) -> Select:
    """The statement ``build()`` makes, made once for each ``key`` (what its shape depends on): its
    values are the parameters ``_params`` gives. A search's page, with its names and its count, cost
    2-3 ms of Python to build and to key again for every search."""
    statement = _STATEMENTS.get(key)
    if statement is None:
        if len(_STATEMENTS) >= 512:
            _STATEMENTS.clear()
        statement = _STATEMENTS.setdefault(key, build())
    return statement


def _shape(plan: _Plan) -> tuple:
    """What a plan's statements depend on, besides their values."""
    return (
        plan.dialect,
        tuple(plan.filters),
        len(plan.statuses),
        plan.amount_cents is not None,
        plan.narrow,
        min(len(plan.customer_ids), 2),
    )


def _page_select(plan: _Plan, limit: int, after: Cursor | None) -> Select:
    conditions = list(plan.conditions)
    if after is not None:
        conditions.append(_after())
    if plan.customer_ids:
        # The page's ids first, from the (customer_id, created_at) index alone (a filter aside), then
        # just those rows: the customers' other orders are never read.
        if plan.statuses:
            conditions.append(_statuses())
        if len(plan.customer_ids) > 1 and plan.dialect == "postgresql":
            # Each customer's newest orders by their own index, merged: given "customer_id IN (200 ids)"
            # PostgreSQL walks the whole created_at index instead (0.5 s at 10,000,000 orders; this: 15 ms).
            ids = bindparam("customer_ids", type_=postgresql.ARRAY(BigInteger))
            customers = func.unnest(ids).table_valued("id").render_derived(name="c")
            theirs = (
                select(Order.id, Order.created_at)
                .where(Order.customer_id == customers.c.id, *(c for c in conditions if c is not plan.customer_scope))
                .order_by(*_NEWEST_FIRST)
                .limit(limit)
                .lateral("theirs")
            )
            newest = (
                select(theirs.c.id)
                .select_from(customers)
                .join(theirs, true())
                .order_by(theirs.c.created_at.desc(), theirs.c.id.desc())
                .limit(limit)
            )
        else:
            newest = select(Order.id).where(*conditions).order_by(*_NEWEST_FIRST).limit(limit)
        return select(*_PAGE_COLUMNS).where(Order.id.in_(newest)).order_by(*_NEWEST_FIRST)
    if plan.amount_cents is not None:
        # The amount or the total: one newest-first walk of each one's (cents, created_at) index, merged.
        if plan.statuses:
            conditions.append(_statuses())
        parts = [
            select(*_PAGE_COLUMNS)
            .where(*conditions, column == bindparam("amount_cents"))
            .order_by(*_NEWEST_FIRST)
            .limit(limit)
            .subquery()
            for column in (Order.amount_cents, Order.total_cents)
        ]
        merged = union(*(select(part) for part in parts)).subquery()
        return select(merged).order_by(merged.c.created_at.desc(), merged.c.id.desc()).limit(limit)
    if len(plan.statuses) > 1 and not plan.narrow:
        # One newest-first walk of the (status, created_at) index per status, merged.
        parts = [
            select(*_PAGE_COLUMNS)
            .where(*conditions, Order.status == bindparam(f"status_{i}"))
            .order_by(*_NEWEST_FIRST)
            .limit(limit)
            .subquery()
            for i in range(len(plan.statuses))
        ]
        merged = union_all(*(select(part) for part in parts)).subquery()
        return select(merged).order_by(merged.c.created_at.desc(), merged.c.id.desc()).limit(limit)
    if len(plan.statuses) == 1:
        conditions.append(Order.status == bindparam("status_0"))
    elif plan.statuses:
        conditions.append(_statuses())
    return select(*_PAGE_COLUMNS).where(*conditions).order_by(*_NEWEST_FIRST).limit(limit)


def search_orders(
    session: Session,
    actor: Actor,
    query: OrderQuery,
    page_size: int = 50,
    after: Cursor | None = None,
    *,
    count_limit: int | None = None,
) -> SearchPage:
    """One page of matching orders, newest first; pass ``next_cursor`` back for the next page.

    With ``count_limit``, the page also carries ``count_matches``'s answer, from the same reading of
    the text (the customers are looked up once).
    """
    require(actor, Action.READ_ORDERS)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SearchError(f"A page holds 1 to {MAX_PAGE_SIZE} orders.")
    plan = _plan(session, query)
    if plan.nothing:
        count = MatchCount(0, False) if count_limit is not None else None
        return SearchPage([], None, plan.understood_as, plan.notes, count)
    found, count = _read_page(session, plan, page_size + 1, after, count_limit)
    more = len(found) > page_size
    found = found[:page_size]
    last = found[-1] if more else None
    return SearchPage(
        rows=_rows(found),
        next_cursor=Cursor(last.created_at, last.id) if last else None,
        understood_as=plan.understood_as,
        notes=plan.notes,
        count=count,
    )


def _read_page(
    session: Session, plan: _Plan, rows: int, after: Cursor | None, count_limit: int | None
) -> tuple[Sequence, MatchCount | None]:
    """Up to ``rows`` rows of the page (``_with_names``) and, with ``count_limit``, the capped count."""
    reaching = _first_page_customers(plan, rows) if after is None else None
    if reaching is not None:
        orders = sum(n for n, _ in plan.order_counts.values())
        count = None if count_limit is None else _match_count(plan, orders, _count_cap(plan, count_limit))
        ids, bound = reaching
        if not ids:
            return [], count
        params = {"customer_id": ids[0]} if len(ids) == 1 else {"customer_ids": ids_value(ids, plan.dialect)}
        if bound is not None:
            params["created_from"] = bound
        statement = _first_page(plan.dialect, len(ids) == 1, rows, bound is not None)
        return read(session, statement, params).all(), count
    cap = None if count_limit is None else _count_cap(plan, count_limit)

    def build() -> Select:
        counted = None if cap is None else _counted(plan, cap)
        page = _page_select(plan, rows, after)
        return _with_names(page, counted, by_ids=bool(plan.customer_ids), dialect=plan.dialect)

    params = _params(plan, after)
    found = read(session, _statement(("page", _shape(plan), rows, after is not None, cap), build), params).all()
    if cap is None:
        return found, None
    # Counted in the page's statement, once; a page after the last has no row to carry it.
    value = found[0].matches if found else 0 if after is None else _count_value(session, plan, cap)
    return found, _match_count(plan, value, cap)


@lru_cache(maxsize=32)
def _first_page(dialect: str, single: bool, rows: int, bounded: bool) -> Select:
    """The first ``rows`` orders of the customers named by the parameter ``customer_id`` (``single``) or
    ``customer_ids`` (``ids_value``), with their names: the page of every search by customer, built once.
    ``bounded``: none made before the parameter ``created_from`` (``_first_page_customers``' bound)."""
    template = _Plan(understood_as="", notes=(), dialect=dialect)
    if bounded:
        _add(template, "created_from")
    _scope_to_ids(template, {0: (0, None)} if single else {0: (0, None), 1: (0, None)})
    return _with_names(_page_select(template, rows, None), by_ids=True, dialect=dialect)


def _with_names(
    page: Select, counted: tuple[Select, int] | None = None, *, by_ids: bool = False, dialect: str = "sqlite"
) -> Select:
    """The page's rows with their customer's id, email and name and their invoice's number, in the same
    statement (two more round trips and their statements cost more than the lookups). Each is a lookup by
    key per row, whatever the planner would think of joining a small table whole: over the page, or
    (``by_ids``: a select of orders whose WHERE names at most a page of ids) in that select itself. With
    ``counted`` (``_counted``'s statement), every row also carries the capped count of the matches (column
    ``matches``): a subquery that names no row of the page, so both databases run it once."""
    extra = [] if counted is None else [counted.scalar_subquery().label("matches")]
    if by_ids:
        return _named(page, Order.customer_id, Order.id, extra, dialect)
    rows = page.subquery("page")
    found = _named(select(rows).select_from(rows), rows.c.customer_id, rows.c.id, extra, dialect)
    return found.order_by(rows.c.created_at.desc(), rows.c.id.desc())


def _named(statement: Select, customer_id, order_id, extra: list, dialect: str) -> Select:
    """``statement`` with each row's customer (public id, email, name), invoice number and ``extra``
    columns: the customer as one lateral row on PostgreSQL (``_who``), three lookups by key on SQLite."""
    number = _invoice_number(order_id)
    if dialect == "postgresql":
        who = _who(customer_id)
        return statement.add_columns(*who.c, number, *extra).join(who, true())
    return statement.add_columns(*_customer_names(customer_id), number, *extra)


def _who(customer_id):
    """PostgreSQL: the customer's three columns as one lateral row, one key lookup a row instead of three
    (0.5 -> 0.15 ms a page of 51 at 1,000,000 orders); LIMIT 1 keeps the planner from making it a join of
    all customers."""
    return (
        select(
            Customer.public_id.label("customer_public_id"),
            Customer.email.label("customer_email"),
            Customer.name.label("customer_name"),
        )
        .where(Customer.id == customer_id)
        .limit(1)
        .lateral("who")
    )


def _customer_names(customer_id) -> list:
    def customers(column):
        return select(column).where(Customer.id == customer_id).scalar_subquery()

    return [
        customers(Customer.public_id).label("customer_public_id"),
        customers(Customer.email).label("customer_email"),
        customers(Customer.name).label("customer_name"),
    ]


def _invoice_number(order_id):
    invoice = select(Invoice.number).where(Invoice.order_id == order_id, Invoice.kind == InvoiceKind.INVOICE)
    return invoice.scalar_subquery().label("invoice_number")


# The OrderRow fields not taken as a page stores them: each enum by its stored value (a dict lookup, where
# calling the enum class costs about a microsecond), the sandbox flag as a bool.
_CONVERTED = {
    "plan": {p.value: p for p in PlanId}.__getitem__,
    "method": {m.value: m for m in Method}.__getitem__,
    "status": {s.value: s for s in OrderStatus}.__getitem__,
    "sandbox": bool,
}
_ORDER_ROW_FIELDS = tuple(f.name for f in fields(OrderRow))
_CONVERSIONS = tuple((i, _CONVERTED[name]) for i, name in enumerate(_ORDER_ROW_FIELDS) if name in _CONVERTED)


def _rows(found: Sequence) -> list[OrderRow]:
    """Rows of ``_with_names`` as OrderRows. Each row's values are taken by position in one call: read
    by name, a row's 17 columns cost about a microsecond each, and a page of 51 took 1.1 ms of a search's
    10 (this: 0.3)."""
    if not found:
        return []
    take = itemgetter(*map(found[0]._fields.index, _ORDER_ROW_FIELDS))
    rows = []
    for row in found:
        values = list(take(row))
        for i, convert in _CONVERSIONS:
            values[i] = convert(values[i])
        rows.append(OrderRow(*values))
    return rows


def count_matches(session: Session, actor: Actor, query: OrderQuery, limit: int = 10_000) -> MatchCount:
    """How many orders match, counting no further than ``limit`` (then the label says "10,000+").

    A search by customer or by an amount counts no further than TEXT_COUNT_CAP, and when more customers
    match than their orders are listed for, the count is of the listed ones and says "+".
    """
    require(actor, Action.READ_ORDERS)
    plan = _plan(session, query)
    if plan.nothing:
        return MatchCount(0, False)
    return _count(session, plan, limit)


def _count(session: Session, plan: _Plan, limit: int) -> MatchCount:
    cap = _count_cap(plan, limit)
    return _match_count(plan, _count_value(session, plan, cap), cap)


def _count_value(session: Session, plan: _Plan, cap: int) -> int:
    """The plan's matches, counted to one past ``cap``."""
    statement = _statement(("count", _shape(plan), cap), lambda: _counted(plan, cap))
    return read(session, statement, _params(plan)).scalar() or 0


def _first_page_customers(plan: _Plan, rows: int) -> tuple[list[int], datetime | None] | None:
    """For the first page of the matched customers' orders, no other filter on: the customers whose
    newest order can be among the newest ``rows`` of them all (``plan.order_counts``), best match
    first, and the time no order on the page is older than (None: any). If ``rows`` customers have an
    order at or after t, every order on the page is at or after t, so a customer whose newest is older
    has none on it, and no older order of the others is either: each customer's index is read from
    their newest order down to t (one or two entries each), not ``rows`` entries each. None for any
    other search."""
    only_customers = len(plan.conditions) == 1 and plan.conditions[0] is plan.customer_scope
    if not plan.customer_ids or not only_customers or plan.statuses:
        return None
    newest = sorted((at for _, at in plan.order_counts.values() if at is not None), reverse=True)
    bound = newest[rows - 1] if len(newest) >= rows else None
    reaching = [c for c, (_, at) in plan.order_counts.items() if at is not None and (bound is None or at >= bound)]
    return reaching, bound


def _count_cap(plan: _Plan, limit: int) -> int:
    """A search by customer or by an amount counts no further than TEXT_COUNT_CAP."""
    return min(limit, TEXT_COUNT_CAP) if plan.customer_ids or plan.amount_cents is not None else limit


def _counted(plan: _Plan, cap: int) -> Select:
    """The statement counting the plan's matches no further than one past ``cap`` (``_count_cap``)."""
    conditions = list(plan.conditions)
    if plan.statuses:
        conditions.append(_statuses())
    if plan.amount_cents is not None:
        amount = bindparam("amount_cents")
        parts = (
            select(Order.id).where(*conditions, column == amount).limit(cap + 1).subquery()
            for column in (Order.amount_cents, Order.total_cents)
        )
        either = union(*(select(part) for part in parts)).subquery()
        return select(func.count()).select_from(either)
    capped = select(Order.id).where(*conditions).limit(cap + 1).subquery()
    return select(func.count()).select_from(capped)


def _match_count(plan: _Plan, value: int | None, limit: int) -> MatchCount:
    value = value or 0
    return MatchCount(min(value, limit), value > limit or plan.more_customers)


__all__ = [
    "CUSTOMER_FANOUT",
    "MAX_QUERY_CHARS",
    "TEXT_COUNT_CAP",
    "Cursor",
    "Interpretation",
    "MatchCount",
    "OrderQuery",
    "OrderRow",
    "QueryKind",
    "SearchError",
    "SearchPage",
    "count_matches",
    "interpret",
    "search_orders",
]


def the_one_order(session: Session, actor: Actor, text: str) -> str | None:
    """The public id of the one order ``text`` names (an order id or its start, a provider reference or
    its start); None when it names no order, several, or is not read as an order's id or reference."""
    require(actor, Action.READ_ORDERS)
    kind, term = resolve(session, interpret(text))
    dialect = session.get_bind().dialect.name
    if kind is QueryKind.ORDER_ID:
        named = Order.public_id == term
    elif kind is QueryKind.ORDER_ID_PREFIX:
        named = starts_with(Order.public_id, term, dialect)
    elif kind is QueryKind.PROVIDER_REF:
        named = Order.provider_ref == term
        if session.scalar(select(Order.id).where(named).limit(1)) is None and len(term) >= ID_PREFIX_CHARS:
            named = starts_with(Order.provider_ref, term, dialect)
    else:
        return None
    found = session.scalars(select(Order.public_id).where(named).limit(2)).all()
    return found[0] if len(found) == 1 else None


def filters_words(query: OrderQuery) -> str:
    """The filters of ``query`` in words ("status pending or expired · method stripe"); "" when none."""

    def values(items: Sequence) -> str:
        return " or ".join(str(getattr(i, "value", i)) for i in items)

    def day(value: datetime | date) -> str:
        return f"{value:%Y-%m-%d}"

    parts = []
    if query.statuses:
        parts.append(f"status {values(query.statuses)}")
    if query.methods:
        parts.append(f"method {values(query.methods)}")
    if query.plans:
        parts.append(f"plan {values(query.plans)}")
    if query.created_from or query.created_before:
        start = f"from {day(query.created_from)}" if query.created_from else ""
        end = f"before {day(query.created_before)}" if query.created_before else ""
        parts.append(" ".join(filter(None, ("created", start, end))))
    if query.amount_min_cents is not None:
        parts.append(f"amount from {money.format_cents(query.amount_min_cents)}")
    if query.amount_max_cents is not None:
        parts.append(f"amount up to {money.format_cents(query.amount_max_cents)}")
    return " · ".join(parts)


def searched_as(query: OrderQuery, understood_as: str) -> str:
    """How the box was read and what the filters narrow it to: never "all orders" while a filter is on."""
    filters = filters_words(query)
    if not filters:
        return understood_as
    if not query.text.strip():
        return f"orders with {filters}"
    return f"{understood_as}, only {filters}"
