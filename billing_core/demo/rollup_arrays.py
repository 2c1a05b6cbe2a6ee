"""The revenue rollup and bills totals of the generated rows, computed as arrays: equal to what
``rollup.rebuild`` and ``invoices.totals.rebuild`` compute from the loaded rows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from billing_core.core.models import (
    InvoiceKind,
)
from billing_core.demo.fixtures import METHODS
from billing_core.demo.generation import _DAY_US, _US, DemoData, Same, Table
from billing_core.pricing.catalog import PlanId
from billing_core.revenue import rollup

_HOUR_US = 3600 * _US


def _local_days(moments: list[np.ndarray], zone: str) -> list[np.ndarray]:
    """Local calendar day (days since 1970-01-01) of each UTC instant in ``zone``: rollup.local_day, vectorised.

    The zone's offset is looked up once per UTC hour; an hour in which the offset changes is
    converted row by row with rollup.local_day itself.
    """
    present = [us for us in moments if len(us)]
    if not present:
        return [np.zeros(0, dtype=np.int64) for _ in moments]
    first = min(int(us.min()) for us in present) // _HOUR_US
    span = max(int(us.max()) for us in present) // _HOUR_US - first + 1
    tz = rollup._zone(zone)
    offsets = np.empty(span, dtype=np.int64)
    mixed = []
    for i in range(span):
        start = (first + i) * 3600
        before = datetime.fromtimestamp(start, UTC).astimezone(tz).utcoffset()
        after = datetime.fromtimestamp(start + 3599.999999, UTC).astimezone(tz).utcoffset()
        offsets[i] = int(before.total_seconds()) * _US  # type: ignore[union-attr]
        if before != after:
            mixed.append(i)
    out = []
    epoch = datetime(1970, 1, 1, tzinfo=UTC).date()
    for us in moments:
        hours = us // _HOUR_US - first
        days = (us + offsets[hours]) // _DAY_US
        for j in np.flatnonzero(np.isin(hours, mixed)).tolist() if mixed else ():
            moment = datetime.fromtimestamp(int(us[j]) // _US, UTC).replace(microsecond=int(us[j]) % _US)
            days[j] = (rollup.local_day(moment, zone) - epoch).days
        out.append(days)
    return out


def _grouped(keys: list[np.ndarray], values: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, dict]:
    """Sum each measure per distinct key over several sets of facts; keys come back sorted."""
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    sums: dict[str, np.ndarray] = {m: np.zeros(len(unique), dtype=np.int64) for m in rollup.MEASURES}
    start = 0
    for part, measures in zip(keys, values, strict=True):
        where = inverse[start : start + len(part)]
        start += len(part)
        for name, value in measures.items():
            # Float sums are exact here: every partial sum stays far below 2**53.
            weights = np.ones(len(part)) if isinstance(value, int) else value.astype(np.float64)
            sums[name] += np.bincount(where, weights=weights, minlength=len(unique)).astype(np.int64)
    return unique, sums


def rollup_tables(data: DemoData, zones: tuple[str, ...]) -> list[Table]:
    """revenue_daily_country, revenue_daily, customer_monthly and customer_totals for the seeded orders, exactly as
    rollup.rebuild computes them from the stored rows, in each table's primary-key order."""
    f = data.facts
    assert f is not None
    countries, country_of_customer = np.unique(np.array(f["countries"], dtype=str), return_inverse=True)
    country = country_of_customer[f["customer_of"]]
    # Dimensions as ranks in the text order the primary keys sort by.
    plan_values = [p.value for p in PlanId]
    plan_names = np.array(sorted(plan_values))
    plan = np.argsort(np.argsort(plan_values))[f["plan"]]
    method_values = [m.value for m in METHODS]
    method_names = np.array(sorted(method_values))
    method = np.argsort(np.argsort(method_values))[f["method"]]
    n_customers = len(country_of_customer)

    paid_at, created = f["paid_at"], f["created"]
    paid_rows = np.flatnonzero(paid_at >= 0)
    customer = f["customer_of"]
    never = np.iinfo(np.int64).max
    first_paid = np.full(n_customers, never, dtype=np.int64)
    np.minimum.at(first_paid, customer[paid_rows], paid_at[paid_rows])
    created_kind = (first_paid[customer] < created).astype(np.int64)  # 1 = returning
    # A paid order is 'new' when it is the customer's first by (paid_at, id); ids follow row order.
    by_customer = paid_rows[np.lexsort((paid_rows, paid_at[paid_rows], customer[paid_rows]))]
    paid_kind = np.zeros(len(paid_at), dtype=np.int64)
    paid_kind[by_customer] = 1
    firsts = np.r_[True, customer[by_customer][1:] != customer[by_customer][:-1]]
    paid_kind[by_customer[firsts]] = 0
    refund_rows = f["refund_rows"]

    if len(countries) > 64 or len(zones) > 64:
        raise ValueError("the rollup keys hold at most 64 countries and 64 time zones")

    def key(zone_rank: int, rows: np.ndarray, days: np.ndarray, kind: np.ndarray) -> np.ndarray:
        k = np.int64(zone_rank) * 64 + country[rows]
        return (((k * 65536 + days) * 8 + plan[rows]) * 4 + method[rows]) * 2 + kind

    country_keys, country_sums, daily_keys, daily_sums = [], [], [], []
    zone_names = sorted(zones)
    all_rows = np.arange(len(created))
    low = 65536 * 8 * 4 * 2  # day, plan, method and kind below the zone (and country)
    for rank, zone in enumerate(zone_names):
        created_days, paid_days, refund_days = _local_days([created, paid_at[paid_rows], f["refund_at"]], zone)
        facts = [
            {"created_count": 1},
            {
                "paid_count": 1,
                "amount_cents": f["amount"][paid_rows],
                "fee_cents": f["fee"][paid_rows],
                "total_cents": f["total"][paid_rows],
                "credits": f["credits"][paid_rows],
            },
            {"refund_count": 1, "refunded_cents": f["refund_amount"]},
        ]
        keys = [
            key(rank, all_rows, created_days, created_kind),
            key(rank, paid_rows, paid_days, paid_kind[paid_rows]),
            key(rank, refund_rows, refund_days, paid_kind[refund_rows]),
        ]
        unique, sums = _grouped(keys, facts)
        country_keys.append(unique)
        country_sums.append(sums)
        # Without the country: the same sums grouped once more.
        daily, inverse = np.unique(unique // low // 64 * low + unique % low, return_inverse=True)
        daily_keys.append(daily)
        daily_sums.append(
            {m: np.bincount(inverse, v.astype(np.float64), len(daily)).astype(np.int64) for m, v in sums.items()}
        )

    def table(name: str, keys: list[np.ndarray], sums: list[dict], with_country: bool) -> Table:
        k = np.concatenate(keys)
        kind, k = k % 2, k // 2
        method_rank, k = k % 4, k // 4
        plan_rank, k = k % 8, k // 8
        days, k = k % 65536, k // 65536
        columns: dict[str, object] = {}
        if with_country:
            country_rank, k = k % 64, k // 64
            columns["country"] = countries.astype(object)[country_rank]
        first_day = int(days.min()) if len(days) else 0
        day_names = np.datetime_as_string(np.arange(first_day, int(days.max(initial=0)) + 1).astype("datetime64[D]"))
        columns = {
            "tz": np.array(zone_names, dtype=object)[k],
            **columns,
            "day": day_names.astype(object)[days - first_day],
            "plan": plan_names.astype(object)[plan_rank],
            "method": method_names.astype(object)[method_rank],
            "kind": np.array(["new", "returning"], dtype=object)[kind],
        }
        for m in rollup.MEASURES:
            columns[m] = np.concatenate([s[m] for s in sums])
        return Table(name, columns)

    # Customers per UTC month of payment.
    month = paid_at[paid_rows].astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    monthly_key = customer[paid_rows] * 4096 + month
    unique, inverse = np.unique(monthly_key, return_inverse=True)
    monthly = Table(
        "customer_monthly",
        {
            "customer_id": unique // 4096 + f["customer_id_offset"] + 1,
            "month": np.datetime_as_string((unique % 4096).astype("datetime64[M]").astype("datetime64[D]"), unit="D"),
            "paid_count": np.bincount(inverse, minlength=len(unique)).astype(np.int64),
            "total_cents": np.bincount(inverse, f["total"][paid_rows].astype(np.float64), len(unique)).astype(np.int64),
            "amount_cents": np.bincount(inverse, f["amount"][paid_rows].astype(np.float64), len(unique)).astype(
                np.int64
            ),
        },
    )
    # Customers over all time: the months' sums once more, per customer.
    customer_ids, per_customer = np.unique(unique // 4096, return_inverse=True)
    totals = Table(
        "customer_totals",
        {
            "customer_id": customer_ids + f["customer_id_offset"] + 1,
            **{
                m: np.bincount(per_customer, monthly.columns[m].astype(np.float64), len(customer_ids)).astype(np.int64)
                for m in rollup.MONTHLY_MEASURES
            },
        },
    )
    return [
        table("revenue_daily_country", country_keys, country_sums, True),
        table("revenue_daily", daily_keys, daily_sums, False),
        monthly,
        totals,
    ]


def bills_table(data: DemoData) -> Table:
    """bills_daily for the seeded documents, exactly as invoices.totals.rebuild computes it from the stored
    rows, in primary-key order (day, plan, method, kind, series; seeded documents are never sandbox)."""
    f = data.facts
    assert f is not None
    columns = data.invoices.columns
    row = np.asarray(columns["order_id"]) - f["order_id_offset"] - 1
    plan_values = [p.value for p in PlanId]
    plan = np.argsort(np.argsort(plan_values))[f["plan"][row]]
    method_values = [m.value for m in METHODS]
    method = np.argsort(np.argsort(method_values))[f["method"][row]]
    kinds = columns["kind"]
    kind_names = sorted(k.value for k in InvoiceKind)
    if isinstance(kinds, Same):
        kind = np.full(len(row), kind_names.index(kinds.value), dtype=np.int64)
    else:
        kind = (np.array(kinds, dtype=object) == kind_names[1]).astype(np.int64)
    series_names, series = np.unique(np.array(columns["series"], dtype=str), return_inverse=True)
    day = np.asarray(columns["issued_at"]) // _DAY_US
    key = (((day * 8 + plan) * 4 + method) * 2 + kind) * len(series_names) + series
    unique, inverse = np.unique(key, return_inverse=True)
    series_rank, k = unique % len(series_names), unique // len(series_names)
    kind_rank, k = k % 2, k // 2
    method_rank, k = k % 4, k // 4
    plan_rank, days = k % 8, k // 8

    def summed(name: str) -> np.ndarray:
        values = columns[name]
        if isinstance(values, Same):
            return int(values.value) * np.bincount(inverse, minlength=len(unique)).astype(np.int64)
        return np.bincount(inverse, np.asarray(values).astype(np.float64), len(unique)).astype(np.int64)

    return Table(
        "bills_daily",
        {
            "day": np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(object),
            "plan": np.array(sorted(plan_values), dtype=object)[plan_rank],
            "method": np.array(sorted(method_values), dtype=object)[method_rank],
            "kind": np.array(kind_names, dtype=object)[kind_rank],
            "series": series_names.astype(object)[series_rank],
            "sandbox": Same(False),
            "documents": np.bincount(inverse, minlength=len(unique)).astype(np.int64),
            **{m: summed(m) for m in ("subtotal_cents", "fee_cents", "tax_cents", "total_cents")},
        },
        booleans=frozenset({"sandbox"}),
    )
