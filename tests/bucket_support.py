"""An S3-compatible bucket for tests: moto's server in its own process on loopback, a real HTTP peer.

Its own process, so that the memory a test measures in this one never includes the objects moto keeps.
Credentials are moto's dummies, set in the environment as boto3 reads them (workers inherit them).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import boto3
import pytest

from billing_core.invoices.object_store import Bucket, LocalFolder
from tests.e2e_support import free_port

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "moto-secret-never-shown",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_endpoint():
    """The URL of a moto server started for this test session."""
    os.environ.update(DUMMY_CREDENTIALS)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("moto's server did not start") from None
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


def new_bucket(endpoint: str, prefix: str = "team/invoices") -> Bucket:
    """A fresh, empty bucket on the moto server."""
    name = f"invoices-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return Bucket(name, prefix, endpoint, "us-east-1")


@pytest.fixture(params=["folder", "bucket"])
def store(request, tmp_path):
    """Each kind of invoice store: the local folder and the moto bucket."""
    if request.param == "folder":
        return LocalFolder(tmp_path / "files")
    return new_bucket(request.getfixturevalue("moto_endpoint"))


def overwrite(store, key: str, data: bytes) -> None:
    """Change the stored bytes behind the app's back (a test's tampering)."""
    if isinstance(store, LocalFolder):
        (store.root / key).write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store._key(key), Body=data)


def remove(store, key: str) -> None:
    """Delete the stored bytes behind the app's back."""
    store.delete(key)
    assert store.size(key) is None
