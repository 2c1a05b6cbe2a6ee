"""Invoices: gapless numbering and issuing with frozen snapshots (rendering comes later)."""

from billing_core.invoices.issuing import TEMPLATE_VERSION, issue_credit_note
from billing_core.invoices.numbering import series_name

__all__ = ["TEMPLATE_VERSION", "issue_credit_note", "series_name"]
