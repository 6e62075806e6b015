"""End to end through real processes: queen → hive → worker with the real model."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from tests.e2e.conftest import Cluster, free_port, wait_until

pytestmark = pytest.mark.e2e

PROMPT = "The capital of France is"
ACTORS = {"queen-rbee", "rbee-hive", "llm-worker-rbee"}


def infer(prompt: str = PROMPT, **fields: object) -> dict[str, object]:
    return {"operation": "infer", "prompt": prompt, "max_tokens": 16, "temperature": 0.0,
            "seed": 7, **fields}


def test_infer_streams_tokens_and_narration(cluster: Cluster) -> None:
    found, marker = cluster.run(infer())

    tokens = [event for event in found if event["type"] == "token"]
    narration = [event for event in found if event["type"] == "narration"]
    assert len(tokens) >= 1
    assert [token["index"] for token in tokens] == list(range(len(tokens)))
    assert "".join(token["text"] for token in tokens).strip()
    assert {event["actor"] for event in narration} >= ACTORS
    for event in narration:
        for mode in ("human", "cute", "story"):
            assert event[mode].strip(), f"{event['action']} has no {mode} text"
    assert found[-1]["type"] == "done"
    assert marker == "[DONE]"


def test_infer_sequence_numbers_are_contiguous(cluster: Cluster) -> None:
    found, _ = cluster.run(infer())

    assert [event["seq"] for event in found] == list(range(1, len(found) + 1))
    assert len({event["job_id"] for event in found}) == 1


def test_infer_temperature_zero_is_repeatable(cluster: Cluster) -> None:
    first, _ = cluster.run(infer(max_tokens=24))
    second, _ = cluster.run(infer(max_tokens=24))

    def text(found: list[dict[str, object]]) -> str:
        return "".join(str(event["text"]) for event in found if event["type"] == "token")

    assert text(first)
    assert text(first) == text(second)


def test_stream_replays_after_last_event_id(cluster: Cluster) -> None:
    job_id = cluster.submit(infer())
    full, _ = cluster.stream(job_id)

    replayed, marker = cluster.stream(job_id, last_event_id=5)

    assert replayed == full[5:]
    assert marker == "[DONE]"


def test_stream_reconnect_sees_every_event_once(cluster: Cluster) -> None:
    job_id = cluster.submit(infer(max_tokens=32))
    seen: list[dict[str, object]] = []
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "GET", f"{cluster.queen_url}/v1/jobs/{job_id}/stream"
    ) as source:
        for message in source.iter_sse():
            seen.append(json.loads(message.data))
            if len(seen) == 3:
                break

    rest, _ = cluster.stream(job_id, last_event_id=int(str(seen[-1]["seq"])))

    combined = [event["seq"] for event in seen + rest]
    assert combined == list(range(1, len(combined) + 1))
    assert rest[-1]["type"] == "done"


def test_cancel_ends_running_infer(cluster: Cluster) -> None:
    job_id = cluster.submit(infer(max_tokens=2000, temperature=0.8))
    found: list[dict[str, object]] = []
    marker = ""
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "GET", f"{cluster.queen_url}/v1/jobs/{job_id}/stream"
    ) as source:
        for message in source.iter_sse():
            if message.data.startswith("["):
                marker = message.data
                break
            event = json.loads(message.data)
            found.append(event)
            if event["type"] == "token" and event["index"] == 3:
                cancel = client.delete(f"{cluster.queen_url}/v1/jobs/{job_id}")
                assert cancel.status_code == 200

    tokens = [event for event in found if event["type"] == "token"]
    assert found[-1]["type"] == "cancelled"
    assert marker == "[CANCELLED]"
    assert len(tokens) < 2000
    job = httpx.get(f"{cluster.queen_url}/v1/jobs/{job_id}").json()
    assert job["state"] == "cancelled"


def test_cancel_frees_the_worker(cluster: Cluster) -> None:
    job_id = cluster.submit(infer(max_tokens=2000, temperature=0.8))
    found, _ = [], ""

    def first_token() -> bool:
        job = httpx.get(f"{cluster.queen_url}/v1/jobs/{job_id}").json()
        return int(job["events"]) > 8

    wait_until(first_token, 60, "the first tokens")
    httpx.delete(f"{cluster.queen_url}/v1/jobs/{job_id}")
    found, _ = cluster.stream(job_id)
    worker_id = next(e["fields"]["worker_id"] for e in found if e.get("action") == "queen_route"
                     or e.get("action") == "hive_worker_ready")
    worker = next(w for w in httpx.get(f"{cluster.queen_url}/v1/hives").json()["hives"])
    assert worker["state"] == "online"

    def idle() -> bool:
        for hive_worker in _workers(cluster):
            if hive_worker["worker_id"] == worker_id:
                return int(hive_worker["in_flight"]) == 0
        return False

    wait_until(idle, 10, f"worker {worker_id} to report no request in flight")


def _workers(cluster: Cluster) -> list[dict[str, object]]:
    found, _ = cluster.run({"operation": "status"})
    data = next(event["data"] for event in found if event["type"] == "data")
    return list(data["workers"])


def test_client_disconnect_cancels_infer(cluster: Cluster) -> None:
    job_id = cluster.submit(infer(max_tokens=2000, temperature=0.8))
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "GET", f"{cluster.queen_url}/v1/jobs/{job_id}/stream"
    ) as source:
        for message in source.iter_sse():
            event = json.loads(message.data)
            if event["type"] == "token":
                break

    def cancelled() -> bool:
        state = httpx.get(f"{cluster.queen_url}/v1/jobs/{job_id}").json()["state"]
        return state == "cancelled"

    wait_until(cancelled, 10, "the abandoned job to be cancelled")


def test_bad_operation_is_rejected(cluster: Cluster) -> None:
    response = httpx.post(f"{cluster.queen_url}/v1/jobs", json={"operation": "fly_to_moon"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert "fly_to_moon" in error["message"]
    assert error["type"] == "invalid_request_error"


def test_invalid_field_names_the_field(cluster: Cluster) -> None:
    response = httpx.post(f"{cluster.queen_url}/v1/jobs", json=infer(max_tokens="many"))

    assert response.status_code == 400
    assert "max_tokens" in response.json()["error"]["message"]


def test_unknown_model_is_rejected_naming_it(cluster: Cluster) -> None:
    response = httpx.post(f"{cluster.queen_url}/v1/jobs", json=infer(model="no-such-model"))

    assert response.status_code == 404
    assert "no-such-model" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "model_not_found"


def test_unreachable_hive_fails_naming_it(cluster: Cluster) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"
    heartbeat = {
        "hive_id": "ghost-hive", "url": dead_url, "version": "test",
        "devices": {"ram": {"total_bytes": 8 * 10**9, "available_bytes": 8 * 10**9}},
        "models": [{"id": "ghost-model", "state": "available", "size": 1000}],
        "workers": [],
    }
    assert httpx.post(f"{cluster.queen_url}/v1/hive-heartbeat", json=heartbeat).status_code == 200

    found, _ = cluster.run(infer(model="ghost-model"))

    assert found[-1]["type"] == "error"
    assert "ghost-hive" in str(found[-1]["message"])
    assert dead_url in str(found[-1]["message"])


def test_worker_crash_during_load_fails_naming_it(tmp_path: Path) -> None:
    from tests.e2e.conftest import isolated_env, start_cluster

    root = tmp_path / "crash"
    env = isolated_env(root)
    data = Path(env["XDG_DATA_HOME"]) / "rbee"
    bad_file = data / "models" / "broken-model" / "broken.gguf"
    bad_file.parent.mkdir(parents=True)
    bad_file.write_bytes(b"GGUF" + b"\x00" * 64)
    _seed_catalog(data / "catalog.sqlite3", "broken-model", bad_file)
    cluster = start_cluster(root)
    try:
        found, marker = cluster.run(infer(model="broken-model"))
    finally:
        cluster.stop()

    assert found[-1]["type"] == "error"
    message = str(found[-1]["message"])
    assert "broken-model" in message
    assert "exited with code" in message
    assert marker.startswith("[ERROR]")


def _seed_catalog(db_path: Path, model_id: str, model_file: Path) -> None:
    from rbee_daemons.hive.catalog import Catalog, ModelEntry

    catalog = Catalog(db_path, db_path.parent / "models")
    catalog.add(ModelEntry(model_id, model_id, f"file:{model_file}", str(model_file),
                           model_file.stat().st_size, None, "available", "2026-01-01T00:00:00Z",
                           None))
    catalog.close()
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM models").fetchone()[0] == 1


def test_concurrent_infers_all_complete(cluster: Cluster) -> None:
    results: list[str] = []

    def run_one() -> None:
        found, _ = cluster.run(infer(max_tokens=8))
        results.append(str(found[-1]["type"]))

    threads = [threading.Thread(target=run_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert results == ["done", "done", "done"]
