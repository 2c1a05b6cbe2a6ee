"""The invoice's text layer equals its text: every demo name, company and address, in every script the
fonts cover, comes back exactly from pypdf and from poppler's pdftotext; qpdf finds every file sound."""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from billing_core.demo import fixtures
from billing_core.invoices.render import _Layout, render_invoice
from tests.test_invoice_render import document

# Bidi marks pdftotext puts around a right-to-left line: they say its direction, they are not its text.
_DIRECTION_MARKS = dict.fromkeys(range(0x202A, 0x202F))
_RTL_LETTER = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]+")
_RTL_WORD = re.compile(r"[\u05d0-\u05ea\u0621-\u064a\u064b-\u0652\u0671-\u06d3]+")  # Hebrew and Arabic letters
# Hebrew is covered by the fonts though no demo customer writes it.
HEBREW = [
    {"name": "דוד כהן", "company": "אור טכנולוגיות בע״מ", "address": "רחוב הרצל 12, תל אביב-יפו 6100000, ישראל"},
    {"name": "שרה לוי", "company": None, "address": "שדרות רוטשילד 5, ירושלים"},
]
# Beyond the demo: harakat (marks on letters) and the plain lam-alef ligature. Poppler moves a mark that
# ends a word to its start, so marked text is checked with pypdf only.
ARABIC_MORE = [
    {"name": "مُحَمَّد العَلِيّ", "company": None, "address": "شارعُ النِّيل 7، القاهرة", "marks": True},
    {"name": "سلام الأحمد", "company": "شركة السلام", "address": "شارع السلام 3، الإسكندرية"},
]


def demo_buyers() -> list[dict]:
    """Every first and last name the demo pairs, every company format and stem, every street and city of
    every country a script's customers live in (with one-, two- and three-digit house numbers)."""
    buyers = []
    for script, (_, pattern, firsts, lasts, countries) in fixtures.PEOPLE.items():
        names = [
            pattern.format(f=first, l=last_f if gender == "f" else last_m)
            for (first, _, gender), (last_m, last_f, _) in itertools.product(firsts, lasts)
        ]
        companies, addresses = [], []
        for country in countries:
            cname, address_format, streets, cities, postcode, company_format, _ = fixtures.COUNTRIES[country]
            companies += [company_format.format(s=stem) for stem, _ in fixtures.STEMS[script]]
            for (street, city), n in zip(itertools.product(streets, cities), itertools.cycle((7, 42, 180))):
                digits = iter("123456789012")
                zip_code = "".join(next(digits) if c == "#" else c for c in postcode)
                address = address_format.format(n=n, street=street, city=city, zip=zip_code)
                if not address.endswith(cname) and country not in {"CN", "JP", "KR", "TW", "HK"}:
                    address += f", {cname}"
                addresses.append((address, country))
        for i in range(max(len(names), len(companies), len(addresses))):
            address, country = addresses[i % len(addresses)]
            company = companies[i % len(companies)]
            buyers.append({"script": script, "name": names[i % len(names)], "company": company, "address": address,
                           "country": country})  # fmt: skip
    return buyers


def printed_lines(buyer: dict) -> list[str]:
    """What the invoice prints for the buyer: name, company, the address cut at its ", "."""
    return [text for text, _ in _Layout.party_lines(buyer, "Tax ID") if text]


def render_buyer(buyer: dict) -> bytes:
    doc = document(buyer["name"])
    party = {**doc.buyer, "name": buyer["name"], "company": buyer["company"], "address": buyer["address"]}
    party["country"] = buyer.get("country", doc.buyer["country"])
    return render_invoice(type(doc)(**{**doc.__dict__, "buyer": party}))


def pypdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def poppler_text(path: Path) -> str:
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, check=True)
    return out.stdout.translate(_DIRECTION_MARKS)


def poppler_can_read(line: str) -> list[str]:
    """What pdftotext must give back of a printed line: all of it, except where a right-to-left line also
    holds digits or punctuation. Poppler takes a page's reading direction from most of its characters (left
    to right on these invoices) and then writes the sections such characters cut a right-to-left line into
    in their visual order from the left ("شارع الشيخ زايد 7، دبي" comes back as "دبي،7 شارع الشيخ زايد"),
    so of such a line it can only give back each word exactly."""
    if _RTL_LETTER.search(line) and _RTL_LETTER.sub("", line).strip(" "):
        return _RTL_WORD.findall(line)
    return [line]


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (make test installs it with apt-get: poppler-utils, qpdf)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


BUYERS = demo_buyers() + [{**b, "script": "hebrew"} for b in HEBREW] + [{**b, "script": "arabic"} for b in ARABIC_MORE]


def test_the_fixtures_cover_every_script_of_the_demo_and_its_arabic_ligatures():
    scripts = {b["script"] for b in BUYERS}
    assert scripts == set(fixtures.SCRIPTS) | {"hebrew"}
    arabic = [line for b in BUYERS if b["script"] == "arabic" for line in printed_lines(b)]
    for ligature in ("لى", "لأ", "لإ", "لا"):
        assert any(ligature in line for line in arabic), ligature


@pytest.mark.parametrize("script", sorted(set(fixtures.SCRIPTS) | {"hebrew"}))
def test_every_name_company_and_address_comes_back_exactly_from_pypdf_and_pdftotext(script, tmp_path):
    _tool("pdftotext")
    qpdf = _tool("qpdf")
    wrong = []
    for i, buyer in enumerate(b for b in BUYERS if b["script"] == script):
        pdf = render_buyer(buyer)
        path = tmp_path / f"{i}.pdf"
        path.write_bytes(pdf)
        checked = subprocess.run([qpdf, "--check", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, (buyer, checked.stdout, checked.stderr)
        by_pypdf, by_poppler = pypdf_text(pdf), poppler_text(path)
        for line in printed_lines(buyer):
            if line not in by_pypdf:
                wrong.append(("pypdf", line, by_pypdf))
            for expected in [] if buyer.get("marks") else poppler_can_read(line):
                if expected not in by_poppler:
                    wrong.append(("pdftotext", expected, by_poppler))
    assert not wrong, wrong[:5]
