"""The reconcile suite: orders reconciled per second against localstripe, beside bare fetch_status calls."""

from __future__ import annotations

import time
from collections.abc import Iterator

from billing_core.access.roles import Actor
from billing_core.bench.run import Row
from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.core.errors import GatewayError
from billing_core.core.models import utcnow
from billing_core.reconcile.stuck import (
    Outcome,
    reconcile,
)


def reconcile_rows(options) -> Iterator[Row]:
    """Orders reconciled per second against localstripe, beside bare fetch_status calls per second."""
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    import urllib.request
    from datetime import timedelta
    from pathlib import Path

    from billing_core.access.roles import Role
    from billing_core.orders.lifecycle import _payment_request, attach_payment, create_customer, create_order
    from billing_core.payments.stripe_gateway import StripeGateway
    from billing_core.pricing.catalog import load_pricing

    exe = Path(sys.executable).with_name("localstripe")
    if not exe.exists():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="bench-reconcile-")
    proc = subprocess.Popen(
        [str(exe), "--port", str(port), "--from-scratch"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    database = None
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/v1/balance", timeout=1)
                break
            except OSError as exc:
                if "HTTP Error" in str(exc):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise GatewayError(f"localstripe did not start: {exc}") from None
                time.sleep(0.1)

        database = Database(f"sqlite:///{workdir}/bench.db")
        database.migrate()
        settings = Settings(database_url=database.url, stripe_api_key="sk_test_localstripe", stripe_api_base=url)
        gateway = StripeGateway("sk_test_localstripe", url, retries=0)
        admin = Actor("bench@company.test", Role.ADMIN, "benchmark")
        pricing = load_pricing()
        n = 200
        refs = []
        with database.session() as session:
            customer = create_customer(session, admin, email="bench@example.com", name="Bench", country="DE")
            for _ in range(n):
                order = create_order(
                    session, admin, customer_id=customer.id, amount="100", method="stripe", pricing=pricing
                )
                payment = gateway.create_payment(_payment_request(session, order))
                attach_payment(session, admin, order.id, payment)
                refs.append(payment.ref)
        for ref in refs[::2]:
            method = gateway.client.v1.payment_methods.create(
                params={
                    "type": "card",
                    "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
                }
            )
            gateway.client.v1.payment_intents.update(ref, params={"payment_method": method.id})
            gateway.client.v1.payment_intents.confirm(ref)

        start = time.perf_counter()
        fetched = 0
        while time.perf_counter() - start < 1.0:
            gateway.fetch_status(refs[fetched % n])
            fetched += 1
        baseline = fetched / (time.perf_counter() - start)

        now = utcnow()
        start = time.perf_counter()
        report = reconcile(database, admin, settings, since=now - timedelta(days=1), until=now + timedelta(minutes=1))
        elapsed = time.perf_counter() - start
        assert report.counts[Outcome.COMPLETED] == n // 2, report.summary()
        yield Row(
            "reconcile orders checked (localstripe)",
            len(report.rows) / elapsed,
            "orders/s",
            baseline,
            "bare fetch_status",
        )
    finally:
        if database is not None:
            database.dispose()
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
