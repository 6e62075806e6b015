"""Download faults: cut connections, a full disk, a corrupted partial file, real hive."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cluster, wait_until
from tests.hive.conftest import REPO_FILE, write_small_gguf
from tests.hive.fake_hub import FakeHub, running_hub
from tests.hive.test_hive_e2e import kill_hive, start_hive, start_queen_and_hive
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.e2e

REF = "hf:rbee-test/tiny-GGUF:tiny-Q8_0.gguf"
MODEL_ID = "tiny-Q8_0"
FILE_NAME = "tiny-Q8_0.gguf"
MEGABYTE = 1024 * 1024


@pytest.fixture(scope="module")
def gguf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_small_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def hub(gguf_bytes: bytes) -> Iterator[FakeHub]:
    with running_hub() as running:
        running.add(REPO_FILE, gguf_bytes)
        yield running


def models_dir(cluster: Cluster) -> Path:
    return cluster.root / "data" / "rbee" / "models"


def download(cluster: Cluster) -> tuple[list[dict[str, Any]], str]:
    return cluster.run({"operation": "model_download", "model": REF})


def data_of(found: list[dict[str, Any]]) -> Any:
    return next(event["data"] for event in found if event["type"] == "data")


def model_state(cluster: Cluster) -> str:
    found, _ = cluster.run({"operation": "model_get", "id": MODEL_ID})
    if found[-1]["type"] != "done":
        return "missing"
    return str(data_of(found)["state"])


def retries(found: list[dict[str, Any]]) -> list[str]:
    return [event["human"] for event in found
            if event["type"] == "narration" and "retry" in event.get("action", "")]


def test_download_cut_and_resumed(hub: FakeHub, gguf_bytes: bytes, tmp_path: Path,
                                  scenario: Scenario) -> None:
    """A download cut midway, twice, resumes to a verified file"""
    cut = 1_500_000
    hub.cut_after, hub.cuts = cut, 2
    cluster = start_queen_and_hive(tmp_path / "c", HF_ENDPOINT=hub.base_url)
    scenario.did(f"Served a {len(gguf_bytes) / MEGABYTE:.1f} MB GGUF from a local hub that "
                 f"closed the connection after {cut:,} bytes in each of the first two "
                 "responses, and downloaded it through the queen and a real hive.")
    try:
        found, marker = download(cluster)
    finally:
        cluster.stop()

    entry = data_of(found)
    requested = ", ".join(f"`Range: {value}`" if value else "no Range header"
                          for value in hub.ranges())
    scenario.saw(f"The job ended with {marker} after {len(retries(found))} narrated retries; "
                 f"the hub's file requests had, in order: {requested}.")
    assert marker == "[DONE]"
    assert len(retries(found)) == 2
    assert hub.ranges() == [None, f"bytes={cut}-", f"bytes={2 * cut}-"]
    assert entry["state"] == "available"
    assert Path(entry["path"]).read_bytes() == gguf_bytes
    assert not list(models_dir(cluster).rglob("*.partial"))
    scenario.saw("Each retry resumed from the last byte received; the model is available "
                 "and its file equals the hub's byte for byte (sha256 verified by the hive).")


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True)


def unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True, capture_output=True)


def fill_disk(path: Path, leave_bytes: int) -> Path:
    """Write a filler file that leaves about `leave_bytes` free on the filesystem of `path`."""
    filler = path / "filler.bin"
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    with filler.open("wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(free - leave_bytes, 1))
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_during_download(hub: FakeHub, gguf_bytes: bytes, tmp_path: Path,
                                   scenario: Scenario) -> None:
    """A full disk during a download"""
    root = tmp_path / "c"
    store = root / "data" / "rbee" / "models"
    mount_tmpfs(store, "80m")
    cluster: Cluster | None = None
    try:
        hub.stall_after, hub.stalls = MEGABYTE, 1
        cluster = start_queen_and_hive(root, HF_ENDPOINT=hub.base_url)
        scenario.did("Mounted an 80 MB tmpfs as the hive's model store (the hive checks for "
                     "the file's size plus 64 MB free before it starts), started a download "
                     "that the hub paused after 1 MB, filled the tmpfs to 256 KB free, and "
                     "let the transfer continue.")
        job_id = cluster.submit({"operation": "model_download", "model": REF})
        assert hub.stalled.wait(60)
        # The hive writes in 1 MB blocks; fill the disk only after the first block landed.
        wait_until(lambda: sum(path.stat().st_size for path in store.rglob("*.partial"))
                   >= MEGABYTE, 30, "the first megabyte in the partial file")
        filler = fill_disk(store, 256 * 1024)
        hub.release.set()
        found, marker = cluster.stream(job_id)
        scenario.saw(f"The job ended with `{found[-1]['type']}` (code "
                     f"{found[-1].get('code')!r}): {found[-1].get('message')!r}")
        assert marker.startswith("[ERROR]")
        assert found[-1]["type"] == "error"
        assert found[-1]["code"] == "disk_full"
        assert "space" in found[-1]["message"]
        assert model_state(cluster) == "failed"
        assert cluster.processes[-1].poll() is None

        again, again_marker = download(cluster)
        scenario.saw(f"A second download with the disk still full ended with "
                     f"`{again[-1]['type']}` before any transfer: {again[-1].get('message')!r}")
        assert again_marker.startswith("[ERROR]")
        assert again[-1]["type"] == "error"
        assert again[-1]["code"] == "disk_full"

        filler.unlink()
        last, last_marker = download(cluster)
        entry = data_of(last)
        scenario.saw(f"After the filler file was deleted, the next download resumed from the "
                     f"kept bytes (`Range: {hub.ranges()[-1]}`) and ended with {last_marker}; "
                     "the file equals the hub's.")
        assert last_marker == "[DONE]"
        assert hub.ranges()[-1] not in (None, "bytes=0-")
        assert Path(entry["path"]).read_bytes() == gguf_bytes
    finally:
        if cluster is not None:
            cluster.stop()
        unmount(store)


def start_and_kill_mid_download(hub: FakeHub, root: Path) -> tuple[Cluster, Path]:
    """Start a download that stalls after 1.2 MB, SIGKILL the hive and return its partial file."""
    hub.stall_after, hub.stalls = 1_200_000, 1
    cluster = start_queen_and_hive(root, HF_ENDPOINT=hub.base_url)
    cluster.submit({"operation": "model_download", "model": REF})
    assert hub.stalled.wait(60)

    def partial_has_bytes() -> bool:
        found = list(root.rglob(f"{FILE_NAME}.partial"))
        return bool(found) and found[0].stat().st_size > 0

    wait_until(partial_has_bytes, 30, "bytes in the partial file")
    kill_hive(cluster)
    return cluster, next(root.rglob(f"{FILE_NAME}.partial"))


@pytest.mark.parametrize("damage", ["flipped", "appended"])
def test_corrupted_partial_file(hub: FakeHub, gguf_bytes: bytes, tmp_path: Path,
                                scenario: Scenario, damage: str) -> None:
    """A corrupted partial file is caught by the sha256 check"""
    change = "16 bytes flipped" if damage == "flipped" else "1 KB of garbage appended"
    scenario.name = f"A corrupted partial file ({change}) is caught by the sha256 check"
    cluster, partial = start_and_kill_mid_download(hub, tmp_path / "c")
    try:
        kept = partial.stat().st_size
        with partial.open("r+b") as handle:
            if damage == "flipped":
                handle.seek(kept // 2)
                original = handle.read(16)
                handle.seek(kept // 2)
                handle.write(bytes(value ^ 0xFF for value in original))
            else:
                handle.seek(0, os.SEEK_END)
                handle.write(b"garbage " * 128)
        scenario.did(f"Sent SIGKILL to a hive mid-download with {kept:,} bytes in the "
                     f"partial file, changed it ({change}), and started the hive again, which "
                     "resumes the download with a Range request.")

        start_hive(cluster)
        wait_until(lambda: model_state(cluster) == "failed", 60,
                   "the resumed download to fail verification")
        hive_jobs = httpx.get(f"{cluster.hive_url}/v1/jobs", timeout=10).json()["jobs"]
        [resumed] = [job for job in hive_jobs if job["operation"] == "model_download"]
        scenario.saw(f"The hive's resumed download job ended `{resumed['state']}`: "
                     f"{resumed['error']!r}")
        assert resumed["state"] == "failed"
        assert "corrupt" in resumed["error"]
        assert "sha256" in resumed["error"]
        assert not list(cluster.root.rglob(f"{FILE_NAME}.partial"))

        found, marker = download(cluster)
        entry = data_of(found)
        scenario.saw(f"The next download started from byte 0 (no Range header) and ended "
                     f"with {marker}; the model is {entry['state']} and its file equals the "
                     "hub's.")
        assert marker == "[DONE]"
        assert hub.ranges()[-1] is None
        assert entry["state"] == "available"
        assert Path(entry["path"]).read_bytes() == gguf_bytes
    finally:
        cluster.stop()
