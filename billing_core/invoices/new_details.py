"""Issued documents re-rendered with a customer's new billing details, as an explicit, audited step.

An invoice never changes: its row keeps the buyer frozen at issue, and its first stored file shows
that buyer. After an edit of the billing details (customers.update_billing_details), finance may add
a new version of each of the customer's documents showing the customer's details as they are now,
beside the old versions (storage.store_version, each with its own audit event), and one event on the
customer says which documents were regenerated, with which details, why and by whom.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError, NotFound
from billing_core.core.models import AuditEvent, Customer, Invoice, InvoiceKind, Order, Refund
from billing_core.invoices import render, storage
from billing_core.invoices.issuing import buyer_snapshot

ACTION = "customer.regenerate_invoices"
CHUNK = 25  # documents per transaction: rendered before it opens, stored inside it
MAX_DOCUMENTS = 5_000
NUMBERS_IN_AUDIT = 200


@dataclass(frozen=True)
class Stale:
    """The customer's documents that show other billing details than the customer's now."""

    customer: str
    numbers: list[str]
    details: dict  # the buyer the new versions would show


@dataclass(frozen=True)
class Regenerated:
    customer: str
    numbers: list[str]  # the documents that got a new version
    first_versions: int  # documents whose issued copy had never been stored, so it was stored first


def _customer(session: Session, public_id: str) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.public_id == (public_id or "").strip().lower()))
    if customer is None:
        raise NotFound(f"There is no customer {(public_id or '')[:40]}.")
    return customer


def _documents(session: Session, customer_id: int) -> list[Invoice]:
    """The customer's invoices and credit notes, oldest first, found through their orders by index."""
    invoices = select(Invoice.id).join(Order, Order.id == Invoice.order_id)
    invoices = invoices.where(Order.customer_id == customer_id, Invoice.kind == InvoiceKind.INVOICE)
    notes = (
        select(Invoice.id).join(Refund, Refund.credit_note_id == Invoice.id).join(Order, Order.id == Refund.order_id)
    )
    notes = notes.where(Order.customer_id == customer_id)
    ids = invoices.union_all(notes).subquery()
    stmt = select(Invoice).where(Invoice.id.in_(select(ids.c.id))).order_by(Invoice.id).limit(MAX_DOCUMENTS + 1)
    found = list(session.scalars(stmt))
    if len(found) > MAX_DOCUMENTS:
        raise BillingError(f"The customer has more than {MAX_DOCUMENTS:,} documents; use a batch regeneration job.")
    return found


def _last_regenerated_details(session: Session, public_id: str) -> dict | None:
    event = session.scalar(
        select(AuditEvent)
        .where(AuditEvent.entity_type == "customer", AuditEvent.entity_id == public_id, AuditEvent.action == ACTION)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(1)
    )
    return (event.after or {}).get("details") if event is not None else None


def _shown(buyer: dict | None, details: dict) -> dict:
    """The frozen buyer's values of the fields a snapshot holds (older snapshots may lack some)."""
    return {field: (buyer or {}).get(field) for field in details}


def stale_documents(session: Session, actor: Actor, public_id: str) -> Stale:
    """The documents a regeneration would give a new version: those whose frozen buyer is not the
    customer's details now, unless they were already regenerated with exactly these details."""
    require(actor, Action.READ_BILLS)
    customer = _customer(session, public_id)
    details = buyer_snapshot(customer)
    if _last_regenerated_details(session, customer.public_id) == details:
        return Stale(customer.public_id, [], details)
    numbers = [d.number for d in _documents(session, customer.id) if _shown(d.buyer, details) != details]
    return Stale(customer.public_id, numbers, details)


def regenerate_with_new_details(
    database: Database,
    actor: Actor,
    settings: Settings,
    public_id: str,
    *,
    reason: str,
    progress: Callable[[int, int], None] | None = None,
) -> Regenerated:
    """Add a version showing the customer's details now to each stale document (``stale_documents``).

    A document whose issued copy was never stored gets that copy first (version 1, the frozen buyer),
    so the old details always stay beside the new. Rendering happens outside transactions; each chunk
    of files is stored in one transaction, and the customer's audit event is written with the last.
    """
    require(actor, Action.REGENERATE_INVOICES)
    require(actor, Action.STORE_INVOICE_FILE)
    reason = audit.reason_given(
        reason, "Give a reason for regenerating the documents; it is kept with every new version."
    )
    root = storage.storage_root(settings)
    with database.session() as session:
        stale = stale_documents(session, actor, public_id)
        if not stale.numbers:
            raise BillingError("Every document already shows the customer's billing details; nothing to regenerate.")
        customer = _customer(session, public_id)
        ids = [d.id for d in _documents(session, customer.id) if d.number in set(stale.numbers)]
    first_versions = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with database.session() as session:
            rendered = []
            for invoice_id in chunk:
                invoice = session.get(Invoice, invoice_id)
                issued = render._document_for(session, invoice)
                new = dataclasses.replace(issued, buyer=stale.details)
                old = None
                if storage._latest_file(session, invoice_id) is None:
                    old = render.render_invoice(issued, paper=settings.invoice_paper, logo=settings.invoice_logo)
                pdf = render.render_invoice(new, paper=settings.invoice_paper, logo=settings.invoice_logo)
                rendered.append((invoice_id, old, pdf))
            session.rollback()  # end the reads before the writes
            with transaction(session):
                for invoice_id, old, pdf in rendered:
                    invoice = session.get(Invoice, invoice_id)
                    if old is not None and storage._latest_file(session, invoice_id) is None:
                        storage.store_version(session, actor, invoice, old, storage.ISSUED_REASON, root=root)
                        first_versions += 1
                    storage.store_version(session, actor, invoice, pdf, f"new billing details: {reason}", root=root)
                if start + CHUNK >= len(ids):
                    audit.record(
                        session,
                        actor,
                        ACTION,
                        "customer",
                        stale.customer,
                        reason=reason,
                        after={
                            "details": stale.details,
                            "documents": len(stale.numbers),
                            "numbers": stale.numbers[:NUMBERS_IN_AUDIT],
                        },
                    )
        if progress:
            progress(min(start + CHUNK, len(ids)), len(ids))
    return Regenerated(stale.customer, stale.numbers, first_versions)
