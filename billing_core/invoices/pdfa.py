"""PDF/A-3b, the archival form of an invoice (ISO 19005-3, level B): fpdf2's compliance mode with XMP
metadata of our own, so that the same invoice still gives the same bytes (fpdf2's own XMP would stamp
the time of rendering as its modification date).

Which invoices are PDF/A is a matter of their template version (``issuing.TEMPLATE_VERSION``): one
issued under template 3 or later renders as PDF/A-3b; an older one keeps its plain PDF on a re-render
unless the caller asks for the new template.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from functools import cache
from html import escape

from fpdf import FPDF
from fpdf.enums import OutputIntentSubType
from fpdf.output import PDFICCProfile
from fpdf.syntax import Name
from fpdf.util import builtin_srgb2014_bytes

COMPLIANCE = "PDF/A-3B"
FIRST_TEMPLATE = 3  # the first template version whose files are PDF/A-3b
PRODUCER = "Billing Ops (fpdf2)"


def is_archival(template_version: str | int | None) -> bool:
    """Whether files of this template version are PDF/A-3b (template 3 onwards)."""
    try:
        return int(str(template_version).split("/", 1)[0]) >= FIRST_TEMPLATE
    except ValueError:
        return False


def xmp(title: str, created: datetime, *, extra_schemas: str = "", extra_properties: str = "") -> str:
    """The document's XMP packet body (fpdf2 wraps it in ``<?xpacket?>``): title, producer, dates and the
    PDF/A identification. ``extra_schemas`` and ``extra_properties`` let Factur-X add its extension schema
    and its own properties."""
    when = (created if created.tzinfo else created.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")
    return f"""<x:xmpmeta xmlns:x="adobe:ns:meta/">
  <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
      <pdfaid:part>3</pdfaid:part>
      <pdfaid:conformance>B</pdfaid:conformance>
    </rdf:Description>
    <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
      <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{escape(title)}</rdf:li></rdf:Alt></dc:title>
    </rdf:Description>
    <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
      <xmp:CreateDate>{when}</xmp:CreateDate>
      <xmp:ModifyDate>{when}</xmp:ModifyDate>
      <xmp:MetadataDate>{when}</xmp:MetadataDate>
      <xmp:CreatorTool>{PRODUCER}</xmp:CreatorTool>
    </rdf:Description>
    <rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
      <pdf:Producer>{PRODUCER}</pdf:Producer>
    </rdf:Description>{extra_schemas}{extra_properties}
  </rdf:RDF>
</x:xmpmeta>"""


@cache
def _srgb_deflated() -> bytes:
    return zlib.compress(builtin_srgb2014_bytes())


def add_output_intent(pdf: FPDF) -> None:
    """The sRGB output intent PDF/A requires, as fpdf2 would add it, with the profile deflated once per
    process instead of once per document (a third of a PDF/A invoice's rendering time otherwise)."""
    profile = PDFICCProfile(contents=b"", n=3, alternate="DeviceRGB")
    profile._contents = _srgb_deflated()
    profile.filter, profile.length = Name("FlateDecode"), len(profile._contents)
    pdf.add_output_intent(
        OutputIntentSubType.PDFA,
        output_condition_identifier="sRGB",
        output_condition="IEC 61966-2-1:1999",
        registry_name="http://www.color.org",
        dest_output_profile=profile,
        info="sRGB2014 (v2)",
    )
