"""Pieces of the Invoices page: filter widgets, tables for people, the checks panel, job processes.

Formatting only; every query and rule is in ``billing_core.invoices.review`` and ``billing_core.invoices``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from datetime import date, datetime

import pandas as pd
import streamlit as st

from billing_core.core.errors import BillingError
from billing_core.core.models import InvoiceFile, InvoiceKind
from billing_core.core.money import format_cents, format_compact
from billing_core.invoices import batch
from billing_core.invoices.deep_check import CheckRun
from billing_core.invoices.review import (
    COUNT_CAP,
    NUMBER_MAX_CHARS,
    Check,
    DocumentFilters,
    DocumentRow,
    JobView,
    Summary,
    TotalRow,
)
from billing_core.orders.customers import CustomerHit
from billing_core.orders.search import MAX_QUERY_CHARS
from billing_core.pricing.catalog import Method, PlanId
from pages._text import plain

KIND_LABELS = {
    None: "Invoices and credit notes",
    InvoiceKind.INVOICE: "Invoices",
    InvoiceKind.CREDIT_NOTE: "Credit notes",
}
ZIP_INLINE_LIMIT = 200 * 1024 * 1024  # larger archives are fetched from the server's disk, not through the browser


def _dates(label: str, key: str) -> tuple[date | None, date | None]:
    picked = st.date_input(label, value=(), key=key, format="YYYY-MM-DD")
    if not picked:
        return None, None
    if len(picked) == 1:
        return picked[0], picked[0]
    return picked[0], picked[1]


def document_filters() -> DocumentFilters:
    """The Bills review filter bar."""
    with st.container(border=True):
        period, plan, method, kind = st.columns([3, 2, 2, 2])
        with period:
            since, until = _dates("Issued between (UTC)", "bills_period")
        plans = plan.multiselect("Plan", [p.value for p in PlanId], key="bills_plans", placeholder="all plans")
        methods = method.multiselect("Method", [m.value for m in Method], key="bills_methods", placeholder="all")
        chosen_kind = kind.selectbox("Kind", list(KIND_LABELS), format_func=KIND_LABELS.get, key="bills_kind")
        customer, country, number_from, number_to, sandbox = st.columns([3, 1, 2, 2, 1.4], vertical_alignment="bottom")
        who = customer.text_input(
            "Customer",
            key="bills_customer",
            placeholder="name, company, email or domain, cus_…",
            max_chars=MAX_QUERY_CHARS,
        )
        where = country.text_input("Country", key="bills_country", max_chars=2, placeholder="DE")
        first = number_from.text_input(
            "Number from", key="bills_from", placeholder="INV-2026-000001", max_chars=NUMBER_MAX_CHARS
        )
        last = number_to.text_input(
            "Number to", key="bills_to", placeholder="INV-2026-000100", max_chars=NUMBER_MAX_CHARS
        )
        include_sandbox = sandbox.checkbox("Sandbox too", key="bills_sandbox")
    return DocumentFilters(
        since=since,
        until=until,
        plans=tuple(plans),
        methods=tuple(methods),
        customer=who or None,
        country=where or None,
        number_from=first or None,
        number_to=last or None,
        kind=chosen_kind,
        include_sandbox=include_sandbox,
    )


def selection_inputs(prefix: str) -> dict | None:
    """Widgets for a regeneration or verify selection: keyword arguments for ``batch.select_invoices``,
    or None (with the reason shown) when the pasted numbers are too many."""
    period, plan, customer = st.columns(3)
    with period:
        since, until = _dates("Issued between (UTC)", f"{prefix}_period")
    plans = plan.multiselect("Plan", [p.value for p in PlanId], key=f"{prefix}_plans", placeholder="all plans")
    who = customer.text_input(
        "Customer",
        key=f"{prefix}_customer",
        max_chars=MAX_QUERY_CHARS,
        placeholder="name, company, email or domain, cus_…",
    )
    first, last = st.columns(2)
    number_from = first.text_input(
        "Number from", key=f"{prefix}_from", placeholder="INV-2026-000001", max_chars=NUMBER_MAX_CHARS
    )
    number_to = last.text_input(
        "Number to", key=f"{prefix}_to", placeholder="INV-2026-000100", max_chars=NUMBER_MAX_CHARS
    )
    pasted = st.text_area(
        "Or paste invoice numbers (one per line or comma-separated)",
        key=f"{prefix}_numbers",
        height=80,
        max_chars=batch.MAX_PASTED_CHARS,
    )
    try:
        numbers = batch.pasted_numbers(pasted)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return None
    return {
        "since": since,
        "until": until,
        "plans": plans,
        "customer": who,
        "number_from": number_from,
        "number_to": number_to,
        "numbers": numbers,
    }


def excerpt(text: str, limit: int = 40) -> str:
    """What someone typed, short enough to quote back in a message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def customer_label(hit: CustomerHit) -> str:
    return f"{hit.name} · {hit.email} · {hit.public_id}" + (" · sandbox" if hit.sandbox else "")


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at else "—"


def documents_frame(rows: Iterable[DocumentRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Number": r.number,
                "Kind": "credit note" if r.kind == InvoiceKind.CREDIT_NOTE else "invoice",
                "Issued (UTC)": _when(r.issued_at),
                "Customer": r.customer_email,
                "Country": r.country,
                "Plan": r.plan,
                "Method": r.method,
                "Subtotal": format_cents(r.subtotal_cents, r.currency),
                "Fee": format_cents(r.fee_cents, r.currency),
                "Tax": format_cents(r.tax_cents, r.currency),
                "Total": format_cents(r.total_cents, r.currency),
                "Order": r.order_public_id,
                "Refers to": r.refers_to or "",
                "File": f"v{r.latest_version}" if r.latest_version else "not stored",
            }
            for r in rows
        ],
        columns=[
            "Number", "Kind", "Issued (UTC)", "Customer", "Country", "Plan", "Method",
            "Subtotal", "Fee", "Tax", "Total", "Order", "Refers to", "File",
        ],
    )  # fmt: skip


def totals_frame(rows: Iterable[TotalRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Month": r.month,
                "Plan": r.plan,
                "Documents": r.documents,
                "Subtotal": format_cents(r.subtotal_cents),
                "Fees": format_cents(r.fee_cents),
                "Tax": format_cents(r.tax_cents),
                "Total": format_cents(r.total_cents),
            }
            for r in rows
        ],
        columns=["Month", "Plan", "Documents", "Subtotal", "Fees", "Tax", "Total"],
    )


CAPPED_TOTALS = (
    f"More than {COUNT_CAP:,} documents match a customer, country or number range filter, and totals by those "
    "are not kept: narrow the filter, or drop it for totals by date, plan, method and kind."
)


def summary_metrics(summary: Summary) -> None:
    """Documents, subtotal, fees and net total of the matching documents (totals unknown when capped)."""
    documents, subtotal, fees, total = st.columns(4)
    documents.metric("Documents", summary.label)
    rows = summary.rows
    if rows is None:
        for column, label in ((subtotal, "Subtotal"), (fees, "Fees"), (total, "Net total")):
            column.metric(label, "—", help=CAPPED_TOTALS)
        return
    _money_metric(subtotal, "Subtotal", sum(r.subtotal_cents for r in rows))
    _money_metric(fees, "Fees", sum(r.fee_cents for r in rows))
    _money_metric(total, "Net total", sum(r.total_cents for r in rows), "Credit notes count negative.")


def _money_metric(column, label: str, cents: int, note: str = "") -> None:
    """A headline amount in its short form, so it fits its tile; the exact amount on hover."""
    exact = f"Exactly {format_cents(cents)}."
    column.metric(label, format_compact(cents), help=plain(f"{note}  \n{exact}" if note else exact), border=True)


def versions_frame(files: Iterable[InvoiceFile]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Version": f"v{f.version}",
                "Stored (UTC)": _when(f.created_at),
                "Reason": f.reason,
                "Who": f.created_by,
                "Template": f.template_version,
                "SHA-256": f.sha256,
                "Size": f"{f.size / 1024:,.1f} KiB",
                # Text in every row: ids beside "" in one column are mixed types that Arrow refuses (and
                # Streamlit logs a warning for on every rerun before converting the column itself).
                "Job": str(f.job_id) if f.job_id is not None else "",
            }
            for f in files
        ],
        columns=["Version", "Stored (UTC)", "Reason", "Who", "Template", "SHA-256", "Size", "Job"],
    )


def checks_summary(found: list[Check], run: CheckRun | None) -> None:
    """Green or red, and when and by whom the deep check behind the findings ran."""
    bad = [c for c in found if not c.ok]
    if bad:
        st.error(f"{len(bad)} of {len(found)} checks found trouble.", icon=":material/report:")
    elif run is None:
        st.info("The number series are gapless; no deep check has run yet.", icon=":material/pending:")
    else:
        st.success(
            f"All {len(found)} checks pass." if len(found) > 1 else "The check passes.", icon=":material/verified:"
        )
    if run is None:
        st.caption(
            "Number series are checked on every view. The other checks read every order and document: "
            "Run deep check (or `python -m billing_core invoices check` from cron)."
        )
    else:
        st.caption(
            f"Number series as of now; the rest as the deep check of {_when(run.finished_at)} UTC by "
            f"{plain(run.started_by)} found them."
        )


def check_progress(run: CheckRun) -> str:
    started = f"started {_when(run.started_at)} UTC by {plain(run.started_by)}"
    return f"Deep check {run.id} {started} · step {run.done} of {run.total}"


def checks_tiles(found: list[Check]) -> None:
    """One tile per check: what holds, in green; or what is wrong, in red, with examples."""
    for column, check in zip(st.columns(len(found)), found, strict=True):
        with column, st.container(border=True):
            if check.ok:
                st.markdown(f":green[:material/check_circle:] {plain(check.message)}")
                continue
            st.markdown(f":red[:material/cancel: **{plain(check.name)}**] :red-badge[{check.count:,}]")
            st.caption(plain(check.message))
            if check.examples:
                with st.expander("Examples"):
                    st.code("\n".join(check.examples), language=None)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def job_progress(job: JobView) -> str:
    """Done of total, and the time left once the job has done enough to tell."""
    done = f"{job.done:,} of {job.total:,}"
    if job.eta_seconds is None:
        return f"{done} · starting…" if not job.done else done
    return f"{done} · about {duration(job.eta_seconds)} left"


STATUS_COLOURS = {"running": "blue", "finished": "green", "cancelled": "gray", "failed": "red"}


def job_heading(job: JobView) -> str:
    """Markdown: the job, its status as a coloured badge, progress, who started it and why."""
    badge = f":{STATUS_COLOURS[job.status.value]}-badge[{job.status.value}]"
    started = _when(job.created_at)
    return (
        f"**Job {job.id}** {badge} · {job.done:,}/{job.total:,} · started {started} UTC by "
        f"{plain(job.created_by)} — {plain(job.reason)}"
    )


@st.cache_resource
def job_processes() -> dict[int, subprocess.Popen]:
    """Regeneration processes this server started, by job id (to tell running from interrupted)."""
    return {}


def alive_here(job_id: int) -> bool:
    process = job_processes().get(job_id)
    return process is not None and process.poll() is None
