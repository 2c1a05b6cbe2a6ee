"""Where invoice files live: one protocol, the local folder (the default) or an S3-compatible bucket.

Keys are relative paths (``<series>/<number>/v<version>.pdf``, ``jobs/job-<id>.zip``). A version's key is
written once. The folder replaces only files that no row records yet (a crashed chunk's, as before). In
the bucket a version's key also names its bytes (``v<version>-<first 16 hex of the SHA-256>.pdf``) and is
written with ``If-None-Match: *``: a chunk killed before its rows committed leaves an object no row
names, and its retry either finds the very same bytes under the same key or writes a key of its own. Hashes are
checked by ``storage.read_file``; the stores only move bytes. Bucket credentials come from boto3's usual
chain (environment, ``~/.aws`` files, instance roles): the settings hold none and nothing here prints any.
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

PART_SIZE = 8 * 2**20  # multipart upload parts (S3 asks at least 5 MiB for every part but the last)
UPLOADS = 8  # puts in flight per process: a PUT waits tens of milliseconds on the network, rendering does not


_CLIENT_LOCK = threading.Lock()


class Store(Protocol):
    """What the invoice code needs from a place that keeps files."""

    def describe(self) -> str:
        """Where the files are, for people: a folder, or the bucket and prefix (never a credential)."""

    def version_key(self, relative: str, sha256: str) -> str:
        """The key a version's bytes are stored under, from its relative path and their hash."""

    def put(self, key: str, data: bytes, sha256: str, *, durable: bool = True) -> None:
        """Write ``data`` under ``key``; ``durable=False`` leaves the flush to ``sync``."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; FileNotFoundError when there are none."""

    def flush(self) -> None:
        """Wait until every ``put`` of this process has reached the store (raising what failed)."""

    def sync(self) -> None:
        """Make every ``put(durable=False)`` so far survive a power cut."""

    def writer(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A stream that becomes ``key`` when the block ends without error, and nothing otherwise."""

    def size(self, key: str) -> int | None:
        """The stored size of ``key`` in bytes, None when there is nothing under it."""

    def open(self, key: str) -> BinaryIO:
        """A readable stream of ``key`` (for downloads), FileNotFoundError when there is nothing under it."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (files that are no version: a crashed chunk's leftovers, replaced ZIPs)."""


@dataclass(frozen=True)
class LocalFolder:
    """Files under a directory, each written atomically (temp file, rename)."""

    root: Path

    def describe(self) -> str:
        return str(self.root)

    def version_key(self, relative: str, sha256: str) -> str:
        return relative

    def put(self, key: str, data: bytes, sha256: str, *, durable: bool = True) -> None:
        from billing_core.invoices import storage

        storage.write_atomic(self.root / key, data, durable=durable)

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def flush(self) -> None:
        """Nothing to wait for: a file is written when ``put`` returns."""

    def sync(self) -> None:
        from billing_core.invoices import storage

        self.root.mkdir(parents=True, exist_ok=True)
        storage.sync(self.root)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def size(self, key: str) -> int | None:
        try:
            return (self.root / key).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, key: str) -> BinaryIO:
        return (self.root / key).open("rb")

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


@dataclass(frozen=True)
class Bucket:
    """Objects in an S3-compatible bucket under ``prefix``; one boto3 client per process (fork-safe)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    _clients: dict = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict:  # sent to worker processes without the parent's client
        return {"bucket": self.bucket, "prefix": self.prefix, "endpoint_url": self.endpoint_url, "region": self.region}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_clients", {})

    def _process(self) -> dict:
        """This process's client, upload threads and uploads in flight (a forked child makes its own)."""
        pid = os.getpid()
        if pid not in self._clients:
            with _CLIENT_LOCK:
                if pid not in self._clients:
                    import boto3
                    from botocore.config import Config

                    self._clients.clear()
                    client = boto3.session.Session().client(
                        "s3",
                        endpoint_url=self.endpoint_url,
                        region_name=self.region,
                        config=Config(
                            signature_version="s3v4",  # signed download links too
                            retries={"max_attempts": 5, "mode": "standard"},
                            max_pool_connections=UPLOADS,
                        ),
                    )
                    self._clients[pid] = {"client": client, "threads": None, "pending": []}
        return self._clients[pid]

    @property
    def client(self):
        return self._process()["client"]

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")

    def version_key(self, relative: str, sha256: str) -> str:
        stem, dot, suffix = relative.rpartition(".")
        return f"{stem}-{sha256[:16]}{dot}{suffix}"

    def put(self, key: str, data: bytes, sha256: str, *, durable: bool = True) -> None:
        """With ``durable=False`` the upload runs in a thread of this process and ``flush`` waits for it."""
        if durable:
            self._put(key, data, sha256)
            return
        here = self._process()
        if here["threads"] is None:
            here["threads"] = ThreadPoolExecutor(UPLOADS, thread_name_prefix="invoice-upload")
        here["pending"].append(here["threads"].submit(self._put, key, data, sha256))

    def flush(self) -> None:
        here = self._process()
        pending, here["pending"] = here["pending"], []
        for future in pending:
            future.result()

    def _put(self, key: str, data: bytes, sha256: str) -> None:
        from botocore.exceptions import ClientError

        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ChecksumSHA256=checksum, IfNoneMatch="*"
            )
        except ClientError as exc:
            if _code(exc) not in {"PreconditionFailed", "ConditionalRequestConflict"}:
                raise
            # Written before: by a chunk killed before its rows committed, or a request boto3 retried.
            # The key names the bytes, so anything else under it is a wrong write, never replaced.
            if self._sha256(key) != checksum:
                from billing_core.invoices.storage import FileAltered

                raise FileAltered(f"{key} already holds other bytes in the bucket; it is never overwritten.") from None

    def _sha256(self, key: str) -> str | None:
        head = self.client.head_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
        if head.get("ChecksumSHA256"):
            return head["ChecksumSHA256"]
        import hashlib

        return base64.b64encode(hashlib.sha256(self.get(key)).digest()).decode()

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404"}:
                raise FileNotFoundError(key) from None
            raise

    def sync(self) -> None:
        """A PUT the bucket answered is stored: waiting for this process's uploads is enough."""
        self.flush()

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        upload = _MultipartUpload(self.client, self.bucket, self._key(key))
        try:
            yield upload
            upload.finish()
        except BaseException:
            upload.abort()
            raise

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404"}:
                raise FileNotFoundError(key) from None
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def download_url(self, key: str, seconds: int = 900) -> str:
        """A link that lets a browser fetch ``key`` straight from the bucket for ``seconds``: the app never
        holds the file. It is signed, and carries no secret key."""
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)


def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _MultipartUpload:
    """A write-only stream uploaded in ``PART_SIZE`` parts: at most one part is held in memory."""

    def __init__(self, client, bucket: str, key: str) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        self.parts: list[dict] = []
        self.buffer = bytearray()
        self.written = 0

    def write(self, data) -> int:
        self.buffer += data
        self.written += len(data)
        if len(self.buffer) >= PART_SIZE:
            self._send()
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        """Parts go when full; ``finish`` sends the rest."""

    def seekable(self) -> bool:
        return False

    def _send(self) -> None:
        number = len(self.parts) + 1
        answer = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=self.buffer
        )
        self.parts.append({"ETag": answer["ETag"], "PartNumber": number})
        self.buffer = bytearray()

    def finish(self) -> None:
        if self.buffer or not self.parts:
            self._send()
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
