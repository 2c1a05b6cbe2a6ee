"""Stored invoice PDFs: each version a file written atomically, recorded with its SHA-256.

Layout under the storage directory: ``<series>/<number>/v<version>.pdf``. The database row is the
truth: a file becomes a version only when its row commits, and a committed version's file is
never written again. A file whose bytes no longer match its hash is reported, never served.
Storing a version is a state change: it takes the actor, checks their role and writes an audit event.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError, NotFound
from billing_core.core.models import Invoice, InvoiceFile
from billing_core.invoices import render

ISSUED_REASON = "issued copy, stored at first download"


class FileIntegrityError(BillingError):
    """A stored invoice file is missing or its bytes do not match the recorded hash."""


class FileMissing(FileIntegrityError):
    """The recorded version has no file."""


class FileAltered(FileIntegrityError):
    """The file's bytes differ from the recorded hash."""


def storage_root(settings: Settings | None = None) -> Path:
    return Path((settings or Settings()).invoice_dir)


def relative_path(invoice: Invoice, version: int) -> str:
    return f"{invoice.series}/{invoice.number}/v{version}.pdf"


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one, never a part.

    ``durable=False`` leaves the flush to disk to the caller, who must call ``sync`` before anything
    (a database row) depends on the file surviving a power cut: a batch syncs once per chunk.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def sync(root: Path) -> None:
    """Flush every file and directory written under ``root`` (its whole file system) to disk.

    One ``syncfs`` costs about what one file's fsync does, so a batch writes a chunk of files with
    ``durable=False`` and calls this once before the chunk's rows commit.
    """
    fd = os.open(root, os.O_RDONLY)
    try:
        if _libc is None or _libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _load_libc():
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.syncfs.argtypes = [ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()


def _lock_invoices(session: Session, invoice_ids: list[int]) -> None:
    """Serialise version numbering per invoice: row locks on PostgreSQL (SQLite's write lock does it there)."""
    if session.get_bind().dialect.name == "postgresql" and invoice_ids:
        session.execute(select(Invoice.id).where(Invoice.id.in_(invoice_ids)).order_by(Invoice.id).with_for_update())


def _next_versions(session: Session, invoice_ids: list[int]) -> dict[int, int]:
    """The next free version of each invoice; call with the invoices locked (``_lock_invoices``)."""
    rows = session.execute(
        select(InvoiceFile.invoice_id, func.max(InvoiceFile.version))
        .where(InvoiceFile.invoice_id.in_(invoice_ids))
        .group_by(InvoiceFile.invoice_id)
    )
    latest = {invoice_id: version for invoice_id, version in rows}
    return {invoice_id: latest.get(invoice_id, 0) + 1 for invoice_id in invoice_ids}


def store_version(
    session: Session,
    actor: Actor,
    invoice: Invoice,
    pdf_bytes: bytes,
    reason: str,
    *,
    root: Path | None = None,
    job_id: int | None = None,
) -> InvoiceFile:
    """Write the next version of ``invoice`` and add its row and audit event to the caller's transaction."""
    require(actor, Action.STORE_INVOICE_FILE)
    if not reason or not reason.strip():
        raise BillingError("Give a reason for storing a new invoice file.")
    root = root or storage_root()
    _lock_invoices(session, [invoice.id])
    version = _next_versions(session, [invoice.id])[invoice.id]
    path = relative_path(invoice, version)
    write_atomic(root / path, pdf_bytes)
    file = InvoiceFile(
        invoice_id=invoice.id,
        version=version,
        path=path,
        sha256=hashlib.sha256(pdf_bytes).hexdigest(),
        size=len(pdf_bytes),
        template_version=f"{invoice.template_version}/{render.RENDER_VERSION}",
        created_by=actor.email,
        reason=reason.strip(),
        job_id=job_id,
    )
    session.add(file)
    session.flush()
    audit.record(
        session,
        actor,
        "invoice.store_file",
        "invoice",
        invoice.number,
        reason=file.reason,
        after={"version": version, "path": path, "sha256": file.sha256, "size": file.size, "job": job_id},
    )
    return file


def _latest_file(session: Session, invoice_id: int) -> InvoiceFile | None:
    stmt = select(InvoiceFile).where(InvoiceFile.invoice_id == invoice_id).order_by(InvoiceFile.version.desc())
    return session.scalars(stmt.limit(1)).first()


def files_for(session: Session, actor: Actor, invoice_id: int) -> list[InvoiceFile]:
    """Every stored version of the invoice's PDF, oldest first."""
    require(actor, Action.READ_BILLS)
    stmt = select(InvoiceFile).where(InvoiceFile.invoice_id == invoice_id).order_by(InvoiceFile.version)
    return list(session.scalars(stmt))


def read_file(file: InvoiceFile, root: Path | None = None) -> bytes:
    """The stored bytes, checked against the recorded hash."""
    path = (root or storage_root()) / file.path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileMissing(f"The file of version {file.version} ({file.path}) is missing.") from None
    if hashlib.sha256(data).hexdigest() != file.sha256:
        raise FileAltered(f"The file of version {file.version} ({file.path}) was altered: its hash differs.")
    return data


def issued_pdf(
    database: Database, actor: Actor, invoice_id: int, *, settings: Settings | None = None
) -> tuple[InvoiceFile, bytes]:
    """The invoice's latest stored PDF; the first request renders and stores version 1 (as ``actor``)."""
    require(actor, Action.READ_BILLS)
    settings = settings or Settings()
    root = storage_root(settings)
    with database.session() as session:
        file = _latest_file(session, invoice_id)
        if file is not None:
            return file, read_file(file, root)
        require(actor, Action.STORE_INVOICE_FILE)
        with transaction(session):
            invoice = session.get(Invoice, invoice_id)
            if invoice is None:
                raise NotFound(f"No invoice with id {invoice_id}.")
            _lock_invoices(session, [invoice_id])
            file = _latest_file(session, invoice_id)  # someone else may have stored it meanwhile
            if file is not None:
                return file, read_file(file, root)
            data = render.render_invoice(
                render._document_for(session, invoice), paper=settings.invoice_paper, logo=settings.invoice_logo
            )
            file = store_version(session, actor, invoice, data, ISSUED_REASON, root=root)
        return file, data
