"""Bad input and shutdowns that once broke the daemons, each kept as a test."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from tests.e2e.conftest import Cluster, start_cluster, wait_until

pytestmark = pytest.mark.e2e

HUGE_INTEGER = b'{"operation": "status", "x": ' + b"9" * 5000 + b"}"
DEEP_NESTING = b'{"operation": "status", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize("body", [HUGE_INTEGER, DEEP_NESTING], ids=["huge-int", "deep-nesting"])
def test_unparseable_json_is_400_everywhere(cluster: Cluster, body: bytes) -> None:
    for url in (f"{cluster.queen_url}/v1/jobs", f"{cluster.queen_url}/v1/hive-heartbeat",
                f"{cluster.hive_url}/v1/jobs", f"{cluster.queen_url}/v1/completions"):
        response = httpx.post(url, content=body, timeout=30)

        assert response.status_code == 400, url
        assert response.json()["error"]["message"]


def test_heartbeat_with_bad_worker_is_rejected(cluster: Cluster) -> None:
    beat = {"hive_id": "bad-hive", "url": "http://127.0.0.1:9", "workers": [{"model": "m"}]}

    response = httpx.post(f"{cluster.queen_url}/v1/hive-heartbeat", json=beat)
    found, _ = cluster.run({"operation": "status"})

    assert response.status_code == 400
    assert "worker_id" in response.json()["error"]["message"]
    assert found[-1]["type"] == "done"
    assert all(hive["hive_id"] != "bad-hive" for hive in cluster.hives())


def test_temperature_zero_ignores_previous_prompts(cluster: Cluster) -> None:
    def text(prompt: str) -> str:
        found, _ = cluster.run({"operation": "infer", "prompt": prompt, "max_tokens": 24,
                                "temperature": 0.0, "seed": 1})
        return "".join(e["text"] for e in found if e["type"] == "token")

    first = text("Once upon a time")
    text("The weather today is")
    again = text("Once upon a time")
    text("Once upon a time there was")
    third = text("Once upon a time")

    assert first
    assert again == first
    assert third == first


def test_prompt_over_context_is_400_through_queen(cluster: Cluster) -> None:
    body = {"model": "gemma-3-270m", "prompt": "word " * 3000, "max_tokens": 3000}

    response = httpx.post(f"{cluster.queen_url}/v1/completions", json=body, timeout=60)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_nan_temperature_is_rejected(cluster: Cluster) -> None:
    body = b'{"operation": "infer", "prompt": "x", "temperature": NaN}'

    response = httpx.post(f"{cluster.queen_url}/v1/jobs", content=body)

    assert response.status_code == 400
    assert "temperature" in response.json()["error"]["message"]


def test_stopping_hive_goes_offline_at_once(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "goodbye")
    try:
        hive = cluster.processes[1]
        os.killpg(hive.pid, signal.SIGTERM)
        hive.wait(timeout=30)
        # Without the goodbye, the queen would call the hive online for 3 s, offline after 10.
        states = [h["state"] for h in cluster.hives()]
    finally:
        cluster.stop()

    assert states == ["offline"]


def test_queen_stop_cancels_open_streams(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "queen-stop")
    found: list[dict[str, object]] = []
    try:
        warm, _ = cluster.run({"operation": "infer", "prompt": "Hi", "max_tokens": 2})
        assert warm[-1]["type"] == "done"
        job_id = cluster.submit({"operation": "infer", "prompt": "A long story:",
                                 "max_tokens": 3000, "temperature": 0.9})

        def read() -> None:
            with httpx.Client(timeout=60) as client, connect_sse(
                client, "GET", f"{cluster.queen_url}/v1/jobs/{job_id}/stream"
            ) as source:
                for message in source.iter_sse():
                    if message.data.startswith("["):
                        break
                    found.append(json.loads(message.data))

        reader = threading.Thread(target=read)
        reader.start()
        wait_until(lambda: any(e["type"] == "token" for e in found), 60, "tokens")
        queen = cluster.processes[0]
        os.killpg(queen.pid, signal.SIGTERM)
        queen.wait(timeout=30)
        reader.join(timeout=30)
    finally:
        cluster.stop()

    assert found[-1]["type"] == "cancelled"
    assert "shutting down" in str(found[-1]["message"])
