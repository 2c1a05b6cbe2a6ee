"""Scaffolding shared by the browser tests: a real `streamlit run app.py` on a free loopback port.

The `browser` and `page` fixtures live in tests/conftest.py; what each test file seeds and sets in
the server's environment stays in that file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from playwright.sync_api import Locator, Page, expect

ROOT = Path(__file__).resolve().parent.parent
BANNER = "Local mode — identity chosen here, not signed in"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"streamlit did not become healthy in {timeout}s:\n{log.read_text()[-3000:]}")


def app_env(values: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any billing, Stripe or database setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_", "STRIPE_", "DATABASE_URL"))}
    return env | dict(values)


def local_mode_env(
    database_url: str, role: str, tmp_path: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """:func:`app_env` for local mode acting as ``role`` on ``database_url``, with no secrets file."""
    values = {
        "DATABASE_URL": database_url,
        "BILLING_LOCAL_MODE": "1",
        "BILLING_LOCAL_ROLE": role,
        "BILLING_SECRETS_FILE": str(tmp_path / "no-secrets.toml"),
    }
    return app_env(values | dict(extra or {}))


@dataclass
class StreamlitServer:
    """A running `streamlit run app.py`: its base URL, its log file, and how to stop it."""

    base: str
    log: Path
    proc: subprocess.Popen
    _log_file: IO[str]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()

    def __enter__(self) -> StreamlitServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_streamlit(
    env: Mapping[str, str],
    tmp_path: Path,
    name: str = "streamlit",
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    args: Sequence[str] = (),
) -> StreamlitServer:
    """Start `streamlit run app.py` with ``env``, logging to ``tmp_path/<name>.log``; return once healthy.

    ``port`` is a free one unless given (for a secrets file that must name it first); ``args`` go
    after the standard options. If the server does not become healthy it is stopped and the test fails.
    """
    port = free_port() if port is None else port
    log = tmp_path / f"{name}.log"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    command += ["--server.headless", "true", "--server.fileWatcherType", "none"]
    command += ["--browser.gatherUsageStats", "false", *args]
    log_file = log.open("w")
    proc = subprocess.Popen(command, cwd=ROOT, env=dict(env), stdout=log_file, stderr=subprocess.STDOUT)
    server = StreamlitServer(f"http://{host}:{port}", log, proc, log_file)
    try:
        wait_healthy(server.base, proc, log)
    except BaseException:
        server.stop()
        raise
    return server


def settle(page: Page) -> None:
    """Wait until the script run has finished (the running indicator is gone)."""
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=20_000)
    page.wait_for_timeout(500)


def metric(page: Page, label: str) -> Locator:
    """The value of the st.metric whose label holds ``label``."""
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")
