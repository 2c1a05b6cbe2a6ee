"""Invoices: review bills (list, totals, export, checks), regenerate PDFs in batches, verify stored files.

Only functions: app.py registers ``render`` with st.navigation. Run as a script on its own (Streamlit's
``pages/`` folder mode), the file hands over to app.py (see ``_shared.hand_over_to_router``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import streamlit as st

from billing_core.access.audit import REASON_MAX_CHARS
from billing_core.core.db import transaction
from billing_core.core.errors import BillingError
from billing_core.core.models import CheckStatus, RegenerationStatus
from billing_core.invoices import batch, storage
from billing_core.invoices import deep_check as bills_check
from billing_core.invoices import review as bills
from billing_core.orders import customers
from pages import _invoices_ui as ui
from pages import _shared
from pages._shared import PageContext, plain

PAGE_SIZE = 50
CUSTOMER_CHOICES = 20
WORKERS = max(1, min(4, os.cpu_count() or 1))
CURSORS_KEY = "bills_cursors"
FILTERS_KEY = "bills_filters_seen"
DRY_KEY = "regen_dry_run"
START_ERROR_KEY = "regen_start_error"
VERIFY_KEY = "verify_report"


def render() -> None:
    ctx = _shared.page_context("invoices")
    st.title("Invoices")
    st.caption("Issued invoices and credit notes: review and export them, regenerate their PDFs, verify stored files.")
    review, regenerate, verify = st.tabs(
        [":material/fact_check: Bills review", ":material/autorenew: Batch regeneration", ":material/verified: Verify"]
    )
    # Each tab is a fragment: a widget inside one reruns that tab alone, not the other two.
    with review:
        st.fragment(_review)(ctx)
    with regenerate:
        st.fragment(_regeneration)(ctx)
    with verify:
        st.fragment(_verify)(ctx)


# --- bills review ---------------------------------------------------------------------------------


def _review(ctx: PageContext) -> None:
    _checks(ctx)
    filters = ui.document_filters()
    if filters.customer:
        if (public_id := _pick_customer(ctx, filters.customer, "bills_customer_pick")) is None:
            return
        filters = dataclasses.replace(filters, customer=public_id)
    if st.session_state.get(FILTERS_KEY) != filters:
        st.session_state[FILTERS_KEY] = filters
        st.session_state[CURSORS_KEY] = [None]
    cursors = st.session_state[CURSORS_KEY]
    try:
        with ctx.database.session() as session:
            page = bills.list_documents(session, ctx.actor, filters, PAGE_SIZE, cursors[-1])
            summary = bills.summary(session, ctx.actor, filters)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return

    ui.summary_metrics(summary)
    st.dataframe(ui.documents_frame(page.rows), hide_index=True, key="bills_table")
    _pager(page, cursors, summary.label)
    st.download_button(
        "Download CSV of all matching documents",
        data=lambda: _csv(ctx, filters),
        file_name="bills.csv",
        mime="text/csv",
        icon=":material/download:",
        key="bills_csv",
        disabled=not page.rows,
    )

    st.subheader("Totals by month and plan")
    if summary.rows is None:
        st.caption(ui.CAPPED_TOTALS)
    else:
        st.dataframe(ui.totals_frame(summary.rows), hide_index=True, key="bills_totals")
    if page.rows:
        _document(ctx, [r.number for r in page.rows])


def _csv(ctx: PageContext, filters: bills.DocumentFilters) -> bytes:
    with ctx.database.session() as session:
        return bills.documents_csv(session, ctx.actor, filters)[0]


def _pager(page: bills.DocumentPage, cursors: list, count: str) -> None:
    """Previous and next move the cursor stack in their callbacks, before the (fragment) rerun reads it."""
    first = (len(cursors) - 1) * PAGE_SIZE
    back, shown, forward = st.columns([1, 4, 1], vertical_alignment="center")
    back.button(
        "Previous page",
        key="bills_prev",
        disabled=len(cursors) == 1,
        icon=":material/chevron_left:",
        on_click=cursors.pop,
    )
    last = first + len(page.rows)
    shown.caption(f"Showing {first + 1 if last else 0:,}–{last:,} of {count}, newest first")
    forward.button(
        "Next page",
        key="bills_next",
        disabled=page.next_cursor is None,
        icon=":material/chevron_right:",
        on_click=cursors.append,
        args=(page.next_cursor,),
    )


def _checks(ctx: PageContext) -> None:
    with ctx.database.session() as session:
        running = (run := bills_check.latest(session, ctx.actor)) is not None and run.status == CheckStatus.RUNNING
    st.fragment(_deep_check, run_every=2.0 if running else None)(ctx, running)


def _deep_check(ctx: PageContext, was_running: bool) -> None:
    """Series health (kept by numbering) on every run; the rest as the last deep check found it."""
    with ctx.database.session() as session:
        series = bills_check.series_check(session, ctx.actor)
        run = bills_check.latest(session, ctx.actor)
        shown = bills_check.last_finished(session, ctx.actor)
    running = run is not None and run.status == CheckStatus.RUNNING
    if was_running and not running:
        st.rerun()  # the run ended: redraw the page once with its findings, without the polling
    found = [series, *(shown.checks if shown else [])]
    summary, again = st.columns([6, 1.3], vertical_alignment="center")
    with summary:
        ui.checks_summary(found, shown)
    if again.button("Run deep check", key="bills_checks_run", icon=":material/manage_search:", disabled=running):
        _start_deep_check(ctx)
    if running:
        st.progress(run.fraction, text=ui.check_progress(run))
    elif run is not None and run.error:
        st.error(f"The last deep check failed: {plain(run.error)}", icon=":material/error:")
    ui.checks_tiles(found)


def _start_deep_check(ctx: PageContext) -> None:
    try:
        with ctx.database.session() as session:
            check_id = bills_check.start(session, ctx.actor)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    bills_check.launch(ctx.settings, ctx.actor, check_id)  # the row says how it goes, whichever server asks
    st.rerun()


def _document(ctx: PageContext, numbers: list[str]) -> None:
    st.subheader("Document files")
    number = st.selectbox("Document on this page", numbers, key="bills_document")
    with ctx.database.session() as session:
        invoice = bills.find_document(session, ctx.actor, number)
        files = storage.files_for(session, ctx.actor, invoice.id)
    invoice_id = invoice.id
    if files:
        try:
            storage.read_file(files[-1], storage.storage_root(ctx.settings))
        except storage.FileIntegrityError as exc:
            st.error(plain(exc), icon=":material/gpp_bad:")
            return

    def latest_pdf() -> bytes:
        return storage.issued_pdf(ctx.database, ctx.actor, invoice_id, settings=ctx.settings)[1]

    latest = f"v{files[-1].version}" if files else "v1 (rendered and stored on first download)"
    st.download_button(
        f"Download {number}.pdf · {latest}",
        data=latest_pdf,
        file_name=f"{number}.pdf",
        mime="application/pdf",
        icon=":material/picture_as_pdf:",
        key="bills_pdf",
    )
    if files:
        st.dataframe(ui.versions_frame(files), hide_index=True, key="bills_versions")
    else:
        st.caption("No file stored yet.")


# --- batch regeneration ---------------------------------------------------------------------------


def _signature(chosen: batch.Chosen) -> dict:
    return {k: v for k, v in chosen.selection.items() if k != "max_id"}


def _regeneration(ctx: PageContext) -> None:
    st.caption("Re-render the PDFs of a selection as new versions beside the old ones. Dry run first.")
    wanted = _with_customer(ctx, ui.selection_inputs("regen"), "regen")
    chosen = None
    try:
        if wanted is not None:
            with ctx.database.session() as session:
                chosen = batch.select_invoices(session, ctx.actor, **wanted)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
    if chosen is not None:
        _plan_job(ctx, chosen)
    st.subheader("Jobs")
    running = any(ui.alive_here(j.id) for j in _recent(ctx))
    st.fragment(_jobs, run_every=2.0 if running else None)(ctx, running)


def _with_customer(ctx: PageContext, wanted: dict | None, prefix: str) -> dict | None:
    """The selection with the customer picked (see ``_pick_customer``) in place of what was typed."""
    if wanted is None or not (typed := wanted["customer"] or "").strip():
        return wanted
    public_id = _pick_customer(ctx, typed, f"{prefix}_customer_pick")
    return None if public_id is None else wanted | {"customer": public_id}


def _pick_customer(ctx: PageContext, typed: str, key: str) -> str | None:
    """The customer found by the Customers page's search (names, companies, emails, domains, ids): one
    match is taken, several are offered to pick from; None, with the reason shown, when none matches."""
    try:
        with ctx.database.session() as session:
            found = customers.find_customers(session, ctx.actor, typed, limit=CUSTOMER_CHOICES, include_sandbox=True)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return None
    if not found.hits:
        st.error(
            f"No customer matches “{plain(ui.excerpt(typed))}”. Type part of a name or company, an email or its "
            "domain, or a cus_ id.",
            icon=":material/person_off:",
        )
        return None
    hits = {hit.public_id: hit for hit in found.hits}
    if len(hits) == 1:
        [public_id] = hits
        st.caption(f"Customer: {plain(ui.customer_label(hits[public_id]))}")
        return public_id
    more = f" (the first {len(hits)}; type more to narrow)" if found.more else ""
    return st.selectbox(
        f"{len(hits)} customers match{more}", list(hits), format_func=lambda k: ui.customer_label(hits[k]), key=key
    )


def _plan_job(ctx: PageContext, chosen: batch.Chosen) -> None:
    if chosen.invalid_numbers:
        st.warning("Not invoice numbers: " + plain(", ".join(chosen.invalid_numbers)), icon=":material/warning:")
    st.markdown(f"**{chosen.count:,} invoices selected**")
    reason = st.text_input("Reason (stored with every new version)", key="regen_reason", max_chars=REASON_MAX_CHARS)
    buttons = st.container(horizontal=True)
    if buttons.button("Dry run", key="regen_dry", icon=":material/science:", disabled=not chosen.count):
        with st.spinner("Rendering a sample…"), ctx.database.session() as session:
            result = batch.dry_run(session, ctx.actor, chosen, workers=WORKERS, settings=ctx.settings)
        st.session_state[DRY_KEY] = (_signature(chosen), result)
    dry = st.session_state.get(DRY_KEY)
    current = dry is not None and dry[0] == _signature(chosen)
    if current:
        result = dry[1]
        count, changed, eta = st.columns(3)
        count.metric("Would regenerate", f"{result.count:,}")
        changed.metric(
            "Would change (estimate)",
            f"{result.estimated_changed:,}",
            help=f"{result.changed_in_sample} of {result.sampled} sampled invoices render differently from their "
            "latest file (or have none yet).",
        )
        eta.metric("Estimated time", ui.duration(result.estimated_seconds), help=f"With {WORKERS} worker processes.")
    ready = current and chosen.count > 0 and bool(reason.strip())
    # A callback, before the tab's own rerun: the new job is in the list that run draws, and no
    # rerun of the whole app (the bills review included) holds the page greyed meanwhile.
    buttons.button(
        "Start regeneration",
        key="regen_start",
        type="primary",
        icon=":material/play_arrow:",
        disabled=not ready,
        on_click=_start,
        args=(ctx, chosen),
    )
    if (refused := st.session_state.pop(START_ERROR_KEY, None)) is not None:
        st.error(refused, icon=":material/error:")
    if not ready:
        st.caption("Starting needs a dry run of this selection and a reason.")


def _start(ctx: PageContext, chosen: batch.Chosen) -> None:
    reason = st.session_state.get("regen_reason", "")
    try:
        with ctx.database.session() as session, transaction(session):
            job_id = batch.start_job(session, ctx.actor, chosen, reason, paper=ctx.settings.invoice_paper).id
    except BillingError as exc:
        st.session_state[START_ERROR_KEY] = plain(exc)
        return
    ui.job_processes()[job_id] = bills.launch_job(ctx.settings, ctx.actor, job_id, workers=WORKERS)
    st.session_state.pop(DRY_KEY, None)


def _recent(ctx: PageContext) -> list[bills.JobView]:
    with ctx.database.session() as session:
        return bills.recent_jobs(session, ctx.actor, limit=10)


def _jobs(ctx: PageContext, was_running: bool) -> None:
    jobs = _recent(ctx)
    running = any(ui.alive_here(j.id) for j in jobs)  # a cancelled job's process finishes its chunk in flight
    if was_running and not running:
        st.rerun()  # the last job here ended: redraw the page once, without the polling
    if not jobs:
        st.caption("No regeneration jobs yet.")
    for job in jobs:
        with st.container(border=True):
            _job(ctx, job)


def _job(ctx: PageContext, job: bills.JobView) -> None:
    st.markdown(ui.job_heading(job))
    alive = ui.alive_here(job.id)
    act = st.container(horizontal=True)
    if job.status == RegenerationStatus.RUNNING:
        st.progress(
            job.fraction, text=ui.job_progress(job) if alive else f"{job.done:,} of {job.total:,} · interrupted"
        )
        if alive and act.button("Cancel", key=f"job_cancel_{job.id}", icon=":material/stop:"):
            _cancel(ctx, job.id)
        if not alive:
            st.caption("No process of this server runs it: it was interrupted (or runs elsewhere). Resume continues.")
            if act.button("Resume", key=f"job_resume_{job.id}", icon=":material/play_arrow:"):
                _launch(ctx, job.id)
    elif job.status == RegenerationStatus.CANCELLED and alive:
        st.caption("Cancelling: the chunk in flight is finished first.")
    elif job.status == RegenerationStatus.CANCELLED:
        if job.done < job.total and act.button("Resume", key=f"job_resume_{job.id}", icon=":material/play_arrow:"):
            _resume(ctx, job.id)
        if job.zip_path:
            with act:
                _zip(ctx, job)
    elif job.status == RegenerationStatus.FINISHED and job.zip_path:
        _zip(ctx, job)
    elif job.error:
        st.error(plain(job.error), icon=":material/error:")


def _launch(ctx: PageContext, job_id: int) -> None:
    ui.job_processes()[job_id] = bills.launch_job(ctx.settings, ctx.actor, job_id, workers=WORKERS)
    st.rerun()  # the whole batch tab, so that the jobs list starts polling


def _resume(ctx: PageContext, job_id: int) -> None:
    try:
        with ctx.database.session() as session:
            bills.resume_job(session, ctx.actor, job_id)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    _launch(ctx, job_id)


def _cancel(ctx: PageContext, job_id: int) -> None:
    try:
        with ctx.database.session() as session:
            bills.cancel_job(session, ctx.actor, job_id)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    st.rerun()


def _zip(ctx: PageContext, job: bills.JobView) -> None:
    path = Path(storage.storage_root(ctx.settings)) / job.zip_path
    if not path.exists():
        st.warning(f"The ZIP file is gone from {plain(path)}.", icon=":material/warning:")
        return
    size = path.stat().st_size
    if size > ui.ZIP_INLINE_LIMIT:
        st.info(
            f"The ZIP is {size / 2**20:,.0f} MiB, too large to pass through the browser session. "
            "Copy it from the server's disk (or stream it with any file server):",
            icon=":material/folder_zip:",
        )
        st.code(str(path), language=None)
        return
    st.download_button(
        f"Download ZIP ({size / 2**20:,.1f} MiB, {job.done:,} PDFs)",
        data=path.read_bytes,
        file_name=path.name,
        mime="application/zip",
        icon=":material/folder_zip:",
        key=f"job_zip_{job.id}",
    )


# --- verify ---------------------------------------------------------------------------------------


def _verify(ctx: PageContext) -> None:
    st.caption("Re-hash every stored version of the selected invoices and list the missing or altered files.")
    wanted = _with_customer(ctx, ui.selection_inputs("verify"), "verify")
    if wanted is None:
        return
    if st.button("Verify stored files", key="verify_run", type="primary", icon=":material/verified:"):
        try:
            with st.spinner("Reading files…"), ctx.database.session() as session:
                chosen = batch.select_invoices(session, ctx.actor, **wanted)
                st.session_state[VERIFY_KEY] = (chosen, batch.verify(session, ctx.actor, chosen, root=_root(ctx)))
        except BillingError as exc:
            st.error(plain(exc), icon=":material/error:")
            return
    if (done := st.session_state.get(VERIFY_KEY)) is None:
        return
    chosen, report = done
    if chosen.invalid_numbers:
        st.warning("Not invoice numbers: " + plain(", ".join(chosen.invalid_numbers)), icon=":material/warning:")
    checked, missing, altered = st.columns(3)
    checked.metric("Files checked", f"{report.checked:,}", help=f"Of {chosen.count:,} selected invoices.")
    missing.metric("Missing", f"{len(report.missing):,}")
    altered.metric("Altered", f"{len(report.altered):,}")
    if report.ok:
        st.success(f"All {report.checked:,} stored files match their recorded hashes.", icon=":material/verified:")
        return
    st.error("Some stored files are missing or altered; they are never served.", icon=":material/gpp_bad:")
    problems = [("missing", p) for p in report.missing] + [("altered", p) for p in report.altered]
    st.dataframe([{"Problem": kind, "File": path} for kind, path in problems], hide_index=True, key="verify_problems")


def _root(ctx: PageContext) -> Path:
    return Path(storage.storage_root(ctx.settings))


if __name__ == "__main__":
    _shared.hand_over_to_router()
