"""The worker process on its own: health, OpenAI-shaped streaming, queue limit, disconnects."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from rbee_daemons.hive import default_model
from rbee_daemons.worker.app import Worker
from rbee_daemons.worker.engine import LlamaEngine
from tests.e2e.conftest import free_port, isolated_env, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("model") / default_model.FILE_NAME
    default_model.assemble(target)
    return target


@pytest.fixture(scope="module")
def worker_url(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("worker")
    port = free_port()
    with (root / "worker.out").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rbee_daemons.worker", "--model-path", str(model_path),
             "--model-id", "gemma-3-270m", "--worker-id", "worker-test", "--port", str(port),
             "--max-queue", "0"],
            env=isolated_env(root), stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 60, "the worker to load its model")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def completion(**fields: Any) -> dict[str, Any]:
    return {"prompt": "The sky is", "max_tokens": 8, "temperature": 0, **fields}


def stream_chunks(url: str, body: dict[str, Any]) -> list[str]:
    with httpx.Client(timeout=60) as client, connect_sse(
        client, "POST", f"{url}/v1/completions", json=body
    ) as source:
        assert source.response.status_code == 200
        return [message.data for message in source.iter_sse()]


async def test_health_is_503_before_the_model_loads(model_path: Path) -> None:
    worker = Worker(LlamaEngine(model_path), worker_id="worker-unloaded", model_id="m",
                    max_queue=1)
    transport = httpx.ASGITransport(app=worker.app())

    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        response = await client.get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "loading"


def test_health_is_200_when_ready(worker_url: str) -> None:
    response = httpx.get(f"{worker_url}/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_stream_has_openai_chunks_and_usage(worker_url: str) -> None:
    data = stream_chunks(worker_url, completion(stream=True,
                                                stream_options={"include_usage": True}))

    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishing[-1]["choices"][0]["finish_reason"] == "length"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["completion_tokens"] == 8
    assert usage["prompt_tokens"] > 0


def test_non_streaming_completion(worker_url: str) -> None:
    response = httpx.post(f"{worker_url}/v1/completions", json=completion(), timeout=60)

    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["text"]
    assert body["usage"]["completion_tokens"] == 8


def test_narration_only_when_asked(worker_url: str) -> None:
    body = completion(stream=True)
    with httpx.Client(timeout=60) as client, connect_sse(
        client, "POST", f"{worker_url}/v1/completions", json=body,
        headers={"X-Rbee-Narration": "1"},
    ) as source:
        kinds = [message.event for message in source.iter_sse()]
    plain = stream_chunks(worker_url, body)

    assert "narration" in kinds
    assert all("narration" not in item for item in plain)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "temperature": -1}, "temperature"),
        ({"prompt": "", "max_tokens": 4}, "prompt"),
        ({"max_tokens": 4}, "prompt"),
        ({"prompt": "x", "n": 2}, "n"),
    ],
)
def test_invalid_request_names_field(worker_url: str, body: dict[str, Any], field: str) -> None:
    response = httpx.post(f"{worker_url}/v1/completions", json=body)

    assert response.status_code == 400
    assert field in response.json()["error"]["message"]


def test_malformed_json_is_400(worker_url: str) -> None:
    response = httpx.post(f"{worker_url}/v1/completions", content=b"{not json")

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_prompt_over_context_fails_clearly(worker_url: str) -> None:
    response = httpx.post(
        f"{worker_url}/v1/completions",
        json=completion(prompt="word " * 5000, max_tokens=8, stream=True),
        timeout=60,
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert "context size" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "a\x00b"}, "prompt"),
        ({"prompt": "x", "stop": [""]}, "stop"),
        ({"prompt": "x", "temperature": "0.5"}, "temperature"),
        ({"prompt": "x", "stream": "yes"}, "stream"),
    ],
)
def test_worker_rejects_what_the_queen_rejects(
    worker_url: str, body: dict[str, Any], field: str
) -> None:
    response = httpx.post(f"{worker_url}/v1/completions", json=body)

    assert response.status_code == 400
    assert field in response.json()["error"]["message"]


def test_full_queue_gets_429_and_disconnect_frees_it(worker_url: str) -> None:
    body = completion(prompt="Write a long story:", max_tokens=2000, temperature=0.9,
                      stream=True)
    with httpx.Client(timeout=60) as client, connect_sse(
        client, "POST", f"{worker_url}/v1/completions", json=body
    ) as source:
        events = source.iter_sse()
        next(events)
        busy = httpx.post(f"{worker_url}/v1/completions", json=completion(), timeout=10)

    assert busy.status_code == 429
    assert busy.headers["Retry-After"] == "1"

    def idle() -> bool:
        return bool(httpx.get(f"{worker_url}/health").json()["in_flight"] == 0)

    wait_until(idle, 10, "the abandoned generation to stop")
    after = httpx.post(f"{worker_url}/v1/completions", json=completion(), timeout=60)
    assert after.status_code == 200
