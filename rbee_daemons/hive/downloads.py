"""Model downloads from a Hugging Face-style hub: resumable, verified, cancellable.

A download streams into `<file>.partial` next to the target and resumes with an HTTP `Range`
request after a dropped connection, a stall or a hive restart. Size and sha256 come from the
hub's `X-Linked-Size` and `X-Linked-Etag` headers (or `Content-Length` and a sha256 `ETag`)
and are checked before the partial file becomes the model file. `<file>.lock` is held with
`flock` while a download runs; the kernel releases it when the process dies, so a lock file
left by a killed hive never blocks a later attempt.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import httpx

from rbee_daemons.errors import ModelError
from rbee_daemons.hive.download_progress import Progress, narrate_retry
from rbee_daemons.redact import register_secret

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK_BYTES = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Write errors that mean the model store has no room: a full disk, a quota, a file-size limit.
_DISK_FULL_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FATAL_STATUS = {401: "the hub requires a token: set HF_TOKEN", 403: "access was denied",
                 404: "the file was not found on the hub"}


@dataclass(frozen=True)
class DownloadPolicy:
    """Timeouts and retry limits of one download."""

    # Seconds without a byte before a connection counts as stalled and is retried.
    read_timeout: float = 30.0
    # Consecutive attempts that made no progress before the download fails.
    max_attempts: int = 6
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 15.0
    # Free space kept beyond the file's size, for the catalog and logs.
    disk_margin_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class RemoteFile:
    size: int | None
    sha256: str | None


@dataclass
class DownloadRequest:
    model_id: str
    url: str
    target: Path
    expected_sha256: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def partial(self) -> Path:
        return self.target.with_name(self.target.name + ".partial")

    @property
    def lock(self) -> Path:
        return self.target.with_name(self.target.name + ".lock")


class _Retryable(Exception):
    """A failure that a later attempt may not have: a dropped connection, a 5xx, a stall."""


def hub_headers() -> dict[str, str]:
    """Return the headers for hub requests: `Authorization` when `HF_TOKEN` is set."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        return {}
    register_secret(token)
    return {"Authorization": f"Bearer {token}"}


def parse_etag(value: str | None) -> str | None:
    """Return the sha256 an ETag carries, or None for other ETags (a git sha1, a weak tag)."""
    if not value:
        return None
    tag = value.removeprefix("W/").strip('"').lower()
    return tag if _SHA256.match(tag) else None


async def probe(client: httpx.AsyncClient, request: DownloadRequest) -> RemoteFile:
    """Read size and sha256 from the hub's metadata headers without downloading."""
    try:
        response = await client.head(request.url, headers=request.headers)
        linked_size = response.headers.get("x-linked-size")
        sha256 = parse_etag(response.headers.get("x-linked-etag"))
        if response.is_redirect and linked_size is None:
            response = await client.head(request.url, headers=request.headers,
                                         follow_redirects=True)
    except httpx.HTTPError as exc:
        raise _Retryable(f"metadata request failed: {exc or type(exc).__name__}") from exc
    _check_status(response, request)
    size_text = linked_size or response.headers.get("content-length")
    size = int(size_text) if size_text and size_text.isdigit() else None
    return RemoteFile(size, sha256 or parse_etag(response.headers.get("etag")))


def _check_status(response: httpx.Response, request: DownloadRequest) -> None:
    status = response.status_code
    if status in _FATAL_STATUS:
        raise ModelError(f"Cannot download {request.model_id} from {request.url}: "
                         f"{_FATAL_STATUS[status]} (HTTP {status}).", code="download_failed")
    if status >= 500 or status == 429:
        raise _Retryable(f"the hub returned HTTP {status}")
    if status >= 400:
        raise ModelError(f"Cannot download {request.model_id} from {request.url}: HTTP {status}.",
                         code="download_failed")


def check_disk_space(request: DownloadRequest, needed: int, margin: int) -> None:
    """Raise ModelError when the model store cannot hold `needed` more bytes plus `margin`."""
    free = shutil.disk_usage(request.target.parent).free
    if free < needed + margin:
        raise ModelError(
            f"Not enough disk space to download {request.model_id}: it needs "
            f"{_size_text(needed)} more plus {_size_text(margin)} to spare, and "
            f"{request.target.parent} has {_size_text(free)} free; free some space or delete a "
            "model with `rbee --no-tui model delete ID`.",
            code="disk_full",
        )


def _size_text(count: int) -> str:
    if count >= 1e9:
        return f"{count / 1e9:.2f} GB"
    return f"{count / 1e6:.1f} MB"


@contextmanager
def download_lock(request: DownloadRequest) -> Iterator[None]:
    """Hold the download's lock file; raise ModelError if another process holds it."""
    with request.lock.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ModelError(
                f"{request.model_id} is being downloaded by another process; wait for it or "
                "stop that hive.", code="download_in_progress",
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Download:
    """One file transfer: probe, preflight, resumable transfer with retries, verification."""

    def __init__(self, client: httpx.AsyncClient, request: DownloadRequest,
                 policy: DownloadPolicy | None = None) -> None:
        self.client = client
        self.request = request
        self.policy = policy or DownloadPolicy()
        self.digest = hashlib.sha256()
        self.size = 0
        self.remote = RemoteFile(None, None)

    async def run(self) -> tuple[int, str]:
        """Download to the target path; return its size and sha256 (hex).

        Raises ModelError on a failure retries cannot fix. Cancelling keeps the partial file,
        so the next attempt resumes.
        """
        request = self.request
        request.target.parent.mkdir(parents=True, exist_ok=True)
        with download_lock(request):
            self.remote = await self._retrying(self._probe_once)
            self.size = await asyncio.to_thread(self._hash_partial)
            if self.remote.size is not None:
                needed = max(self.remote.size - self.size, 0)
                check_disk_space(request, needed, self.policy.disk_margin_bytes)
            progress = Progress(request.model_id, self.remote.size, self.size)
            await self._retrying(lambda: self._transfer(progress))
            progress.finished(self.size)
            result = await asyncio.to_thread(self._verify_and_commit)
        request.lock.unlink(missing_ok=True)
        return result

    async def _probe_once(self) -> RemoteFile:
        return await probe(self.client, self.request)

    async def _retrying(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        failures = 0
        while True:
            before = self.size
            try:
                return await attempt_once()
            except _Retryable as exc:
                failures = 0 if self.size > before else failures + 1
                if failures >= self.policy.max_attempts:
                    raise ModelError(
                        f"Downloading {self.request.model_id} failed {failures} times in a row "
                        f"without progress; last error: {exc}. Run the download again to "
                        "resume it.", code="download_failed",
                    ) from exc
                delay = min(self.policy.backoff_seconds * 2 ** max(failures - 1, 0),
                            self.policy.max_backoff_seconds)
                narrate_retry(self.request.model_id, str(exc), delay, self.size)
                await asyncio.sleep(delay)

    def _hash_partial(self) -> int:
        """Hash the bytes already in the partial file, so resumed bytes extend the digest."""
        self.digest = hashlib.sha256()
        size = 0
        try:
            with self.request.partial.open("rb") as handle:
                while block := handle.read(CHUNK_BYTES):
                    self.digest.update(block)
                    size += len(block)
        except FileNotFoundError:
            return 0
        total = self.remote.size
        if total is not None and size > total:
            # Longer than the file on the hub: it belongs to another version, start over.
            self.request.partial.unlink()
            self.digest = hashlib.sha256()
            return 0
        return size

    async def _transfer(self, progress: Progress) -> None:
        total = self.remote.size
        if total is not None and self.size >= total:
            return
        headers = dict(self.request.headers)
        if self.size:
            headers["Range"] = f"bytes={self.size}-"
        timeout = httpx.Timeout(10.0, read=self.policy.read_timeout)
        try:
            async with self.client.stream("GET", self.request.url, headers=headers,
                                          timeout=timeout, follow_redirects=True) as response:
                await self._receive(response, progress)
        except httpx.TransportError as exc:
            raise _Retryable(f"the connection broke: {exc or type(exc).__name__}") from exc
        if total is not None and self.size < total:
            raise _Retryable(f"the hub sent {self.size} of {total} bytes")

    async def _receive(self, response: httpx.Response, progress: Progress) -> None:
        if response.status_code == 416 and self.remote.size is None:
            return
        _check_status(response, self.request)
        append = response.status_code == 206 and _range_start(response) == self.size
        if not append:
            # The hub ignored the Range header and sends the whole file from byte 0.
            self.digest = hashlib.sha256()
            self.size = 0
        mode = "ab" if append else "wb"
        buffer = bytearray()
        try:
            with self.request.partial.open(mode) as handle:
                try:
                    async for block in response.aiter_bytes():
                        buffer += block
                        if len(buffer) >= CHUNK_BYTES:
                            await asyncio.to_thread(self._append, handle, buffer)
                            buffer = bytearray()
                            progress.update(self.size)
                finally:
                    # Keep what arrived before a break or a cancel, so the next attempt
                    # resumes from the last received byte.
                    self._append(handle, buffer)
        except OSError as exc:
            if exc.errno not in _DISK_FULL_ERRORS:
                raise
            raise self._disk_full(exc) from exc

    def _disk_full(self, exc: OSError) -> ModelError:
        """Describe a write that failed for lack of space; the partial file stays to resume."""
        logger.warning("Writing %s failed: %s", self.request.partial, exc)
        return ModelError(
            f"The disk filled up while downloading {self.request.model_id}: writing "
            f"{self.request.partial} failed ({exc.strerror}). The bytes received so far are "
            "kept; free some space or delete a model with `rbee --no-tui model delete ID`, "
            "then run the download again to resume it.",
            code="disk_full",
        )

    def _append(self, handle: IO[bytes], block: bytearray) -> None:
        handle.write(block)
        self.digest.update(block)
        self.size += len(block)

    def _verify_and_commit(self) -> tuple[int, str]:
        request = self.request
        actual = self.digest.hexdigest()
        expected = (request.expected_sha256 or self.remote.sha256 or "").lower() or None
        problem = None
        if self.remote.size is not None and self.size != self.remote.size:
            problem = f"its size is {self.size} bytes, the hub said {self.remote.size}"
        elif expected is not None and actual != expected:
            problem = f"its sha256 is {actual}, expected {expected}"
        if problem:
            request.partial.unlink(missing_ok=True)
            raise ModelError(
                f"The download of {request.model_id} is corrupt: {problem}. The file was "
                "removed; run the download again.", code="checksum_mismatch",
            )
        with request.partial.open("rb+") as handle:
            os.fsync(handle.fileno())
        request.partial.replace(request.target)
        return self.size, actual


def _range_start(response: httpx.Response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("content-range", ""))
    return int(match.group(1)) if match else None
