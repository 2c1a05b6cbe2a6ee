"""Long work in its own process, so it outlives the page run that started it: the deep check of the bills
and invoice regeneration jobs (the local default; a team runs them on a task engine's workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from billing_core.access.roles import Actor
from billing_core.core.config import Settings
from billing_core.invoices import storage


def start_process(settings: Settings, actor: Actor, args: list[str], log_name: str) -> subprocess.Popen:
    """``python -m <args> --actor ... --role ... --name ...`` detached, its output appended to a log beside the
    invoice files. The caller has checked ``actor``; the process checks the role again itself."""
    root = storage.storage_root(settings)
    log = root / log_name
    log.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"DATABASE_URL": settings.database_url, "BILLING_INVOICE_DIR": str(root)}
    command = [sys.executable, "-m", *args, "--actor", actor.email, "--role", actor.role.value, "--name", actor.name]
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )
