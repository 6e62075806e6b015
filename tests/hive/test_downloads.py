"""The downloader against a loopback hub: resume, stalls, verification, disk preflight."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
from pathlib import Path

import httpx
import pytest

from rbee_daemons import events
from rbee_daemons.errors import ModelError
from rbee_daemons.hive.downloads import (
    Download,
    DownloadPolicy,
    DownloadRequest,
    hub_headers,
    parse_etag,
)
from rbee_daemons.hive.refs import HubRef
from rbee_daemons.jobs import JobRegistry
from tests.hive.fake_hub import FakeHub

FAST = DownloadPolicy(read_timeout=1.0, max_attempts=3, backoff_seconds=0.01)
REF = HubRef("rbee-test", "tiny-GGUF", "tiny-Q8_0.gguf")


def request_for(hub: FakeHub, tmp_path: Path, **options: object) -> DownloadRequest:
    target = tmp_path / "models" / "tiny" / "tiny-Q8_0.gguf"
    return DownloadRequest("tiny", REF.url(hub.base_url), target, **options)  # type: ignore[arg-type]


async def download(request: DownloadRequest, policy: DownloadPolicy = FAST) -> tuple[int, str]:
    async with httpx.AsyncClient() as client:
        return await Download(client, request, policy).run()


async def test_download_verifies_and_moves(hub: FakeHub, small_gguf: bytes, tmp_path: Path) -> None:
    request = request_for(hub, tmp_path)

    size, sha256 = await download(request)

    assert size == len(small_gguf)
    assert sha256 == hashlib.sha256(small_gguf).hexdigest()
    assert request.target.read_bytes() == small_gguf
    assert not request.partial.exists()
    assert not request.lock.exists()
    assert hub.ranges() == [None]


async def test_download_resumes_after_cut(
    hub: FakeHub, small_gguf: bytes, tmp_path: Path
) -> None:
    hub.cut_after, hub.cuts = 1_500_000, 1
    request = request_for(hub, tmp_path)

    size, _ = await download(request)

    assert size == len(small_gguf)
    assert request.target.read_bytes() == small_gguf
    assert hub.ranges() == [None, "bytes=1500000-"]


async def test_download_resumes_after_stall(
    hub: FakeHub, small_gguf: bytes, tmp_path: Path
) -> None:
    hub.stall_after, hub.stalls = 1_000_000, 1
    request = request_for(hub, tmp_path)

    await download(request, DownloadPolicy(read_timeout=0.5, backoff_seconds=0.01))

    assert request.target.read_bytes() == small_gguf
    assert hub.ranges() == [None, "bytes=1000000-"]


async def test_stale_partial_and_lock_resume(
    hub: FakeHub, small_gguf: bytes, tmp_path: Path
) -> None:
    request = request_for(hub, tmp_path)
    request.target.parent.mkdir(parents=True)
    request.partial.write_bytes(small_gguf[:700_000])
    request.lock.write_text("12345\n")

    await download(request)

    assert request.target.read_bytes() == small_gguf
    assert hub.ranges() == ["bytes=700000-"]


async def test_oversized_partial_starts_over(
    hub: FakeHub, small_gguf: bytes, tmp_path: Path
) -> None:
    request = request_for(hub, tmp_path)
    request.target.parent.mkdir(parents=True)
    request.partial.write_bytes(small_gguf + b"extra bytes")

    await download(request)

    assert request.target.read_bytes() == small_gguf
    assert hub.ranges() == [None]


async def test_sha256_mismatch_removes_file(hub: FakeHub, tmp_path: Path) -> None:
    hub.advertised_sha256 = "0" * 64
    request = request_for(hub, tmp_path)

    with pytest.raises(ModelError, match="sha256") as caught:
        await download(request)

    assert caught.value.code == "checksum_mismatch"
    assert "0" * 64 in caught.value.message
    assert not request.partial.exists()
    assert not request.target.exists()


async def test_pinned_sha256_is_checked(hub: FakeHub, tmp_path: Path) -> None:
    request = request_for(hub, tmp_path, expected_sha256="f" * 64)

    with pytest.raises(ModelError, match="f" * 64):
        await download(request)

    assert not request.target.exists()


async def test_disk_full_fails_before_download(hub: FakeHub, tmp_path: Path) -> None:
    hub.advertised_size = 10**18
    request = request_for(hub, tmp_path)

    with pytest.raises(ModelError, match="Not enough disk space") as caught:
        await download(request)

    assert caught.value.code == "disk_full"
    assert hub.ranges() == []
    assert not request.partial.exists()


async def test_missing_file_fails_clearly(hub: FakeHub, tmp_path: Path) -> None:
    request = DownloadRequest("gone", HubRef("rbee-test", "tiny-GGUF", "gone.gguf")
                              .url(hub.base_url), tmp_path / "gone" / "gone.gguf")

    with pytest.raises(ModelError, match="not found"):
        await download(request)


async def test_broken_hub_gives_up(hub: FakeHub, tmp_path: Path) -> None:
    hub.cut_after, hub.cuts = 0, 100
    request = request_for(hub, tmp_path)

    with pytest.raises(ModelError, match="3 times in a row"):
        await download(request)

    assert len(hub.ranges()) == 3


async def test_hf_token_sent_and_required(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "hf_" + "TestTokenForTheFakeHub123"
    hub.required_token = token

    with pytest.raises(ModelError, match="HF_TOKEN"):
        await download(request_for(hub, tmp_path))

    monkeypatch.setenv("HF_TOKEN", token)
    request = request_for(hub, tmp_path, headers=hub_headers())
    await download(request)

    assert request.target.is_file()
    assert hub.requests[-1].authorization == f"Bearer {token}"


async def test_cancel_keeps_partial_and_frees_lock(
    hub: FakeHub, small_gguf: bytes, tmp_path: Path
) -> None:
    hub.stall_after, hub.stalls = 500_000, 1
    request = request_for(hub, tmp_path)
    task = asyncio.create_task(download(request, DownloadPolicy(read_timeout=60)))
    await asyncio.to_thread(hub.stalled.wait, 30)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    kept = request.partial.stat().st_size
    assert kept <= 500_000
    with request.lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(handle, fcntl.LOCK_UN)
    await download(request)
    assert request.target.read_bytes() == small_gguf
    assert hub.ranges()[-1] == (f"bytes={kept}-" if kept else None)


async def test_progress_events_in_job(
    hub: FakeHub, small_gguf: bytes, tmp_path: Path, job_registry: JobRegistry
) -> None:
    job = job_registry.submit("model_download", {}, lambda: download(request_for(hub, tmp_path)))
    assert job.task is not None
    await job.task

    progress = [event for event in job.events if event["type"] == events.PROGRESS]
    last = progress[-1]["fields"]
    assert last["bytes_done"] == len(small_gguf)
    assert last["bytes_total"] == len(small_gguf)
    assert last["percent"] == 100.0
    assert "rate_bytes_per_second" in last
    assert "eta_seconds" in last
    actions = [event.get("action") for event in job.events if event["type"] == "narration"]
    assert "hive_model_download_start" in actions
    assert "hive_model_download_verify" in actions


@pytest.mark.parametrize(
    ("etag", "expected"),
    [
        ('"' + "a" * 64 + '"', "a" * 64),
        ("W/\"" + "B" * 64 + '"', "b" * 64),
        ('"0123456789abcdef0123456789abcdef01234567"', None),
        (None, None),
    ],
)
def test_parse_etag(etag: str | None, expected: str | None) -> None:
    assert parse_etag(etag) == expected
