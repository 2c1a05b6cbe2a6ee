"""Issue the invoice for a paid order, freezing seller, buyer, lines and amounts as they are now."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy.orm import Session

from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.errors import BillingError
from billing_core.core.models import Customer, Invoice, InvoiceKind, Order
from billing_core.invoices import totals
from billing_core.invoices.numbering import _allocate_number, series_name

TEMPLATE_VERSION = "2"  # 2: a credit note's line is for the customer; the refund reason stays in the audit log


def buyer_snapshot(customer: Customer) -> dict:
    return {
        "customer": customer.public_id,
        "name": customer.name,
        "email": customer.email,
        "company": customer.company,
        "country": customer.country,
        "tax_id": customer.tax_id,
        "address": customer.address,
    }


def invoice_lines(order: Order, plan_name: str) -> list[dict]:
    return [
        {
            "description": f"AI model credits top-up ({plan_name})",
            "quantity": money.format_plain(order.credits),
            "unit": "credit",
            "amount_cents": order.amount_cents,
        },
        {
            "description": f"Payment processing fee ({order.method.value})",
            "quantity": "1",
            "unit": "fee",
            "amount_cents": order.fee_cents,
        },
    ]


def credit_note_lines(invoice_number: str, amount_cents: int) -> list[dict]:
    """The one line of a credit note, as the customer reads it (why staff refunded is in the audit log)."""
    return [
        {
            "description": f"Refund of invoice {invoice_number}",
            "quantity": "1",
            "unit": "refund",
            "amount_cents": -amount_cents,
        }
    ]


def _issue_invoice(session: Session, order: Order, customer: Customer, settings: Settings, plan_name: str) -> Invoice:
    """Allocate the next number of the order's series and add the invoice (and its bills totals) to this transaction."""
    assert order.paid_at is not None, "an invoice is issued for a paid order"
    template = settings.sandbox_invoice_series if order.sandbox else settings.invoice_series
    series = series_name(template, order.paid_at)
    sequence, number = _allocate_number(session, series)
    invoice = Invoice(
        number=number,
        series=series,
        sequence=sequence,
        kind=InvoiceKind.INVOICE,
        order_id=order.id,
        issued_at=order.paid_at,
        currency=order.currency,
        subtotal_cents=order.amount_cents,
        fee_cents=order.fee_cents,
        tax_cents=0,
        total_cents=order.total_cents,
        seller=asdict(settings.company),
        buyer=buyer_snapshot(customer),
        lines=invoice_lines(order, plan_name),
        template_version=TEMPLATE_VERSION,
        sandbox=order.sandbox,
    )
    if invoice.subtotal_cents + invoice.fee_cents + invoice.tax_cents != order.total_cents:
        # Raised inside the completion's transaction: the order is not marked paid without its invoice.
        raise BillingError(
            f"Order {order.public_id}: its amount and fee do not add up to its total, so it cannot be invoiced; "
            "nothing was changed."
        )
    session.add(invoice)
    totals.record(session, invoice, order)
    return invoice


def _issue_credit_note(
    session: Session,
    invoice: Invoice,
    order: Order,
    settings: Settings,
    *,
    amount_cents: int,
    issued_at,
) -> Invoice:
    """A credit note for ``amount_cents`` of ``invoice``: its own number, negative amounts, a pointer back.

    The refunded amount is split between top-up and fee in the proportion the order charged them
    (half-up to the cent on the top-up part; the fee part takes the rest), so the parts always add up.
    """
    template = settings.sandbox_credit_note_series if order.sandbox else settings.credit_note_series
    series = series_name(template, issued_at)
    sequence, number = _allocate_number(session, series)
    subtotal = money.from_decimal(money.to_decimal(amount_cents) * order.amount_cents / order.total_cents)
    fee = amount_cents - subtotal
    note = Invoice(
        number=number,
        series=series,
        sequence=sequence,
        kind=InvoiceKind.CREDIT_NOTE,
        order_id=order.id,
        refers_to_id=invoice.id,
        issued_at=issued_at,
        currency=order.currency,
        subtotal_cents=-subtotal,
        fee_cents=-fee,
        tax_cents=0,
        total_cents=-amount_cents,
        seller=invoice.seller,
        buyer=invoice.buyer,
        lines=credit_note_lines(invoice.number, amount_cents),
        template_version=TEMPLATE_VERSION,
        sandbox=order.sandbox,
    )
    session.add(note)
    totals.record(session, note, order)
    return note
