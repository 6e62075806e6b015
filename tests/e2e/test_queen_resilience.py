"""The queen under restarts, lost hives, skewed clocks, full queues and tokens."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from httpx_sse import connect_sse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from rbee_daemons.auth import write_token_file
from tests.e2e.conftest import Cluster, free_port, healthy, start_cluster, wait_until

pytestmark = pytest.mark.e2e

PROMPT = "The capital of France is"


def infer(**fields: Any) -> dict[str, Any]:
    return {"operation": "infer", "prompt": PROMPT, "max_tokens": 16, "temperature": 0.0,
            **fields}


def fake_heartbeat(hive_id: str, worker_url: str | None = None, **extra: Any) -> dict[str, Any]:
    workers = []
    if worker_url:
        workers.append({"worker_id": f"{hive_id}-worker", "model": "stub-model",
                        "url": worker_url, "state": "ready", "port": 1, "pid": 1})
    return {
        "hive_id": hive_id, "url": "http://127.0.0.1:9", "version": "test",
        "devices": {"ram": {"total_bytes": 8 * 10**9, "available_bytes": 8 * 10**9}},
        "models": [{"id": "stub-model", "state": "available", "size": 1000}],
        "workers": workers, **extra,
    }


class SlowWorker:
    """A stand-in worker that streams one OpenAI chunk every 0.2 s and never finishes."""

    def __init__(self) -> None:
        self.port = free_port()
        app = Starlette(routes=[Route("/v1/completions", self.completions, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def completions(self, request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            while True:
                chunk = {"choices": [{"text": " tick", "index": 0, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
                await asyncio.sleep(0.2)

        return StreamingResponse(body(), media_type="text/event-stream")

    def __enter__(self) -> SlowWorker:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "the stand-in worker")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_heartbeats_with_skewed_clock_stay_online(cluster: Cluster) -> None:
    skewed = fake_heartbeat("skewed-hive", sent_at="1999-01-01T00:00:00Z")
    for _ in range(4):
        response = httpx.post(f"{cluster.queen_url}/v1/hive-heartbeat", json=skewed)
        assert response.status_code == 200
        time.sleep(1)

    hives = {hive["hive_id"]: hive for hive in cluster.hives()}
    assert hives["skewed-hive"]["state"] == "online"


def test_offline_hive_fails_its_job_naming_it(cluster: Cluster) -> None:
    url = f"{cluster.queen_url}/v1/hive-heartbeat"
    with SlowWorker() as worker:
        assert httpx.post(url, json=fake_heartbeat("flaky-hive", worker.url)).status_code == 200
        job_id = cluster.submit(infer(model="stub-model", max_tokens=10_000))
        found, marker = cluster.stream(job_id)

    assert found[-1]["type"] == "error"
    assert "flaky-hive" in found[-1]["message"]
    assert "offline" in found[-1]["message"]
    assert marker.startswith("[ERROR]")
    assert any(event["type"] == "token" for event in found)


def test_heartbeat_stream_sends_snapshot_changes_and_summary(cluster: Cluster) -> None:
    seen: list[dict[str, Any]] = []
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "GET", f"{cluster.queen_url}/v1/heartbeats/stream"
    ) as source:
        for message in source.iter_sse():
            event = json.loads(message.data)
            seen.append(event)
            if len(seen) == 1:
                client.post(f"{cluster.queen_url}/v1/hive-heartbeat",
                            json=fake_heartbeat("stream-hive"))
            if event["type"] == "summary":
                break

    assert seen[0]["type"] == "snapshot"
    assert any(hive["state"] == "online" for hive in seen[0]["hives"])
    joined = [e for e in seen if e["type"] == "hive_joined"]
    assert joined[0]["hive"]["hive_id"] == "stream-hive"
    assert seen[-1]["hives_total"] >= 2


@pytest.fixture
def small_queue_cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = start_cluster(tmp_path / "small-queue", queen_args=("--queue-limit", "1"))
    try:
        yield running
    finally:
        running.stop()


def test_full_queue_answers_429(small_queue_cluster: Cluster) -> None:
    cluster = small_queue_cluster
    warm, _ = cluster.run(infer(max_tokens=2))
    assert warm[-1]["type"] == "done", warm[-1]
    long = {"model": "gemma-3-270m", "prompt": "A long tale:", "max_tokens": 3000,
            "temperature": 0.9, "stream": True}
    first = cluster.submit(infer(prompt="A long tale:", max_tokens=3000, temperature=0.9))
    second = cluster.submit(infer(prompt="Another tale:", max_tokens=3000, temperature=0.9))

    def queued() -> bool:
        events = cluster.stream_so_far(second)
        return any(event.get("action") == "queen_queued" for event in events)

    with cluster.hold(first), cluster.hold(second):
        wait_until(queued, 60, "the second request to be queued")
        response = httpx.post(f"{cluster.queen_url}/v1/completions", json=long, timeout=30)
        job = httpx.post(f"{cluster.queen_url}/v1/jobs", json=infer(), timeout=30)
        queued_events = cluster.stream_so_far(second)
    httpx.delete(f"{cluster.queen_url}/v1/jobs/{first}")
    httpx.delete(f"{cluster.queen_url}/v1/jobs/{second}")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["type"] == "rate_limit_exceeded"
    assert job.status_code == 429
    assert job.headers["Retry-After"] == "1"
    position = next(e for e in queued_events if e.get("action") == "queen_queued")
    assert position["fields"]["position"] == 1


def test_queen_restart_keeps_history_and_adopts_workers(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "restart")
    try:
        done_job = cluster.submit(infer())
        before, _ = cluster.stream(done_job)
        worker_id = next(e["fields"]["worker_id"] for e in before
                         if e.get("action") == "hive_worker_ready")
        running = cluster.submit(infer(max_tokens=3000, temperature=0.9))
        wait_until(lambda: cluster.event_count(running) > 12, 60, "tokens to flow")

        queen = cluster.processes[0]
        os.killpg(queen.pid, signal.SIGKILL)
        queen.wait(timeout=10)
        cluster.restart_queen()

        wait_until(lambda: any(h["state"] == "online" for h in cluster.hives()), 20,
                   "the hive to re-register")
        replayed, marker = cluster.stream(done_job)
        interrupted = httpx.get(f"{cluster.queen_url}/v1/jobs/{running}").json()
        after, _ = cluster.run(infer())
    finally:
        cluster.stop()

    assert replayed == before
    assert marker == "[DONE]"
    assert interrupted["state"] == "failed"
    assert "restarted" in interrupted["error"]
    assert after[-1]["type"] == "done"
    assert not any(e.get("action") == "hive_worker_spawn" for e in after)
    routed = next(e for e in after if e.get("action") == "queen_route")
    assert routed["fields"]["worker_id"] == worker_id


def test_job_retention_is_bounded(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "retention", queen_args=("--job-retention-count", "3"))
    try:
        for _ in range(6):
            # Forwarded hive jobs are kept in the history; status queries are not.
            cluster.run({"operation": "model_list"})
        live = httpx.get(f"{cluster.queen_url}/v1/jobs").json()["jobs"]
        os.killpg(cluster.processes[0].pid, signal.SIGTERM)
        cluster.processes[0].wait(timeout=20)
        cluster.restart_queen()
        restored = httpx.get(f"{cluster.queen_url}/v1/jobs").json()["jobs"]
    finally:
        cluster.stop()

    assert len(live) <= 4
    assert len(restored) <= 4
    assert len(restored) >= 3


def test_token_guards_everything_but_health(tmp_path: Path) -> None:
    root = tmp_path / "token"
    token_path = root / "token"
    write_token_file(token_path, "s3cret-token-for-tests-0123456789")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "XDG_DATA_HOME": str(root / "data"),
           "XDG_STATE_HOME": str(root / "state"), "XDG_CONFIG_HOME": str(root / "config")}
    env.pop("RBEE_TOKEN", None)
    with (root / "queen.out").open("ab") as log:
        queen = subprocess.Popen(
            [sys.executable, "-m", "rbee_daemons.queen", "--port", str(port), "--token-file",
             str(token_path)], env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: healthy(url), 30, "the queen")
        anonymous = httpx.post(f"{url}/v1/jobs", json={"operation": "status"})
        wrong = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer nope"})
        right = httpx.post(f"{url}/v1/jobs", json={"operation": "status"},
                           headers={"Authorization": "Bearer s3cret-token-for-tests-0123456789"})
    finally:
        queen.terminate()
        queen.wait(timeout=10)

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert wrong.status_code == 401
    assert right.status_code == 201
    logs = "".join(path.read_text(errors="replace") for path in root.rglob("*.log"))
    assert "s3cret-token-for-tests" not in logs


def test_non_loopback_bind_without_token_refuses(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "c"),
           "XDG_DATA_HOME": str(tmp_path / "d"), "XDG_STATE_HOME": str(tmp_path / "s")}
    env.pop("RBEE_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "rbee_daemons.queen", "--host", "0.0.0.0", "--port",
         str(free_port())], env=env, capture_output=True, text=True, timeout=30,
    )

    assert result.returncode == 2
    assert "token" in result.stderr


class BrokenWorker(SlowWorker):
    """A stand-in worker that sends three chunks, then drops the stream unfinished."""

    async def completions(self, request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            for _ in range(3):
                chunk = {"choices": [{"text": " tock", "index": 0, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")


def test_failure_after_streaming_began_is_an_error_chunk(cluster: Cluster) -> None:
    url = f"{cluster.queen_url}/v1/hive-heartbeat"
    body = {"model": "stub-model", "prompt": "x", "max_tokens": 50, "stream": True}
    with BrokenWorker() as worker:
        beat = fake_heartbeat("broken-hive", worker.url)
        assert httpx.post(url, json=beat).status_code == 200
        with httpx.Client(timeout=30) as client, connect_sse(
            client, "POST", f"{cluster.queen_url}/v1/completions", json=body
        ) as source:
            status = source.response.status_code
            data = [message.data for message in source.iter_sse()]

    assert status == 200
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert "broken-hive" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert json.loads(data[0])["choices"][0]["text"] == " tock"


def test_hive_operation_is_forwarded(cluster: Cluster) -> None:
    hive_id = next(h["hive_id"] for h in cluster.hives() if h["url"] == cluster.hive_url)

    found, marker = cluster.run({"operation": "model_list", "hive_id": hive_id})

    data = next(event["data"] for event in found if event["type"] == "data")
    assert data["hive_id"] == hive_id
    assert [model["id"] for model in data["models"]] == ["gemma-3-270m"]
    assert marker == "[DONE]"


def test_hive_operation_for_unknown_hive_fails(cluster: Cluster) -> None:
    found, _ = cluster.run({"operation": "model_list", "hive_id": "nowhere-hive"})

    assert found[-1]["type"] == "error"
    assert "nowhere-hive" in found[-1]["message"]


def test_heartbeat_stream_reports_model_changes(cluster: Cluster) -> None:
    url = f"{cluster.queen_url}/v1/hive-heartbeat"
    first = fake_heartbeat("catalog-hive")
    second = fake_heartbeat("catalog-hive")
    second["models"] = [*first["models"], {"id": "new-model", "state": "downloading",
                                           "size": None}]
    assert httpx.post(url, json=first).status_code == 200
    changes: list[dict[str, Any]] = []
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "GET", f"{cluster.queen_url}/v1/heartbeats/stream"
    ) as source:
        for message in source.iter_sse():
            event = json.loads(message.data)
            if event["type"] == "snapshot":
                client.post(url, json=second)
            if event["type"] == "models_changed" and event["hive_id"] == "catalog-hive":
                changes.append(event)
                break

    assert [model["id"] for model in changes[0]["models"]] == ["stub-model", "new-model"]
