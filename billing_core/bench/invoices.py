"""The invoices suite: batch regeneration end to end on a seeded SQLite database, beside the naive fpdf2 way."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from billing_core.access.roles import Actor, Role
from billing_core.bench.run import DATA_END, Row
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError
from billing_core.core.models import Invoice
from billing_core.invoices import fonts, render
from billing_core.invoices.batch import (
    _documents,
    _ids,
    run_job,
    select_invoices,
    start_job,
)


def _naive_render(doc: render.InvoiceDocument) -> bytes:
    """The baseline: a fresh fpdf2 document with its fonts loaded and fontTools subsetting, per invoice."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    for family, style, file, index in fonts.FONTS:
        pdf.add_font(family, style, fonts.FONT_ROOT / file, collection_font_number=index)
    pdf.set_fallback_fonts(list(fonts.FALLBACKS), exact_match=False)
    pdf.set_creation_date(doc.issued_at)
    pdf.add_page()
    pdf.set_font("sans", "B", 18)
    pdf.cell(0, 9, "INVOICE", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("sans", "", 9)
    texts = [doc.number, str(doc.issued_at.date())]
    texts += [str(v) for v in doc.seller.values() if v] + [str(v) for v in doc.buyer.values() if v]
    texts += [f"{line['description']} {line['quantity']} {line['amount_cents']}" for line in doc.lines]
    texts += [str(doc.subtotal_cents), str(doc.fee_cents), str(doc.tax_cents), str(doc.total_cents)]
    for text in texts:
        pdf.set_text_shaping(render._needs_shaping(text))
        pdf.cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


_BENCH_ACTOR = Actor("bench@localhost", Role.ADMIN, "benchmark")


def invoice_rows(options) -> Iterable:
    """Batch regeneration end to end on a seeded SQLite database, beside the naive fpdf2 way."""
    from billing_core.demo import seeding as demo

    orders = min(getattr(options, "seed_orders", 3_000), 3_000)
    actor = _BENCH_ACTOR
    with tempfile.TemporaryDirectory(prefix="billing-invoices-") as tmp:
        database = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        settings = Settings(database_url=database.url, invoice_dir=Path(tmp) / "files")
        try:
            database.migrate()
            demo.seed(database, orders=orders, seed=3, actor=actor, end=DATA_END)
            with database.session() as session:
                chosen = select_invoices(session, actor)
                sample = [
                    doc for _, doc in _documents(session, list(session.scalars(_ids(chosen.selection).limit(20))))
                ]
                with transaction(session):
                    job_id = start_job(session, actor, chosen, "benchmark").id
            start = time.perf_counter()
            for doc in sample:
                _naive_render(doc)
            baseline = len(sample) / (time.perf_counter() - start)
            figures = _measured_job(database.url, settings.invoice_dir, job_id, "pdf")
            done, rate, peak_mib = figures["done"], figures["rate"], figures["peak_mib"]
            # Factur-X beside plain PDFs over the same 1,000 invoices, alternating, best of two each.
            with database.session() as session:
                numbers = list(session.scalars(select(Invoice.number).order_by(Invoice.id).limit(1_000)))
                thousand = select_invoices(session, actor, numbers=numbers)
            rates: dict[str, float] = {"pdf": 0.0, "facturx": 0.0}
            for fmt in ("pdf", "facturx", "pdf", "facturx"):
                with database.session() as session, transaction(session):
                    job_id = start_job(session, actor, thousand, f"benchmark {fmt}").id
                rates[fmt] = max(rates[fmt], _measured_job(database.url, settings.invoice_dir, job_id, fmt)["rate"])
        finally:
            database.dispose()
    yield Row(
        f"invoice regeneration ({done:,} invoices)", rate, "invoices/s", baseline, "naive fpdf2, fonts per invoice"
    )
    yield Row("invoice regeneration peak worker RSS", peak_mib, "MiB", 1024, "budget 1 GiB")
    yield Row(
        f"Factur-X regeneration ({thousand.count:,} invoices)", rates["facturx"], "invoices/s", rates["pdf"],
        "plain PDF/A, same invoices; target ratio >= 0.80",
    )  # fmt: skip


def _measured_job(url: str, root: Path | str, job_id: int, fmt: str) -> dict:
    """Run a job in a fresh interpreter (its workers fork from a process the size of the app's, not from
    this one after the other suites' seeds, whose pages they would count) and read its figures."""
    job = [url, str(root), str(job_id), "--measure", f"--format={fmt}"]
    command = [sys.executable, "-m", "billing_core", "bench-job", *job]
    project = str(Path(__file__).resolve().parents[2])
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [project, os.environ.get("PYTHONPATH")]))}
    ran = subprocess.run(command, capture_output=True, text=True, env=env, cwd=project)
    if ran.returncode:
        raise BillingError(f"The benchmark's regeneration job failed: {ran.stderr.strip()[-2000:]}")
    return json.loads(ran.stdout.strip().splitlines()[-1])


def run_measured_job(url: str, root: str, job_id: int, *, measure: bool = False, einvoice_format: str = "pdf") -> int:
    """``python -m billing_core bench-job DATABASE_URL STORAGE_DIR JOB_ID [--measure] [--format=F]``: run or
    resume one job as the benchmark's actor, every buyer in e-invoice format F; with ``--measure``, then
    print its invoices, invoices per second and the workers' peak RSS in MiB as one line of JSON."""
    database = Database(url)
    settings = Settings(database_url=url, invoice_dir=Path(root), einvoice_default=einvoice_format)
    try:
        start = time.perf_counter()
        job = run_job(database, _BENCH_ACTOR, job_id, settings=settings)
        elapsed = time.perf_counter() - start
    finally:
        database.dispose()
    if measure:
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps({"done": job.done, "rate": job.done / elapsed, "peak_mib": peak_mib}))
    return 0
