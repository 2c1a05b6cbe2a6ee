"""Demo rows generated as numpy columns from a seed, a size and an end date: customers, orders, payments,
ledger, refunds, invoices and credit notes, built with the domain's own pricing and invoice rules."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.models import (
    InvoiceKind,
    LedgerKind,
    OrderStatus,
    RefundStatus,
    SimulatedStatus,
)
from billing_core.credits import ledger as credit_ledger
from billing_core.demo.fixtures import (
    CASE_GATEWAY,
    CASE_HAS_REF,
    CASE_SHARE,
    CASE_STATUS,
    CHECKERS,
    COMPANY_SHARE,
    COUNTRIES,
    CUSTOM_DOLLARS,
    FAILURES,
    FULL_REFUND_REASONS,
    HOUR_WEIGHT,
    METHODS,
    OPEN_CASES,
    PARTIAL_REFUND_REASONS,
    PEOPLE,
    PERSONAL_DOMAINS,
    PLAN_SHARE,
    REFUNDED_CASES,
    REFUNDERS,
    STEMS,
    WEEKDAY_WEIGHT,
    Case,
    digits,
)
from billing_core.invoices.issuing import TEMPLATE_VERSION, credit_note_lines, credit_note_split, topup_lines
from billing_core.invoices.numbering import format_number, series_name
from billing_core.orders import customer_index
from billing_core.payments import PaymentState
from billing_core.payments.simulated import SimulatedGateway
from billing_core.pricing.catalog import PlanId, Pricing, plan_name, quote

SPAN_DAYS = 730

ORDERS_PER_CUSTOMER = 8
# Who completed a seeded paid order: the gateway's webhook, as in production.
GATEWAY_ACTOR = "system:gateway-webhook"
COMPLETION_REASON = "payment succeeded at the gateway"

_US = 1_000_000
_DAY_US = 86_400 * _US
_TTL_US = _DAY_US  # orders.ORDER_TTL

# --- generation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Same:
    """A column with one value for every row: inlined into the INSERT on SQLite, not bound per row."""

    value: object


@dataclass(frozen=True)
class Derived:
    """A column SQLite computes from the row's other columns (``sql``, naming them in braces),
    so it is neither built nor bound per row there; ``values`` are what COPY sends to PostgreSQL."""

    sql: str
    values: object


def _json(value: object) -> str:
    """JSON text as stored in JSON columns (compact; the ORM reads it back to the same dicts)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Table:
    """Columns ready for a bulk load: ints and timestamps (µs since epoch) as numpy, the rest lists."""

    name: str
    columns: dict[str, object]
    timestamps: frozenset[str] = frozenset()  # µs since the epoch; negative means NULL
    booleans: frozenset[str] = frozenset()
    nullable: frozenset[str] = frozenset()  # integer columns where negative means NULL
    # SQLite: an INSERT ... SELECT that derives exactly these rows from tables written before it,
    # run instead of binding every row (the same rows, computed in C without the GIL).
    sqlite_select: str | None = None
    sqlite_params: tuple = ()  # bound to sqlite_select
    portable_select: bool = False  # sqlite_select is plain SQL: PostgreSQL runs it too, instead of a COPY

    def __len__(self) -> int:
        return next(len(v) for v in self.columns.values() if not isinstance(v, Same | Derived))  # type: ignore[arg-type]


@dataclass
class DemoData:
    customers: Table
    orders: Table
    payments: Table
    ledger: Table
    invoices: Table  # invoices and credit notes
    refunds: Table
    series: dict[str, int]  # series -> next number, invoices' and credit notes'
    paid: int
    credit_notes: int
    summary: dict
    facts: dict | None = None  # per-order arrays the revenue rollup is computed from (see rollup_tables)

    @property
    def tables(self) -> list[Table]:
        """In the order foreign keys need them: credit notes before refunds before refund entries."""
        return [self.customers, self.orders, self.payments, self.invoices, self.refunds, self.ledger]


def _hex_ids(rng: np.random.Generator, prefix: str, n: int) -> list[str]:
    """``prefix_`` + 16 hex digits each, like orders.new_public_id, unique, from the seeded RNG."""
    values = rng.integers(0, np.iinfo(np.int64).max, n, dtype=np.int64)
    while len(np.unique(values)) < n:
        _, first = np.unique(values, return_index=True)
        duplicates = np.setdiff1d(np.arange(n), first)
        values[duplicates] = rng.integers(0, np.iinfo(np.int64).max, len(duplicates), dtype=np.int64)
    nibbles = (values.view(np.uint64)[:, None] >> np.arange(60, -4, -4, dtype=np.uint64)) & np.uint64(15)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nibbles.astype(np.intp)]
    return np.char.add(f"{prefix}_", np.ascontiguousarray(digits).view("S16").ravel().astype("U16")).tolist()


def _random_text(rng: np.random.Generator, alphabet: str, n: int, width: int) -> np.ndarray:
    """``n`` strings of ``width`` characters drawn from an ASCII ``alphabet``."""
    chars = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
    picks = np.ascontiguousarray(chars[rng.integers(0, len(alphabet), (n, width))])
    return picks.view(f"S{width}").ravel().astype(f"U{width}")


def end_bound(end: date) -> datetime:
    """The first moment after data ending on ``end``: the next midnight, UTC."""
    return datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)


def _order_times(rng: np.random.Generator, n: int, start_us: int) -> np.ndarray:
    """Creation times (µs, sorted): tripling over the two years, weekdays busier, daytime busier."""
    day = np.arange(SPAN_DAYS)
    weekday = (day + datetime.fromtimestamp(start_us // _US, UTC).weekday()) % 7
    weight = np.exp(np.log(3.0) * day / (SPAN_DAYS - 1)) * WEEKDAY_WEIGHT[weekday]
    per_day = rng.multinomial(n, weight / weight.sum())
    days = np.repeat(day, per_day).astype(np.int64)
    hours = rng.choice(24, size=n, p=HOUR_WEIGHT / HOUR_WEIGHT.sum()).astype(np.int64)
    within = rng.integers(0, 3600 * _US, n)
    return np.sort(start_us + days * _DAY_US + hours * 3600 * _US + within)


def _timestamps(us: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DD HH:MM:SS.ffffff' (UTC), the text SQLAlchemy's DateTime stores on SQLite."""
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    if len(text):
        text.view("U1").reshape(len(text), -1)[:, 10] = " "
    return text


def _customers(
    rng: np.random.Generator, n: int, first_order_us: np.ndarray, id_offset: int, start_us: int
) -> tuple[Table, dict]:
    scripts = list(PEOPLE)
    shares = np.array([PEOPLE[s][0] for s in scripts])
    script_of = rng.choice(len(scripts), size=n, p=shares / shares.sum())
    picks = rng.integers(0, 1 << 62, size=(n, 8), dtype=np.int64).tolist()
    has_company = (rng.random(n) < COMPANY_SHARE).tolist()
    public_ids = _hex_ids(rng, "cus", n)
    created = np.maximum(first_order_us - rng.integers(60 * _US, 3 * _DAY_US, n), start_us)

    country_pick = {}
    for script, (_, _, _, _, share) in PEOPLE.items():
        bounds = np.cumsum([round(v * 1000) for v in share.values()]).tolist()
        country_pick[script] = (list(share), bounds)
    emails, names, companies, countries, tax_ids, addresses, preferred = [], [], [], [], [], [], []
    buyers = []
    for i, (script_index, pick, company) in enumerate(zip(script_of.tolist(), picks, has_company, strict=True)):
        script = scripts[script_index]
        _, pattern, firsts, lasts, _ = PEOPLE[script]
        first, first_latin, gender = firsts[pick[0] % len(firsts)]
        last_m, last_f, last_latin = lasts[pick[1] % len(lasts)]
        name = pattern.format(f=first, l=last_f if gender == "f" else last_m)
        codes, bounds = country_pick[script]
        country = codes[min(bisect_right(bounds, pick[2] % 1000), len(codes) - 1)]
        cname, address_format, streets, cities, postcode, company_format, tax_format = COUNTRIES[country]
        zip_digits = iter(digits(pick[3], 12))
        address = address_format.format(
            n=1 + pick[4] % 180,
            street=streets[pick[5] % len(streets)],
            city=cities[pick[5] // 7 % len(cities)],
            zip="".join(next(zip_digits) if c == "#" else c for c in postcode),
        )
        if not address.endswith(cname) and country not in {"CN", "JP", "KR", "TW", "HK"}:
            address += f", {cname}"
        number = id_offset + i + 1
        company_name = tax_id = None
        domain = PERSONAL_DOMAINS[pick[6] % len(PERSONAL_DOMAINS)]
        if company:
            stem, slug = STEMS[script][pick[6] % len(STEMS[script])]
            company_name = company_format.format(s=stem)
            tax_id = tax_format(pick[7]) if tax_format else None
            domain = f"{slug}-{country.lower()}.test"
        email = f"{first_latin}.{last_latin}{number}@{domain}"
        if script == "chinese":
            preferred.append(2 if pick[7] % 10 < 7 else 0)
        else:
            preferred.append(0 if pick[7] % 20 < 13 else (1 if pick[7] % 20 < 18 else 2))
        emails.append(email)
        names.append(name)
        companies.append(company_name)
        countries.append(country)
        tax_ids.append(tax_id)
        addresses.append(address)
        buyers.append(
            _json(
                {
                    "customer": public_ids[i],
                    "name": name,
                    "email": email,
                    "company": company_name,
                    "country": country,
                    "tax_id": tax_id,
                    "address": address,
                }
            )
        )
    ids = np.arange(id_offset + 1, id_offset + n + 1, dtype=np.int64)
    table = Table(
        "customers",
        {
            "id": ids,
            "public_id": public_ids,
            "email": emails,
            "name": names,
            "company": companies,
            "country": countries,
            "tax_id": tax_ids,
            "address": addresses,
            "sandbox": Same(False),
            "created_at": created,
            "search_text": [
                customer_index.search_text(*fields) for fields in zip(names, companies, emails, tax_ids, strict=True)
            ],
            "email_domain": [customer_index.email_domain(email) for email in emails],
        },
        timestamps=frozenset({"created_at"}),
        booleans=frozenset({"sandbox"}),
    )
    extra = {
        "buyer_json": buyers,
        "preferred_method": np.array(preferred),
        "script": script_of,
        "grams": _grams(ids, names, companies),
    }
    return table, extra


def _grams(ids: np.ndarray, names: list[str], companies: list[str | None]) -> Table:
    """customer_grams rows, in primary-key order (what the text index cannot find: short Han, kana, Hangul)."""
    pairs = sorted(
        (gram, customer_id)
        for customer_id, name, company in zip(ids.tolist(), names, companies, strict=True)
        for gram in customer_index.short_grams(name, company)
    )
    return Table(
        "customer_grams",
        {"gram": [g for g, _ in pairs], "customer_id": np.array([c for _, c in pairs], dtype=np.int64)},
    )


def generate(
    orders: int,
    seed: int,
    pricing: Pricing,
    settings: Settings,
    offsets: dict[str, int] | None = None,
    *,
    end: date,
) -> DemoData:
    """Every row of the demo, ending on ``end``, as columns. ``offsets`` are ids already taken per table."""
    for item in generate_stream(orders, seed, pricing, settings, offsets, end=end):
        if isinstance(item, DemoData):
            return item
    raise AssertionError("generate_stream ends with the DemoData")


def generate_stream(
    orders: int,
    seed: int,
    pricing: Pricing,
    settings: Settings,
    offsets: dict[str, int] | None = None,
    *,
    end: date,
) -> Iterator[Table | DemoData]:
    """``generate``, yielding each table as soon as it is complete (in foreign-key order), then the DemoData.

    The seed writes a table while the next is generated; the random draws are the same either way.
    """
    if orders < 1:
        raise ValueError("seed at least one order")
    offsets = offsets or {}
    rng = np.random.default_rng(seed)
    n = orders
    end_us = int(end_bound(end).timestamp()) * _US
    start_us = end_us - SPAN_DAYS * _DAY_US
    created = _order_times(rng, n, start_us)
    order_ids = np.arange(offsets.get("orders", 0) + 1, offsets.get("orders", 0) + n + 1, dtype=np.int64)

    # Customers: each one's first order is a random order, so sign-ups follow volume; later orders
    # go to earlier customers, loyal old ones more often.
    n_customers = max(1, n // ORDERS_PER_CUSTOMER)
    firsts = np.sort(np.concatenate([[0], rng.choice(np.arange(1, n), size=n_customers - 1, replace=False)]))
    known = np.searchsorted(firsts, np.arange(n), side="right")
    customer_of = np.floor(known * rng.random(n) ** 1.3).astype(np.int64)
    customer_of[firsts] = np.arange(n_customers)
    customers, people = _customers(rng, n_customers, created[firsts], offsets.get("customers", 0), start_us)
    yield customers
    yield people["grams"]
    customer_ids = customers.columns["id"][customer_of]  # type: ignore[index]

    # Method: the customer's usual one, sometimes another.
    method_index = people["preferred_method"][customer_of]
    switch = rng.random(n) < 0.15
    method_index[switch] = rng.integers(0, 3, int(switch.sum()))

    # Amount: a plan preset or a typed custom amount.
    plan_ids = list(PLAN_SHARE)
    plan_pick = rng.choice(len(plan_ids), size=n, p=np.array(list(PLAN_SHARE.values())))
    preset_cents = np.array([pricing.plan(p).amount_cents if p != "custom" else 0 for p in plan_ids], dtype=np.int64)
    custom_weight = np.exp(-((np.log(CUSTOM_DOLLARS) - np.log(40)) ** 2) / (2 * 1.1**2)) / CUSTOM_DOLLARS
    custom_weight *= np.r_[np.ones(95), np.full(180, 5.0), np.full(481, 50.0)]  # step widths
    custom_cents = CUSTOM_DOLLARS[rng.choice(len(CUSTOM_DOLLARS), size=n, p=custom_weight / custom_weight.sum())]
    amount = np.where(plan_pick == plan_ids.index("custom"), custom_cents * 100, preset_cents[plan_pick])
    amount = np.clip(amount, pricing.custom_min_cents, pricing.custom_max_cents).astype(np.int64)

    # Prices: quote() once per distinct (amount, method), mapped onto every order.
    keys, inverse = np.unique(amount * 3 + method_index, return_inverse=True)
    fee_by_key, credits_by_key, plan_by_key, lines_by_key = [], [], [], []
    plans = list(PlanId)
    for key in keys.tolist():
        method = METHODS[key % 3]
        q = quote(key // 3, method, pricing)
        fee_by_key.append(q.fee_cents)
        credits_by_key.append(q.credits)
        plan_by_key.append(plans.index(q.plan))
        lines = topup_lines(q.credits, q.amount_cents, q.fee_cents, method, plan_name(q.plan))
        lines_by_key.append(_json(lines))  # as SQLAlchemy's JSON type serialises it
    fee = np.array(fee_by_key, dtype=np.int64)[inverse]
    credits = np.array(credits_by_key, dtype=np.int64)[inverse]
    plan_index = np.array(plan_by_key)[inverse]
    total = amount + fee

    # Outcomes. An order still inside its 24 hours cannot have expired yet: it is pending.
    case = rng.choice(len(Case), size=n, p=CASE_SHARE / CASE_SHARE.sum())
    expires = created + _TTL_US
    young = expires >= end_us
    case[young & (case == Case.EXPIRED_UNPAID)] = Case.PENDING_UNPAID
    case[young & (case == Case.EXPIRED_PAID)] = Case.PENDING_PAID
    has_ref = rng.random(n) < CASE_HAS_REF[case]

    last = end_us - 1
    pay_delay = np.minimum(rng.lognormal(np.log(90), 1.0, n).astype(np.int64) * _US, _DAY_US - _US)
    paid_at = np.minimum(created + 5 * _US + pay_delay, last)
    # A refund comes at least a minute after the payment, within 30 days; an order paid in the
    # data's last hour has not been refunded yet.
    case[np.isin(case, REFUNDED_CASES) & (paid_at > last - 3600 * _US)] = Case.PAID
    refund_window = np.maximum(np.minimum(30 * _DAY_US, last - paid_at) - 60 * _US, 0)
    refund_at = paid_at + 60 * _US + (rng.random(n) * refund_window).astype(np.int64)
    is_paid = (case == Case.PAID) | np.isin(case, REFUNDED_CASES)
    gateway_paid = is_paid | (case == Case.PENDING_PAID) | (case == Case.EXPIRED_PAID)
    payment_created = np.minimum(created + rng.integers(2 * _US, 60 * _US, n), last)
    gateway_updated = np.where(gateway_paid, paid_at, np.minimum(payment_created + pay_delay, last))
    gateway_updated = np.where(np.isin(case, REFUNDED_CASES), refund_at, gateway_updated)
    gateway_updated = np.where(case == Case.PENDING_UNPAID, payment_created, gateway_updated)
    gateway_updated = np.where(case == Case.EXPIRED_UNPAID, payment_created, gateway_updated)

    refs = _provider_refs(rng, method_index, created)
    provider_ref = np.where(has_ref, refs, None)
    status_text = np.array([s.value for s in CASE_STATUS], dtype=object)[case]
    failure = np.where(case == Case.FAILED, np.array(FAILURES, dtype=object)[rng.integers(0, len(FAILURES), n)], None)
    order_public_ids = _hex_ids(rng, "ord", n)

    # Refunds, as refunds.refund_order records them: one per refunded order, in time order. A full
    # refund returns the whole total and takes back every credit; a partial one returns whole
    # dollars (10-90 % of the total) and takes back credits in proportion, half-up to the hundredth.
    ref_rows = np.flatnonzero(np.isin(case, REFUNDED_CASES))
    ref_rows = ref_rows[np.lexsort((order_ids[ref_rows], refund_at[ref_rows]))]
    k = len(ref_rows)
    partial = case[ref_rows] == Case.PARTIALLY_REFUNDED
    share = rng.integers(10, 91, k)
    refund_amount = np.where(
        partial, np.clip(total[ref_rows] * share // 10_000 * 100, 100, total[ref_rows] - 1), total[ref_rows]
    )
    refund_credits = credits[ref_rows].copy()
    for j in np.flatnonzero(partial).tolist():
        paid_cents, cents, granted = int(total[ref_rows[j]]), int(refund_amount[j]), int(refund_credits[j])
        refund_credits[j] = min(granted, money.from_decimal(money.to_decimal(granted) * cents / paid_cents))
    refund_ids = np.arange(offsets.get("refunds", 0) + 1, offsets.get("refunds", 0) + k + 1, dtype=np.int64)
    refund_by = np.array(REFUNDERS, dtype=object)[rng.integers(0, len(REFUNDERS), k)]
    full_reason = np.array(FULL_REFUND_REASONS, dtype=object)[rng.integers(0, len(FULL_REFUND_REASONS), k)]
    partial_reason = np.array(PARTIAL_REFUND_REASONS, dtype=object)[rng.integers(0, len(PARTIAL_REFUND_REASONS), k)]
    refund_reason = np.where(partial, partial_reason, full_reason)
    refunded_cents = np.zeros(n, dtype=np.int64)
    refunded_cents[ref_rows] = refund_amount

    # Support's earlier look-ups: every open order that reached the gateway was checked once, after the
    # gateway's last change (the Orders page's "check these with the gateway"), so the stuck view shows
    # the lost webhooks from the start. Its own random stream: the rest of the demo draws the same.
    checks_rng = np.random.default_rng([seed, 1])
    checked = np.flatnonzero(has_ref & np.isin(case, OPEN_CASES))
    seen = gateway_updated[checked] + 60 * _US
    check_at = np.full(n, -1, dtype=np.int64)
    later = (checks_rng.random(len(checked)) * np.maximum(last - seen, 0)).astype(np.int64)
    check_at[checked] = np.minimum(seen + later, last)
    paid_there = np.isin(case, (Case.PENDING_PAID, Case.EXPIRED_PAID))
    check_state = np.where(paid_there, PaymentState.SUCCEEDED.value, PaymentState.PENDING.value).astype(object)
    check_state[check_at < 0] = None

    orders_table = Table(
        "orders",
        {
            "id": order_ids,
            "public_id": order_public_ids,
            "customer_id": customer_ids,
            "plan": np.array([p.value for p in plans], dtype=object)[plan_index].tolist(),
            "amount_cents": amount,
            "credits": credits,
            "fee_cents": fee,
            "total_cents": total,
            "currency": Same("USD"),
            "method": np.array([m.value for m in METHODS], dtype=object)[method_index].tolist(),
            "provider_ref": provider_ref.tolist(),
            "pricing_version": Same(pricing.version),
            "status": status_text.tolist(),
            "sandbox": Same(False),
            "created_at": created,
            "expires_at": expires,
            "paid_at": np.where(is_paid, paid_at, -1),
            # Every seeded payment was completed by the gateway's webhook at the moment it was paid.
            "completed_at": Derived("{paid_at}", np.where(is_paid, paid_at, -1)),
            "completed_by": Derived(
                f"CASE WHEN {{paid_at}} IS NULL THEN NULL ELSE '{GATEWAY_ACTOR}' END",
                np.where(is_paid, GATEWAY_ACTOR, None).tolist(),
            ),
            "completion_reason": Derived(
                f"CASE WHEN {{paid_at}} IS NULL THEN NULL ELSE '{COMPLETION_REASON}' END",
                np.where(is_paid, COMPLETION_REASON, None).tolist(),
            ),
            "paid_amount_cents": Derived(
                "CASE WHEN {paid_at} IS NULL THEN NULL ELSE {total_cents} END", np.where(is_paid, total, -1)
            ),
            "failure_reason": failure.tolist(),
            "gateway_state": check_state.tolist(),
            "gateway_checked_at": check_at,
        },
        timestamps=frozenset({"created_at", "expires_at", "paid_at", "completed_at", "gateway_checked_at"}),
        booleans=frozenset({"sandbox"}),
        nullable=frozenset({"paid_amount_cents"}),
    )

    yield orders_table

    checked = checked[np.lexsort((order_ids[checked], check_at[checked]))]
    yield Table(
        "gateway_checks",
        {
            "id": np.arange(offsets.get("gateway_checks", 0) + 1, offsets.get("gateway_checks", 0) + len(checked) + 1),
            "order_id": order_ids[checked],
            "checked_at": check_at[checked],
            "checked_by": [CHECKERS[i] for i in checks_rng.integers(0, len(CHECKERS), len(checked)).tolist()],
            "provider": Same(SimulatedGateway.name),
            "ref": provider_ref[checked].tolist(),
            "state": check_state[checked].tolist(),
            "amount_cents": total[checked],
            "currency": Same("USD"),
            "refunded_cents": Same(0),
            "detail": Same(None),
        },
        timestamps=frozenset({"checked_at"}),
    )

    gateway_status = np.array([s.value for s in CASE_GATEWAY], dtype=object)[case]
    # The gateway's rows go in sorted by ref, its primary key: appending to that index instead of
    # inserting at random places saves seconds on a million rows (nothing reads their rowid order).
    with_ref = np.flatnonzero(has_ref)
    with_ref = with_ref[np.argsort(refs[with_ref].astype(str), kind="stable")]
    payments = Table(
        "simulated_payments",
        {
            "ref": provider_ref[with_ref].tolist(),
            "order_public_id": [order_public_ids[i] for i in with_ref.tolist()],
            "amount_cents": total[with_ref],
            "currency": Same("USD"),
            "status": gateway_status[with_ref].tolist(),
            "refunded_cents": refunded_cents[with_ref],
            "created_at": payment_created[with_ref],
            "updated_at": gateway_updated[with_ref],
        },
        timestamps=frozenset({"created_at", "updated_at"}),
        sqlite_select=_PAYMENTS_SELECT,
        sqlite_params=(
            _payment_records(
                payment_created[with_ref],
                gateway_updated[with_ref],
                gateway_paid[with_ref],
                refunded_cents[with_ref],
                order_ids[with_ref],
            ),
        ),
    )

    yield payments

    # Invoices (one per paid order, by payment time) and credit notes (one per refund, by refund
    # time), each numbered gaplessly in its own per-year series; ids follow issue time.
    inv_rows = np.flatnonzero(is_paid)
    inv_rows = inv_rows[np.lexsort((order_ids[inv_rows], paid_at[inv_rows]))]
    invoices, series = _invoices(
        inv_rows,
        ref_rows,
        offsets.get("invoices", 0),
        settings,
        order_ids=order_ids,
        paid_at=paid_at,
        refund_at=refund_at,
        amount=amount,
        fee=fee,
        total=total,
        refund_amount=refund_amount,
        refund_reason=refund_reason,
        buyers=people["buyer_json"],
        customer_of=customer_of,
        lines=lines_by_key,
        line_key=inverse,
    )
    credit_note_ids = invoices.columns.pop("_credit_note_ids")

    refunds_table = Table(
        "refunds",
        {
            "id": refund_ids,
            "order_id": order_ids[ref_rows],
            "amount_cents": refund_amount,
            "credits": refund_credits,
            "provider_ref": provider_ref[ref_rows].tolist(),
            "credit_note_id": credit_note_ids,
            "created_at": refund_at[ref_rows],
            "created_by": refund_by.tolist(),
            "reason": refund_reason.tolist(),
            "override": Same(False),
            # Seeded refunds are finished ones: the gateway answered at once.
            "status": Same(RefundStatus.SUCCEEDED.value),
            "idempotency_key": [f"billing-ops-refund-demo-{i}" for i in refund_ids.tolist()],
            "refunded_at": refund_at[ref_rows],
            "finished_at": refund_at[ref_rows],
            "finished_by": refund_by.tolist(),
        },
        timestamps=frozenset({"created_at", "refunded_at", "finished_at"}),
        booleans=frozenset({"override"}),
    )

    yield invoices
    yield refunds_table

    # Ledger: a top-up per paid order, a negative refund entry per refund, in time order.
    paid_rows = np.flatnonzero(is_paid)
    entry_order = np.concatenate([paid_rows, ref_rows])
    entry_time = np.concatenate([paid_at[paid_rows], refund_at[ref_rows]])
    entry_kind = np.concatenate([np.zeros(len(paid_rows), np.int64), np.ones(k, np.int64)])
    entry_credits = np.concatenate([credits[paid_rows], -refund_credits])
    entry_refund = np.concatenate([np.full(len(paid_rows), -1, np.int64), refund_ids])
    entry_by = np.concatenate([np.full(len(paid_rows), GATEWAY_ACTOR, dtype=object), refund_by])
    by_time = np.lexsort((entry_kind, entry_order, entry_time))
    entry_order, entry_time, entry_kind = entry_order[by_time], entry_time[by_time], entry_kind[by_time]
    n_entries = len(entry_order)
    ledger = Table(
        "ledger_entries",
        {
            "id": np.arange(offsets.get("ledger_entries", 0) + 1, offsets.get("ledger_entries", 0) + n_entries + 1),
            "customer_id": customer_ids[entry_order],
            "order_id": order_ids[entry_order],
            "kind": np.array([LedgerKind.TOPUP.value, LedgerKind.REFUND.value], dtype=object)[entry_kind].tolist(),
            "credits": entry_credits[by_time],
            "refund_id": entry_refund[by_time],
            "created_at": entry_time,
            "created_by": entry_by[by_time].tolist() if k else Same(GATEWAY_ACTOR),
        },
        timestamps=frozenset({"created_at"}),
        nullable=frozenset({"refund_id"}),
        sqlite_select=_ledger_select(offsets),
        portable_select=True,
    )

    yield ledger

    status_counts = {s.value: int((status_text == s.value).sum()) for s in OrderStatus}
    summary = {
        "seed": seed,
        "orders": n,
        "customers": n_customers,
        "data_end": end_bound(end).isoformat(),
        "pricing_version": pricing.version,
        "statuses": {status: count for status, count in status_counts.items() if count},
        "gateway_paid_but_pending": int((case == Case.PENDING_PAID).sum()),
        "gateway_paid_but_expired": int((case == Case.EXPIRED_PAID).sum()),
        "invoices": len(inv_rows),
        "credit_notes": k,
        "refunds": k,
        "refunded_cents": int(refund_amount.sum()),
        "ledger_entries": n_entries,
        "invoice_series": series,
    }
    yield DemoData(
        customers=customers,
        orders=orders_table,
        payments=payments,
        ledger=ledger,
        invoices=invoices,
        refunds=refunds_table,
        series=series,
        paid=status_counts[OrderStatus.PAID.value],
        credit_notes=k,
        summary=summary,
        facts={
            "customer_of": customer_of,
            "customer_id_offset": offsets.get("customers", 0),
            "order_id_offset": offsets.get("orders", 0),
            "countries": customers.columns["country"],
            "plan": plan_index,
            "method": method_index,
            "created": created,
            "paid_at": np.where(is_paid, paid_at, -1),
            "amount": amount,
            "fee": fee,
            "total": total,
            "credits": credits,
            "refund_rows": ref_rows,
            "refund_at": refund_at[ref_rows],
            "refund_amount": refund_amount,
        },
    )


def _ledger_select(offsets: dict[str, int]) -> str:
    """The ledger as generate() lays it out (ids in time order, then by order, top-up before refund),
    from the orders and refunds just written."""
    entry_id = offsets.get("ledger_entries", 0)
    order_id, refund_id = offsets.get("orders", 0), offsets.get("refunds", 0)
    return f"""
        INSERT INTO ledger_entries (id, customer_id, order_id, kind, credits, value_cents, refund_id, created_at,
                                    created_by)
        SELECT {int(entry_id)} + row_number() OVER (ORDER BY t, order_id, k), customer_id, order_id,
               CASE k WHEN 0 THEN '{LedgerKind.TOPUP.value}' ELSE '{LedgerKind.REFUND.value}' END,
               credits, value_cents, refund_id, t, created_by
        FROM (
            SELECT paid_at AS t, id AS order_id, 0 AS k, customer_id, credits,
                   {credit_ledger.worth_sql("amount_cents", "credits", "credits")} AS value_cents, NULL AS refund_id,
                   '{GATEWAY_ACTOR}' AS created_by
            FROM orders WHERE paid_at IS NOT NULL AND id > {int(order_id)}
            UNION ALL
            SELECT r.created_at, r.order_id, 1, o.customer_id, -r.credits,
                   -{credit_ledger.worth_sql("o.amount_cents", "o.credits", "r.credits")}, r.id, r.created_by
            FROM refunds r JOIN orders o ON o.id = r.order_id WHERE r.id > {int(refund_id)}
        ) AS entries
        ORDER BY t, order_id, k
    """  # noqa: S608 - integers and fixed names only


# The gateway's rows from the orders just written: ref, public id, amount and currency are the
# order's; what the orders do not record (when the gateway saw the payment and last changed it,
# whether it took the money, what it refunded) comes as one JSON array, in the rows' order, of
# fixed-width text: created_at (26), updated_at (26), gateway paid (1), refunded_cents (12), order id.
# CROSS JOIN keeps json_each the outer loop, so rows go in in the array's (ref) order without a sort.
_PAYMENTS_SELECT = f"""
    INSERT INTO simulated_payments
        (ref, order_public_id, amount_cents, currency, status, refunded_cents, created_at, updated_at)
    SELECT o.provider_ref, o.public_id, o.total_cents, o.currency,
           CASE WHEN substr(j.value, 53, 1) = '1' THEN '{SimulatedStatus.SUCCEEDED.value}'
                WHEN o.status = '{OrderStatus.FAILED.value}' THEN '{SimulatedStatus.DECLINED.value}'
                WHEN o.status = '{OrderStatus.CANCELLED.value}' THEN '{SimulatedStatus.CANCELED.value}'
                ELSE '{SimulatedStatus.REQUIRES_PAYMENT.value}' END,
           CAST(substr(j.value, 54, 12) AS INTEGER), substr(j.value, 1, 26), substr(j.value, 27, 26)
    FROM json_each(?) AS j CROSS JOIN orders AS o ON o.id = CAST(substr(j.value, 66) AS INTEGER)
"""  # noqa: S608 - fixed names only


def _payment_records(
    created: np.ndarray, updated: np.ndarray, paid: np.ndarray, refunded: np.ndarray, order_ids: np.ndarray
) -> str:
    """The JSON array _PAYMENTS_SELECT reads (digits, spaces, dashes, colons and dots: nothing to escape)."""
    if len(refunded) and (int(refunded.max()) >= 10**12 or int(refunded.min()) < 0):
        raise ValueError("refunded_cents out of range")
    records = zip(
        _timestamps(created).tolist(),
        _timestamps(updated).tolist(),
        paid.astype(np.int8).tolist(),
        refunded.tolist(),
        order_ids.tolist(),
        strict=True,
    )
    return "[" + ",".join([f'"{c}{u}{p}{r:012d}{i}"' for c, u, p, r, i in records]) + "]"


def _provider_refs(rng: np.random.Generator, method_index: np.ndarray, created: np.ndarray) -> np.ndarray:
    """References as each provider prints them: Stripe pi_…, Airwallex int_…, Alipay 28-digit trade_no."""
    refs = np.empty(len(method_index), dtype=object)
    stripe = np.flatnonzero(method_index == 0)
    refs[stripe] = np.char.add("pi_3", _random_text(rng, _ALNUM, len(stripe), 23))
    airwallex = np.flatnonzero(method_index == 1)
    refs[airwallex] = np.char.add("int_hk", _random_text(rng, _ALNUM[:36].lower(), len(airwallex), 21))
    alipay = np.flatnonzero(method_index == 2)
    day = np.datetime_as_string(created[alipay].astype("datetime64[us]").astype("datetime64[D]"), unit="D")
    day = np.char.replace(day, "-", "")
    refs[alipay] = np.char.add(np.char.add(day, "22001"), _random_text(rng, _ALNUM[:10], len(alipay), 15))
    return refs


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _numbered(issued: np.ndarray, template: str) -> tuple[list[str], np.ndarray, list[str], dict[str, int]]:
    """Series, sequence 1..n per year and printed number of documents sorted by issue time."""
    year = issued.astype("datetime64[us]").astype("datetime64[Y]").astype(np.int64) + 1970
    sequence = np.arange(len(year)) - np.searchsorted(year, year, side="left") + 1
    names = {int(y): series_name(template, datetime(int(y), 1, 1, tzinfo=UTC)) for y in np.unique(year)}
    series = [names[y] for y in year.tolist()]
    numbers = [format_number(s, q) for s, q in zip(series, sequence.tolist(), strict=True)]
    next_numbers = {names[int(y)]: int(c) + 1 for y, c in zip(*np.unique(year, return_counts=True), strict=True)}
    return series, sequence, numbers, next_numbers


def _invoices(inv_rows, ref_rows, id_offset, settings, **c) -> tuple[Table, dict[str, int]]:
    """Invoices and credit notes in one table, ids in issue order (an invoice before a note issued at once).

    A credit note is what invoices.issuing._issue_credit_note writes: the refunded amount split
    between top-up and fee in the order's proportion (half-up on the top-up part), negative
    amounts, one refund line, the invoice's seller and buyer, a pointer to the invoice.
    """
    m, k = len(inv_rows), len(ref_rows)
    inv_series, inv_seq, inv_numbers, next_numbers = _numbered(c["paid_at"][inv_rows], settings.invoice_series)
    cn_series, cn_seq, cn_numbers, cn_next = _numbered(c["refund_at"][ref_rows], settings.credit_note_series)
    next_numbers |= cn_next

    invoice_of_row = np.full(len(c["order_ids"]), -1, dtype=np.int64)
    invoice_of_row[inv_rows] = np.arange(m)
    refers = invoice_of_row[ref_rows]  # index of the refunded order's invoice among the invoices
    refund_amount = c["refund_amount"]
    order_amount, order_total = c["amount"][ref_rows].tolist(), c["total"][ref_rows].tolist()
    cn_subtotal = np.array(
        [
            credit_note_split(cents, a, t)[0]
            for cents, a, t in zip(refund_amount.tolist(), order_amount, order_total, strict=True)
        ],
        dtype=np.int64,
    ).reshape(k)
    cn_lines = [
        _json(credit_note_lines(inv_numbers[i], cents))
        for i, cents in zip(refers.tolist(), refund_amount.tolist(), strict=True)
    ]
    buyers, lines = c["buyers"], c["lines"]
    inv_buyers = [buyers[i] for i in c["customer_of"][inv_rows].tolist()]
    inv_lines = [lines[i] for i in c["line_key"][inv_rows].tolist()]

    # Merge by issue time; ties: the invoice first, then by order.
    issued = np.concatenate([c["paid_at"][inv_rows], c["refund_at"][ref_rows]])
    kind = np.concatenate([np.zeros(m, np.int64), np.ones(k, np.int64)])
    order_of = np.concatenate([c["order_ids"][inv_rows], c["order_ids"][ref_rows]])
    perm = np.lexsort((order_of, kind, issued)) if k else np.arange(m)
    position = np.empty(m + k, dtype=np.int64)
    position[perm] = np.arange(m + k)
    ids = id_offset + 1 + np.arange(m + k, dtype=np.int64)
    invoice_ids = id_offset + 1 + position[:m]
    note_ids = id_offset + 1 + position[m:]
    refers_to = np.concatenate([np.full(m, -1, np.int64), invoice_ids[refers]])

    def merged(first: list, second: list) -> list:
        both = first + second
        return both if not k else [both[i] for i in perm.tolist()]

    table = Table(
        "invoices",
        {
            "id": ids,
            "number": merged(inv_numbers, cn_numbers),
            "series": merged(inv_series, cn_series),
            "sequence": np.concatenate([inv_seq, cn_seq])[perm],
            "kind": (
                np.array([InvoiceKind.INVOICE.value, InvoiceKind.CREDIT_NOTE.value], dtype=object)[kind[perm]].tolist()
                if k
                else Same(InvoiceKind.INVOICE.value)
            ),
            "order_id": order_of[perm],
            "refers_to_id": refers_to[perm],
            "issued_at": issued[perm],
            "currency": Same("USD"),
            "subtotal_cents": np.concatenate([c["amount"][inv_rows], -cn_subtotal])[perm],
            "fee_cents": np.concatenate([c["fee"][inv_rows], cn_subtotal - refund_amount])[perm],
            "tax_cents": Same(0),
            "total_cents": np.concatenate([c["total"][inv_rows], -refund_amount])[perm],
            "seller": Same(_json(asdict(settings.company))),
            "buyer": merged(inv_buyers, [inv_buyers[i] for i in refers.tolist()]),
            "lines": merged(inv_lines, cn_lines),
            "template_version": Same(TEMPLATE_VERSION),
            "sandbox": Same(False),
            "_credit_note_ids": note_ids,
        },
        timestamps=frozenset({"issued_at"}),
        booleans=frozenset({"sandbox"}),
        nullable=frozenset({"refers_to_id"}),
    )
    return table, next_numbers
