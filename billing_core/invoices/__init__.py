"""Invoices: gapless numbering and issuing with frozen snapshots (rendering comes later)."""

from billing_core.invoices.issuing import TEMPLATE_VERSION, issue_credit_note, issue_invoice
from billing_core.invoices.numbering import allocate_number, series_name

__all__ = ["TEMPLATE_VERSION", "allocate_number", "issue_credit_note", "issue_invoice", "series_name"]
