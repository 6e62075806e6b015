"""The hive as real processes behind a real queen: crashes, restarts, stops and downloads."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from httpx_sse import connect_sse

from tests.e2e.conftest import (
    STARTUP_TIMEOUT,
    Cluster,
    free_port,
    healthy,
    isolated_env,
    wait_until,
    worker_pids,
)
from tests.hive.conftest import REPO_FILE
from tests.hive.fake_hub import FakeHub, running_hub

pytestmark = pytest.mark.e2e

INFER = {"operation": "infer", "prompt": "Once upon a time", "temperature": 0.0, "seed": 3}


def start_queen_and_hive(root: Path, *hive_args: str, **env: str) -> Cluster:
    root.mkdir(parents=True, exist_ok=True)
    queen_port, hive_port = free_port(), free_port()
    cluster = Cluster(root, {**isolated_env(root), **env}, f"http://127.0.0.1:{queen_port}",
                      f"http://127.0.0.1:{hive_port}")
    cluster.start("rbee_daemons.queen", "--port", str(queen_port), log_name="queen")
    wait_until(lambda: healthy(cluster.queen_url), STARTUP_TIMEOUT, "the queen's /health")
    start_hive(cluster, *hive_args)
    return cluster


def start_hive(cluster: Cluster, *hive_args: str) -> None:
    port = cluster.hive_url.rsplit(":", 1)[1]
    cluster.start("rbee_daemons.hive", "--port", port, "--queen-url", cluster.queen_url,
                  *hive_args, log_name="hive")
    wait_until(lambda: healthy(cluster.hive_url), STARTUP_TIMEOUT, "the hive's /health")
    wait_until(lambda: any(h["state"] == "online" for h in cluster.hives()), STARTUP_TIMEOUT,
               "the hive's first heartbeat")


def kill_hive(cluster: Cluster) -> None:
    hive = cluster.processes.pop()
    hive.send_signal(signal.SIGKILL)
    hive.wait(timeout=10)


def result(found: list[dict[str, Any]]) -> Any:
    assert found[-1]["type"] == "done", found[-1]
    return next(event["data"] for event in found if event["type"] == "data")


def hive_workers(cluster: Cluster) -> list[dict[str, Any]]:
    return list(result(cluster.run({"operation": "worker_list"})[0])["workers"])


def worker_state(cluster: Cluster, worker_id: str) -> dict[str, Any] | None:
    for worker in hive_workers(cluster):
        if worker["worker_id"] == worker_id:
            return worker
    return None


def wait_queen_sees_ready(cluster: Cluster, worker_id: str) -> None:
    def ready() -> bool:
        workers = result(cluster.run({"operation": "status"})[0])["workers"]
        return any(w["worker_id"] == worker_id and w["state"] == "ready" for w in workers)

    wait_until(ready, 30, f"the queen to see worker {worker_id} ready")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_queen_and_hive(tmp_path_factory.mktemp("hive-e2e"))
    try:
        yield running
    finally:
        running.stop()


def test_killed_worker_errors_fast_and_restarts(cluster: Cluster) -> None:
    spawned = result(cluster.run({"operation": "worker_spawn"})[0])
    worker_id, pid = spawned["worker_id"], spawned["pid"]
    wait_queen_sees_ready(cluster, worker_id)
    job_id = cluster.submit({**INFER, "max_tokens": 2000, "temperature": 0.8,
                             "worker_id": worker_id})
    error_after: float | None = None
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "GET", f"{cluster.queen_url}/v1/jobs/{job_id}/stream"
    ) as source:
        killed_at = 0.0
        for message in source.iter_sse():
            if message.data.startswith("["):
                break
            event = json.loads(message.data)
            if event["type"] == "token" and not killed_at:
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
            if event["type"] == "error":
                assert killed_at, event["message"]
                error_after = time.monotonic() - killed_at
                break

    assert error_after is not None
    assert error_after < 2.0

    def ready_again() -> bool:
        worker = worker_state(cluster, worker_id)
        return worker is not None and worker["state"] == "ready" and worker["restarts"] >= 1

    wait_until(ready_again, 120, f"worker {worker_id} to be restarted")
    restarted = worker_state(cluster, worker_id)
    assert restarted is not None
    assert restarted["pid"] != pid
    wait_queen_sees_ready(cluster, worker_id)
    found, marker = cluster.run({**INFER, "max_tokens": 4, "worker_id": worker_id})
    assert marker == "[DONE]"
    assert any(event["type"] == "token" for event in found)


def test_hive_restart_adopts_worker(cluster: Cluster) -> None:
    spawned = result(cluster.run({"operation": "model_load", "id": "gemma-3-270m"})[0])
    kill_hive(cluster)
    assert psutil.pid_exists(spawned["pid"])

    start_hive(cluster)

    def adopted() -> bool:
        worker = worker_state(cluster, spawned["worker_id"])
        return worker is not None and worker["state"] == "ready"

    wait_until(adopted, 60, "the restarted hive to adopt its worker")
    worker = worker_state(cluster, spawned["worker_id"])
    assert worker is not None
    assert worker["pid"] == spawned["pid"]
    assert worker["token"] is None


def test_model_unload_stops_worker(cluster: Cluster) -> None:
    loaded = result(cluster.run({"operation": "model_load", "id": "gemma-3-270m"})[0])

    unloaded = result(cluster.run({"operation": "model_unload", "id": "gemma-3-270m"})[0])

    assert loaded["worker_id"] in unloaded["stopped_workers"]
    assert not psutil.pid_exists(loaded["pid"]) or psutil.Process(
        loaded["pid"]).status() == psutil.STATUS_ZOMBIE
    assert hive_workers(cluster) == []


def test_hive_stop_leaves_no_worker(tmp_path: Path) -> None:
    cluster = start_queen_and_hive(tmp_path / "stop")
    try:
        result(cluster.run({"operation": "worker_spawn"})[0])
        assert worker_pids(cluster.root)
        hive = cluster.processes[-1]
        hive.send_signal(signal.SIGTERM)
        hive.wait(timeout=30)
    finally:
        cluster.stop()

    assert worker_pids(cluster.root) == []


def test_orphaned_worker_exits(tmp_path: Path) -> None:
    cluster = start_queen_and_hive(tmp_path / "orphan", "--worker-orphan-timeout", "2")
    try:
        spawned = result(cluster.run({"operation": "worker_spawn"})[0])
        kill_hive(cluster)
        process = psutil.Process(spawned["pid"])
        process.wait(timeout=60)
    finally:
        cluster.stop()

    assert worker_pids(cluster.root) == []


@pytest.fixture
def hub(small_gguf: bytes) -> Iterator[FakeHub]:
    with running_hub() as running:
        running.add(REPO_FILE, small_gguf)
        yield running


def test_download_resumes_after_hive_restart(
    hub: FakeHub, small_gguf: bytes, tmp_path: Path
) -> None:
    hub.stall_after, hub.stalls = 1_200_000, 1
    cluster = start_queen_and_hive(tmp_path / "download", HF_ENDPOINT=hub.base_url)
    ref = "hf:rbee-test/tiny-GGUF:tiny-Q8_0.gguf"
    try:
        cluster.submit({"operation": "model_download", "model": ref})
        assert hub.stalled.wait(60)
        partials = (tmp_path / "download").rglob

        def partial_has_bytes() -> bool:
            found = list(partials("tiny-Q8_0.gguf.partial"))
            return bool(found) and found[0].stat().st_size > 0

        wait_until(partial_has_bytes, 30, "bytes in the partial file")
        partial = next(partials("tiny-Q8_0.gguf.partial"))
        kill_hive(cluster)
        kept = partial.stat().st_size

        start_hive(cluster)

        def available() -> bool:
            found, _ = cluster.run({"operation": "model_get", "id": "tiny-Q8_0"})
            return bool(result(found)["state"] == "available")

        wait_until(available, 60, "the resumed download to finish")
        entry = result(cluster.run({"operation": "model_get", "id": "tiny-Q8_0"})[0])
    finally:
        cluster.stop()

    assert hub.ranges()[-1] == f"bytes={kept}-"
    assert entry["size"] == len(small_gguf)
    assert entry["architecture"] == "llama"
    assert entry["quantization"] == "Q8_0"
    assert Path(entry["path"]).read_bytes() == small_gguf


def test_download_and_delete_through_queen(hub: FakeHub, tmp_path: Path) -> None:
    cluster = start_queen_and_hive(tmp_path / "delete", HF_ENDPOINT=hub.base_url)
    ref = "hf:rbee-test/tiny-GGUF:tiny-Q8_0.gguf"
    try:
        found, _ = cluster.run({"operation": "model_download", "model": ref, "id": "tiny"})
        entry = result(found)
        progress = [event for event in found if event["type"] == "progress"]
        deleted = result(cluster.run({"operation": "model_delete", "id": "tiny"})[0])
        missing, marker = cluster.run({"operation": "model_get", "id": "tiny"})
    finally:
        cluster.stop()

    assert entry["state"] == "available"
    assert progress[-1]["fields"]["percent"] == 100.0
    assert deleted["state"] == "deleted"
    assert not Path(entry["path"]).exists()
    assert marker.startswith("[ERROR]")
    assert "tiny" in missing[-1]["message"]
