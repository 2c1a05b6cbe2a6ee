"""Batch regeneration of invoice PDFs: select in the database, dry run, run resumably on every core, verify.

A job remembers its selection (with the highest invoice id at start, so invoices issued later never
join it). It works through the selection in id order, one chunk per transaction: lock the chunk's
invoices, take their next version numbers, render and write the files in worker processes (which
send back only path, hash and size), flush the file system once, add the rows. While the workers
render, the main process reads the next chunk. A crash loses at most the chunk in flight, whose
files are not versions until their rows commit (a resumed run takes the same version numbers and
replaces them); a resumed run skips every invoice that already has a file from this job (a unique
key on (job, invoice) backs that up), so no invoice ever gets two versions from one job.
"""

from __future__ import annotations

import gc
import hashlib
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from multiprocessing import get_context
from pathlib import Path

from sqlalchemy import Select, exists, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.emails import EMAIL_MAX_CHARS
from billing_core.core.errors import BillingError, NotFound, StateConflict, shown_to_people
from billing_core.core.models import (
    BillsDaily,
    Customer,
    Invoice,
    InvoiceFile,
    Order,
    RegenerationJob,
    RegenerationStatus,
    utcnow,
)
from billing_core.invoices import einvoice, fonts, render, storage
from billing_core.invoices.object_store import Store

CHUNK = 1_000  # invoices per transaction: one fsync of the file system and one batch of rows each
PART = 25  # invoices per task sent to a worker: small, so no worker idles long at a chunk's end
ID_PAGE = 2_000
MAX_PASTED_NUMBERS = 10_000
MAX_PASTED_CHARS = MAX_PASTED_NUMBERS * 64  # a number and its separator
Progress = Callable[[int, int], None]


# --- selection ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chosen:
    """A selection as stored on a job, how many invoices it holds, and pasted numbers that matched none."""

    selection: dict
    count: int
    invalid_numbers: list[str] = field(default_factory=list)


def _as_date(value: date | datetime | str | None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    try:
        if len(text) > 32:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise BillingError(f"“{text[:32]}” is not a date; use YYYY-MM-DD.") from None


def pasted_numbers(text: str) -> list[str] | None:
    """Invoice numbers pasted one per line or comma-separated; None when none were pasted."""
    if len(text) > MAX_PASTED_CHARS:
        raise BillingError(f"Paste at most {MAX_PASTED_NUMBERS:,} invoice numbers ({MAX_PASTED_CHARS:,} characters).")
    numbers = text.replace(",", "\n").split()
    if len(numbers) > MAX_PASTED_NUMBERS:
        raise BillingError(f"Paste at most {MAX_PASTED_NUMBERS:,} invoice numbers; select a range for more.")
    return numbers or None


def _filters(selection: dict) -> list:
    conditions = []
    if selection.get("since"):
        start = datetime.combine(date.fromisoformat(selection["since"]), dtime.min, UTC)
        conditions.append(Invoice.issued_at >= start)
    if selection.get("until"):
        end = datetime.combine(date.fromisoformat(selection["until"]), dtime.min, UTC) + timedelta(days=1)
        conditions.append(Invoice.issued_at < end)
    if selection.get("number_from"):
        conditions.append(Invoice.number >= selection["number_from"])
    if selection.get("number_to"):
        conditions.append(Invoice.number <= selection["number_to"])
    if selection.get("numbers") is not None:
        conditions.append(Invoice.number.in_(selection["numbers"]))
    if selection.get("max_id") is not None:
        conditions.append(Invoice.id <= selection["max_id"])
    if selection.get("customer"):
        # The customer's orders by index, then their documents by index: never a pass over every document.
        who = selection["customer"]
        customer = select(Customer.id).where((Customer.public_id == who) | (Customer.email == who.lower()))
        theirs = select(Order.id).where(Order.customer_id.in_(customer.scalar_subquery()))
        if selection.get("plans"):
            theirs = theirs.where(Order.plan.in_(selection["plans"]))
        conditions.append(Invoice.order_id.in_(theirs))
    elif selection.get("plans"):
        order = select(Order.id).where(Order.id == Invoice.order_id, Order.plan.in_(selection["plans"]))
        conditions.append(order.exists())
    return conditions


def _ids(selection: dict) -> Select:
    return select(Invoice.id).where(*_filters(selection)).order_by(Invoice.id)


def select_invoices(
    session: Session,
    actor: Actor,
    *,
    since: date | str | None = None,
    until: date | str | None = None,
    plans: Iterable[str] | None = None,
    customer: str | None = None,
    number_from: str | None = None,
    number_to: str | None = None,
    numbers: Iterable[str] | None = None,
) -> Chosen:
    """Validate filters and count the matching invoices in the database; pasted numbers not found are listed."""
    require(actor, Action.READ_BILLS)
    selection: dict = {}
    since_d, until_d = _as_date(since), _as_date(until)
    if since_d and until_d and since_d > until_d:
        raise BillingError("The start date is after the end date.")
    if since_d:
        selection["since"] = since_d.isoformat()
    if until_d:
        selection["until"] = until_d.isoformat()
    if plans:
        selection["plans"] = sorted({str(getattr(p, "value", p)).strip().lower() for p in plans if str(p).strip()})
    if customer and customer.strip():
        if len(customer.strip()) > EMAIL_MAX_CHARS:
            raise BillingError(f"A customer is given by its id or email, at most {EMAIL_MAX_CHARS} characters.")
        selection["customer"] = customer.strip()
    if number_from and number_from.strip():
        selection["number_from"] = number_from.strip()
    if number_to and number_to.strip():
        selection["number_to"] = number_to.strip()
    invalid: list[str] = []
    if numbers is not None:
        wanted = list(dict.fromkeys(n.strip() for n in numbers if n and n.strip()))
        found: set[str] = set()
        for i in range(0, len(wanted), 1000):
            part = wanted[i : i + 1000]
            found.update(session.scalars(select(Invoice.number).where(Invoice.number.in_(part))))
        invalid = [n for n in wanted if n not in found]
        selection["numbers"] = [n for n in wanted if n in found]
    selection["max_id"] = session.scalar(select(func.coalesce(func.max(Invoice.id), 0)))
    if set(selection) <= {"since", "until", "plans", "max_id"}:
        count = _counted_by_totals(session, since_d, until_d, selection.get("plans"))
    else:
        count = session.scalar(select(func.count()).select_from(_ids(selection).order_by(None).subquery()))
    return Chosen(selection, count or 0, invalid)


def _counted_by_totals(session: Session, since: date | None, until: date | None, plans: list[str] | None) -> int:
    """A selection by issue days and plans, counted from the bills totals (a few thousand rows, kept by
    issuing) instead of the documents: every kind, sandbox included, as ``_filters`` selects them."""
    stmt = select(func.coalesce(func.sum(BillsDaily.documents), 0))
    if since:
        stmt = stmt.where(BillsDaily.day >= since)
    if until:
        stmt = stmt.where(BillsDaily.day <= until)
    if plans:
        stmt = stmt.where(BillsDaily.plan.in_(plans))
    return int(session.scalar(stmt))


def _id_pages(session: Session, selection: dict, *, job_id: int | None = None) -> Iterator[list[int]]:
    """Selected ids in ascending pages (constant memory); with ``job_id``, only those the job has not done."""
    last = 0
    while True:
        stmt = _ids(selection).where(Invoice.id > last)
        if job_id is not None:
            done = exists().where(InvoiceFile.job_id == job_id, InvoiceFile.invoice_id == Invoice.id)
            stmt = stmt.where(~done)
        ids = list(session.scalars(stmt.limit(ID_PAGE)))
        if not ids:
            return
        yield ids
        last = ids[-1]


def _documents(session: Session, ids: list[int]) -> list[tuple[Invoice, render.InvoiceDocument]]:
    original = aliased(Invoice)
    rows = session.execute(
        select(Invoice, Order, original.number)
        .join(Order, Order.id == Invoice.order_id)
        .outerjoin(original, original.id == Invoice.refers_to_id)
        .where(Invoice.id.in_(ids))
        .order_by(Invoice.id)
    ).all()
    return [(inv, render.InvoiceDocument.of(inv, order, refers)) for inv, order, refers in rows]


# --- dry run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    count: int
    sampled: int
    changed_in_sample: int
    estimated_changed: int
    seconds_per_invoice: float
    estimated_seconds: float
    invalid_numbers: list[str]


def dry_run(
    session: Session,
    actor: Actor,
    chosen: Chosen,
    *,
    sample: int = 20,
    workers: int = 2,
    settings: Settings,
) -> DryRun:
    """How many invoices, how many would come out different from their latest file, and how long it takes."""
    require(actor, Action.READ_BILLS)
    ids = list(session.scalars(_ids(chosen.selection).limit(sample)))
    changed, seconds = 0, 0.0
    for invoice, doc in _documents(session, ids):
        start = time.perf_counter()
        data = render.render_invoice(
            doc,
            paper=settings.invoice_paper,
            logo=settings.invoice_logo,
            einvoice_format=settings.einvoice_format(doc.buyer),
        )
        seconds += time.perf_counter() - start
        latest = storage._latest_file(session, invoice.id)
        if latest is None or latest.sha256 != hashlib.sha256(data).hexdigest():
            changed += 1
    per = seconds / len(ids) if ids else 0.0
    return DryRun(
        count=chosen.count,
        sampled=len(ids),
        changed_in_sample=changed,
        estimated_changed=round(chosen.count * changed / len(ids)) if ids else 0,
        seconds_per_invoice=per,
        estimated_seconds=chosen.count * per / max(1, workers),
        invalid_numbers=chosen.invalid_numbers,
    )


# --- jobs -----------------------------------------------------------------------------------------


def start_job(session: Session, actor: Actor, chosen: Chosen, reason: str, *, paper: str = "A4") -> RegenerationJob:
    """Record a regeneration job for the selection (in the caller's transaction)."""
    require(actor, Action.REGENERATE_INVOICES)
    reason = audit.reason_given(reason, "Give a reason for regenerating invoices; it is stored with every new version.")
    if paper not in render.PAPERS:
        raise BillingError(f"Paper must be one of {', '.join(render.PAPERS)}.")
    if chosen.count == 0:
        raise BillingError("The selection holds no invoices; nothing to regenerate.")
    job = RegenerationJob(
        created_by=actor.email,
        created_role=actor.role,
        reason=reason.strip(),
        selection=chosen.selection,
        paper=paper,
        total=chosen.count,
        done=0,
        status=RegenerationStatus.RUNNING,
    )
    session.add(job)
    session.flush()
    audit.record(
        session, actor, "invoices.regenerate.start", "regeneration_job", job.id, reason=job.reason,
        after={"selection": chosen.selection, "total": chosen.count, "paper": paper},
    )  # fmt: skip
    return job


_worker_settings: tuple[Store, str, str | None] | None = None


def _warm(store: Store, paper: str, logo: str | None) -> None:
    """Worker start-up: parse the fonts once for all the invoices this process will render."""
    global _worker_settings
    _worker_settings = (store, paper, logo)
    fonts.parsed()
    # The parsed fonts are ~160,000 objects that live as long as the worker: out of the collector's
    # sight, a full collection costs microseconds instead of ~80 ms (every few dozen invoices).
    gc.freeze()


def _render_and_write(items: list[tuple[render.InvoiceDocument, str, str]]) -> list[tuple[int, str, str, int]]:
    """Render and write (not yet synced: the main process syncs once per chunk) some invoices of a chunk,
    each in its buyer's e-invoice format (a "facturx+ubl" buyer also gets a UBL file beside the PDF).

    Only (invoice id, path, SHA-256, size) goes back to the main process, never the PDF bytes.
    """
    store, paper, logo = _worker_settings
    out = []
    for doc, path, fmt in items:
        data = render.render_invoice(doc, paper=paper, logo=logo, einvoice_format=fmt)
        sha256 = hashlib.sha256(data).hexdigest()
        key = store.version_key(path, sha256)
        store.put(key, data, sha256, durable=False)
        if fmt == "facturx+ubl":  # the buyer's UBL file, beside the PDF under the same key
            ubl = einvoice.ubl_xml(doc)
            store.put(einvoice.ubl_path(key), ubl, hashlib.sha256(ubl).hexdigest(), durable=False)
        out.append((doc.invoice_id, key, sha256, len(data)))
    store.flush()  # a bucket's uploads of this part, still in this process's threads
    return out


@dataclass(frozen=True)
class _Item:
    """One invoice of a chunk as the batch needs it: what to print, where its files go, its template."""

    doc: render.InvoiceDocument
    series: str
    template_version: str


def _items(session: Session, ids: list[int]) -> list[_Item]:
    """The chunk's invoices read as plain columns (no ORM objects: several times cheaper)."""
    if not ids:
        return []
    original = aliased(Invoice)
    rows = session.execute(
        select(
            Invoice.id, Invoice.number, Invoice.kind, Invoice.issued_at, Invoice.currency, Invoice.subtotal_cents,
            Invoice.fee_cents, Invoice.tax_cents, Invoice.total_cents, Invoice.seller, Invoice.buyer, Invoice.lines,
            Order.paid_at, Order.method, Order.provider_ref, original.number, Invoice.series, Invoice.template_version,
        )
        .join(Order, Order.id == Invoice.order_id)
        .outerjoin(original, original.id == Invoice.refers_to_id)
        .where(Invoice.id.in_(ids))
        .order_by(Invoice.id)
    )  # fmt: skip
    items = []
    for (iid, number, kind, issued, currency, sub, fee, tax, total, seller, buyer, lines,
         paid_at, method, ref, refers, series, template) in rows:  # fmt: skip
        doc = render.InvoiceDocument(
            invoice_id=iid, number=number, kind=str(getattr(kind, "value", kind)), issued_at=issued,
            currency=currency, subtotal_cents=sub, fee_cents=fee, tax_cents=tax, total_cents=total,
            seller=dict(seller), buyer=dict(buyer), lines=list(lines),
            payment=render.Payment(paid_at, str(getattr(method, "value", method)), ref), refers_to=refers,
            template_version=str(template),
        )  # fmt: skip
        items.append(_Item(doc, series, template))
    return items


def _file_template(template_version: str, fmt: str) -> str:
    """What a file row records of how it was drawn: the invoice's template, the layout, the e-invoice format."""
    return f"{template_version}/{render.RENDER_VERSION}" + ("" if fmt == "pdf" else f"/{fmt}")


def _chunks(reader: Session, selection: dict, job_id: int) -> Iterator[list[int]]:
    for page in _id_pages(reader, selection, job_id=job_id):
        reader.rollback()
        for start in range(0, len(page), CHUNK):
            yield page[start : start + CHUNK]


def run_job(
    database: Database,
    actor: Actor,
    job_id: int,
    *,
    workers: int = 2,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    settings: Settings,
) -> RegenerationJob:
    """Render every invoice of the job not yet done; resumable after any crash, cancellable between chunks.

    A pipeline: while the workers render and write one chunk, the main process reads the next
    chunk's invoices (plain facts that never change, so no lock is needed to read them early).
    Each chunk then takes its locks and version numbers, and records its rows, in one transaction.
    ``actor`` is whoever runs or resumes it: the audit events name them.
    """
    require(actor, Action.REGENERATE_INVOICES)
    root = storage.store_for(settings)
    logo = str(settings.invoice_logo) if settings.invoice_logo else None
    selection, paper, reason = _running(database, job_id)
    fonts.parsed()  # parsed before the workers fork, so they share the parsed tables
    context = get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_warm, initargs=(root, paper, logo))
    try:
        with database.session() as reader:
            chunks = _chunks(reader, selection, job_id)
            ids = next(chunks, None)
            items = _items(reader, ids or [])
            reader.rollback()
            while ids:
                if should_stop and should_stop():
                    return _close(database, job_id, RegenerationStatus.CANCELLED, actor, root)
                done, total, ids, items = _run_chunk(
                    database, reader, job_id, ids, items, chunks, pool, reason, root, settings
                )
                if progress:
                    progress(done, total)
    except BaseException as exc:
        if isinstance(exc, Exception):
            error = shown_to_people(exc, f"regenerating the invoices of job {job_id}")
            _close(database, job_id, RegenerationStatus.FAILED, actor, root, error=error[:2000])
        raise
    finally:
        pool.shutdown(cancel_futures=True)
    return _close(database, job_id, RegenerationStatus.FINISHED, actor, root)


def _running(database: Database, job_id: int) -> tuple[dict, str, str]:
    """The job's selection, paper and reason; it must be running."""
    with database.session() as session:
        job = session.get(RegenerationJob, job_id)
        if job is None:
            raise NotFound(f"No regeneration job {job_id}.")
        if job.status != RegenerationStatus.RUNNING:
            raise StateConflict(f"Job {job_id} is {job.status.value}; only a running job can be run or resumed.")
        return job.selection, job.paper, job.reason


def _run_chunk(
    database: Database,
    reader: Session,
    job_id: int,
    ids: list[int],
    items: list[_Item],
    chunks: Iterator[list[int]],
    pool: ProcessPoolExecutor,
    reason: str,
    root: Store,
    settings: Settings,
) -> tuple[int, int, list[int] | None, list[_Item]]:
    """One chunk in one transaction; returns the job's progress and the next chunk, read meanwhile.

    Durability is per chunk: the workers write each file atomically (temp file, rename) without
    fsync, and one ``storage.sync`` flushes them all before the rows commit. A crash before the
    commit leaves files that are no versions (no row): ``verify`` never looks at them, and the
    next run takes the same version numbers and replaces them.
    """
    with database.session() as session, transaction(session):
        created_by = session.scalar(select(RegenerationJob.created_by).where(RegenerationJob.id == job_id))
        storage._lock_invoices(session, ids)
        already = set(
            session.scalars(
                select(InvoiceFile.invoice_id).where(InvoiceFile.job_id == job_id, InvoiceFile.invoice_id.in_(ids))
            )
        )
        items = [item for item in items if item.doc.invoice_id not in already]
        versions = storage._next_versions(session, [item.doc.invoice_id for item in items])
        formats = {item.doc.invoice_id: settings.einvoice_format(item.doc.buyer) for item in items}
        template = {i.doc.invoice_id: _file_template(i.template_version, formats[i.doc.invoice_id]) for i in items}
        work = [
            (i.doc, f"{i.series}/{i.doc.number}/v{versions[i.doc.invoice_id]}.pdf", formats[i.doc.invoice_id])
            for i in items
        ]
        pending = [pool.submit(_render_and_write, work[i : i + PART]) for i in range(0, len(work), PART)]
        next_ids = next(chunks, None)
        next_items = _items(reader, next_ids or [])
        reader.rollback()
        rows = []
        for future in pending:
            for invoice_id, path, sha, length in future.result():
                rows.append(
                    {
                        "invoice_id": invoice_id,
                        "version": versions[invoice_id],
                        "path": path,
                        "sha256": sha,
                        "size": length,
                        "template_version": template[invoice_id],
                        "created_by": created_by,
                        "reason": reason,
                        "job_id": job_id,
                    }
                )
        if rows:
            root.sync()
            session.execute(insert(InvoiceFile), rows)
        # Counted in the database: chunks of one job may commit side by side on several workers.
        done, total = session.execute(
            update(RegenerationJob)
            .where(RegenerationJob.id == job_id)
            .values(done=RegenerationJob.done + len(rows))
            .returning(RegenerationJob.done, RegenerationJob.total)
        ).one()
        return done, total, next_ids, next_items


def _close(
    database: Database, job_id: int, status: RegenerationStatus, actor: Actor, root: Store, error: str | None = None
) -> RegenerationJob:
    """End the job. A cancel that landed while the last chunk was in flight wins over "finished": the
    job ends cancelled with what it did. A finished or cancelled job gets a ZIP of the files it wrote."""
    with database.session() as session:
        now, done = session.execute(
            select(RegenerationJob.status, RegenerationJob.done).where(RegenerationJob.id == job_id)
        ).one()
    if now == RegenerationStatus.CANCELLED and status == RegenerationStatus.FINISHED:
        status = RegenerationStatus.CANCELLED
    zipped = status == RegenerationStatus.FINISHED or (status == RegenerationStatus.CANCELLED and done)
    zip_path = write_zip(database, actor, job_id, root) if zipped else None
    with database.session() as session, transaction(session):
        job = session.get(RegenerationJob, job_id, with_for_update=True)
        if job.status == RegenerationStatus.CANCELLED and status == RegenerationStatus.FINISHED:
            status = RegenerationStatus.CANCELLED  # cancelled while the ZIP was written
        before = {"status": job.status.value, "done": job.done}
        job.status, job.finished_at, job.error = status, utcnow(), error
        job.zip_path = zip_path
        audit.record(
            session, actor, f"invoices.regenerate.{status.value}", "regeneration_job", job_id, reason=job.reason,
            before=before, after={"status": status.value, "done": job.done, "total": job.total, "error": error},
        )  # fmt: skip
    return job


def write_zip(database: Database, actor: Actor, job_id: int, root: Path | Store) -> str:
    """All files of the job in one ZIP, streamed file by file into the store (a temp file moved into place,
    or a multipart upload): one file and one upload part in memory, never the archive. Every file is read
    through ``storage.read_file``, so a missing or altered one fails the ZIP instead of entering it."""
    require(actor, Action.REGENERATE_INVOICES)
    store = storage.as_store(root)
    relative = f"jobs/job-{job_id}.zip"
    with store.writer(relative) as out, database.session() as session:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
            last = 0
            while True:
                files = list(
                    session.scalars(
                        select(InvoiceFile)
                        .where(InvoiceFile.job_id == job_id, InvoiceFile.id > last)
                        .order_by(InvoiceFile.id)
                        .limit(ID_PAGE)
                    )
                )
                if not files:
                    break
                for file, read in _read_ahead(files, store):
                    archive.writestr(file.path, read.result())
                    if file.template_version.endswith("/facturx+ubl"):  # the buyer's UBL file, beside the PDF
                        ubl = einvoice.ubl_path(file.path)
                        archive.writestr(ubl, store.get(ubl))
                last = files[-1].id
                session.expunge_all()
    return relative


def _read_ahead(files: Iterable[InvoiceFile], store: Store, window: int = 16) -> Iterator[tuple[InvoiceFile, Future]]:
    """Each file with the read of its checked bytes, in order, up to ``window`` reads in flight: a bucket
    answers each GET in tens of milliseconds, so one at a time a year's ZIP or verify would take hours."""
    with ThreadPoolExecutor(window, thread_name_prefix="invoice-read") as threads:
        ahead: deque = deque()
        for file in files:
            ahead.append((file, threads.submit(storage.read_file, file, store)))
            if len(ahead) >= window:
                yield ahead.popleft()
        while ahead:
            yield ahead.popleft()


def job_files(session: Session, actor: Actor, job_id: int) -> list[InvoiceFile]:
    require(actor, Action.READ_BILLS)
    return list(session.scalars(select(InvoiceFile).where(InvoiceFile.job_id == job_id).order_by(InvoiceFile.id)))


# --- verify ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    missing: list[str]
    altered: list[str]
    mismatched: list[str] = field(default_factory=list)  # Factur-X files whose XML totals differ from the invoice's

    @property
    def ok(self) -> bool:
        return not self.missing and not self.altered and not self.mismatched


def verify(session: Session, actor: Actor, chosen: Chosen | None = None, *, root: Path | Store) -> VerifyReport:
    """Re-hash every stored version of the selected invoices (all when no selection); of a Factur-X file,
    also check that its embedded XML states the invoice's totals (those the PDF prints)."""
    require(actor, Action.READ_BILLS)
    root = storage.as_store(root)
    selection = chosen.selection if chosen else {}
    checked, missing, altered, mismatched = 0, [], [], []
    for ids in _id_pages(session, selection):
        totals = {
            row.id: {"net_cents": row.subtotal_cents + row.fee_cents, "tax_cents": row.tax_cents,
                     "total_cents": row.total_cents}
            for row in session.execute(
                select(Invoice.id, Invoice.subtotal_cents, Invoice.fee_cents, Invoice.tax_cents, Invoice.total_cents)
                .where(Invoice.id.in_(ids))
            )
        }  # fmt: skip
        files = session.scalars(select(InvoiceFile).where(InvoiceFile.invoice_id.in_(ids)).order_by(InvoiceFile.id))
        for file, read in _read_ahead(files, root):
            checked += 1
            try:
                data = read.result()
            except storage.FileMissing:
                missing.append(file.path)
                continue
            except storage.FileAltered:
                altered.append(file.path)
                continue
            xml = einvoice.embedded_xml(data)
            if xml is not None and einvoice.totals_of(xml) != totals[file.invoice_id]:
                mismatched.append(file.path)
    return VerifyReport(checked, missing, altered, mismatched)
