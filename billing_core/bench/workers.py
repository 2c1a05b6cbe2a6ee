"""Benchmark of regeneration on procrastinate workers (``bench --only workers --postgres-url ...``):
documents per second with 1 and with 2 worker processes, the bucket beside the local folder, and each
worker's peak RSS. Workers run as ``python -m billing_core worker`` in working folders of their own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import text

from billing_core.access.roles import Actor, Role
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.models import RegenerationJob, RegenerationStatus

PROJECT = Path(__file__).resolve().parents[2]
_ACTOR = Actor("bench@localhost", Role.ADMIN, "benchmark")


class WorkerProcesses:
    """``python -m billing_core worker`` processes, each in a working folder of its own (a machine each)."""

    def __init__(self, settings: Settings, base: Path) -> None:
        self.settings, self.base, self.running = settings, base, {}

    def start(self, name: str) -> subprocess.Popen:
        folder = self.base / name
        folder.mkdir(parents=True, exist_ok=True)
        s = self.settings
        env = os.environ | {
            "PYTHONPATH": str(PROJECT),
            "DATABASE_URL": s.database_url,
            "BILLING_SECRETS_FILE": str(folder / "no-secrets.toml"),
            "BILLING_INVOICE_DIR": str(s.invoice_dir if not s.invoice_bucket else folder / "files"),
            "BILLING_TASK_ENGINE": "procrastinate",
        }
        env.pop("BILLING_INVOICE_BUCKET", None)
        if s.invoice_bucket:
            env |= {
                "BILLING_INVOICE_BUCKET": s.invoice_bucket,
                "BILLING_INVOICE_BUCKET_PREFIX": s.invoice_bucket_prefix,
                "BILLING_INVOICE_BUCKET_ENDPOINT": s.invoice_bucket_endpoint or "",
                "BILLING_INVOICE_BUCKET_REGION": s.invoice_bucket_region or "",
            }
        with (folder / "worker.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "billing_core", "worker", "--name", name],
                cwd=folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[name] = process
        return process

    def peak_rss_mib(self, name: str) -> float:
        """The worker's peak resident memory so far (VmHWM)."""
        status = Path(f"/proc/{self.running[name].pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return kib / 1024

    def kill(self, name: str) -> None:
        os.killpg(self.running[name].pid, signal.SIGKILL)
        self.running.pop(name).wait()

    def stop_all(self) -> None:
        for process in self.running.values():
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.running.clear()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.base.glob("*/worker.log"))


def empty_queue(database: Database) -> None:
    """Drop every task from procrastinate's tables (a benchmark's or a test's own database)."""
    with database.engine.begin() as conn:
        names = conn.scalars(text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'procrastinate_%'")).all()
        conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))


def _job_seconds(database: Database, settings: Settings, base: Path, workers: int) -> tuple[int, float, float]:
    """One job over every invoice on ``workers`` fresh worker processes: documents, seconds, peak RSS (MiB)."""
    from billing_core.invoices import batch
    from billing_core.invoices import review as bills

    pool = WorkerProcesses(settings, base)
    try:
        names = [f"worker-{i}" for i in range(workers)]
        for name in names:
            pool.start(name)
        time.sleep(3)  # imports and the first heartbeat, outside the timing
        with database.session() as session:
            chosen = batch.select_invoices(session, _ACTOR)
            with transaction(session):
                job_id = batch.start_job(session, _ACTOR, chosen, "benchmark").id
        start = time.perf_counter()
        bills.launch_job(settings, _ACTOR, job_id)
        while True:
            with database.session() as session:
                job = session.get(RegenerationJob, job_id)
                if job.status != RegenerationStatus.RUNNING:
                    break
            if time.perf_counter() - start > 1800:
                raise RuntimeError(f"the benchmark's job did not end; workers said:\n{pool.logs()}")
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        if job.status != RegenerationStatus.FINISHED:
            raise RuntimeError(f"the benchmark's job ended {job.status.value}: {job.error}")
        peak = max(pool.peak_rss_mib(name) for name in names)
        return job.done, seconds, peak
    finally:
        pool.stop_all()


def _moto_bucket():
    """A bucket on a moto server of this run (loopback), or None when moto is not installed."""
    try:
        import boto3
        import moto  # noqa: F401
    except ImportError:
        return None, None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench-invoices")
    return server, endpoint


def worker_rows(options) -> Iterable:
    """Needs ``--postgres-url`` (the database is overwritten); yields nothing without it."""
    from billing_core.bench.run import Row
    from billing_core.demo import seeding as demo
    from billing_core.invoices import tasks

    if not options.postgres_url:
        return
    orders = 2_200
    database = Database(options.postgres_url)
    with tempfile.TemporaryDirectory(prefix="billing-workers-") as tmp:
        server = None
        try:
            database.migrate()
            tasks._ensure_schema(database.url)
            empty_queue(database)  # before the documents: queued tasks point at regeneration jobs
            demo.seed(database, orders=orders, seed=3, actor=_ACTOR, replace=True)
            folder = Settings(database_url=database.url, invoice_dir=Path(tmp) / "files", task_engine="procrastinate")
            figures = {}
            for label, settings, workers in (("folder-1", folder, 1), ("folder-2", folder, 2)):
                empty_queue(database)
                figures[label] = _job_seconds(database, settings, Path(tmp) / label, workers)
            server, endpoint = _moto_bucket()
            if server is not None:
                bucket = Settings(
                    database_url=database.url,
                    task_engine="procrastinate",
                    invoice_bucket="bench-invoices",
                    invoice_bucket_endpoint=endpoint,
                    invoice_bucket_region="us-east-1",
                )
                empty_queue(database)
                figures["bucket-1"] = _job_seconds(database, bucket, Path(tmp) / "bucket-1", 1)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
            database.dispose()

    def per_second(label: str) -> float:
        done, seconds, _ = figures[label]
        return done / seconds

    done = figures["folder-1"][0]
    yield Row(f"regeneration on 2 workers ({done:,} docs)", per_second("folder-2"), "docs/s",
              per_second("folder-1"), "1 worker, same job")  # fmt: skip
    if "bucket-1" in figures:
        yield Row("regeneration into the bucket, 1 worker", per_second("bucket-1"), "docs/s",
                  per_second("folder-1"), "local folder, 1 worker (moto on loopback)")  # fmt: skip
    peak = max(figure[2] for figure in figures.values())
    yield Row("regeneration peak RSS per worker", peak, "MiB", 1024, "budget 1 GiB")
