"""Invoices: gapless numbering and issuing with frozen snapshots, rendering, storage, batches."""

from billing_core.invoices.issuing import TEMPLATE_VERSION
from billing_core.invoices.numbering import series_name

__all__ = ["TEMPLATE_VERSION", "series_name"]
