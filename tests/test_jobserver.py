"""Tests of the job endpoints over real HTTP: a JobServer under uvicorn on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from starlette.applications import Starlette

from rbee_daemons import events
from rbee_daemons.errors import ModelError
from rbee_daemons.http import MAX_BODY_BYTES
from rbee_daemons.jobs import JobRegistry
from rbee_daemons.jobserver import JobServer, OperationHandler
from rbee_daemons.narration import narrate
from tests.helpers import SseMessage, parse_sse_body, serve_app_in_thread

STEP_COUNT = 5
# Events of a `status` job: one narration per step, the returned data, then `done`.
STATUS_EVENT_COUNT = STEP_COUNT + 2
FAILURE_MESSAGE = "The test model is broken; pick another model."
# Deadline for waiting on a state change that the server makes by itself.
STATE_WAIT_SECONDS = 10.0


async def narrate_steps(operation: Any) -> dict[str, int]:
    for step in range(1, STEP_COUNT + 1):
        narrate(
            "test_step",
            f"Step {step} of {STEP_COUNT} is running.",
            cute=f"🐝 Buzzing through step {step}!",
            story=f'"Which step is this?" asked the queen. "Step {step}," said the hive.',
            step=step,
        )
        await asyncio.sleep(0.01)
    return {"steps": STEP_COUNT}


async def wait_for_cancel(operation: Any) -> None:
    narrate(
        "test_wait",
        "The test job is waiting until it is cancelled.",
        cute="🐝 Hovering patiently until someone says stop.",
        story='"How long will you wait?" asked the queen. "Until you cancel me," said the hive.',
    )
    await asyncio.sleep(3600)


async def fail_on_purpose(operation: Any) -> None:
    raise ModelError(FAILURE_MESSAGE, code="test_failure")


def build_app() -> Starlette:
    # The operation names only select a handler; each handler is a small test double.
    handlers = {
        "status": OperationHandler(narrate_steps),
        "hive_check": OperationHandler(wait_for_cancel),
        "infer": OperationHandler(wait_for_cancel, cancel_on_disconnect=True),
        "queen_check": OperationHandler(fail_on_purpose),
    }
    server = JobServer(JobRegistry(), handlers, ping_interval=0.2)
    return Starlette(routes=server.routes())


@pytest.fixture(scope="module")
def job_server_url() -> Iterator[str]:
    with serve_app_in_thread(build_app()) as base_url:
        yield base_url


@pytest.fixture
async def client(job_server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=job_server_url, timeout=STATE_WAIT_SECONDS) as opened:
        yield opened


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def read_stream(
    client: httpx.AsyncClient, sse_url: str, headers: dict[str, str] | None = None
) -> list[SseMessage]:
    response = await client.get(sse_url, headers=headers)
    assert response.status_code == 200, response.text
    messages, _ = parse_sse_body(response.text)
    return messages


def event_messages(messages: list[SseMessage]) -> list[dict[str, Any]]:
    """Decode the JSON events of a stream, leaving out the end marker."""
    return [json.loads(message.data) for message in messages if message.id is not None]


async def read_first_event(client: httpx.AsyncClient, sse_url: str) -> dict[str, Any]:
    async with aconnect_sse(client, "GET", sse_url) as source:
        async for message in source.aiter_sse():
            return dict(json.loads(message.data))
    raise AssertionError(f"{sse_url} ended without an event")


async def wait_for_state(client: httpx.AsyncClient, job_id: str, state: str) -> str:
    """Poll GET /v1/jobs/<id> until the job reaches `state` or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STATE_WAIT_SECONDS
    current = ""
    while loop.time() < deadline:
        response = await client.get(f"/v1/jobs/{job_id}")
        current = response.json()["state"]
        if current == state:
            break
        await asyncio.sleep(0.05)
    return current


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return dict(body["error"])


async def test_submit_returns_job_and_sse_url(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", json={"operation": "status"})
    body = response.json()

    assert response.status_code == 201
    assert body["job_id"].startswith("job-")
    assert body["sse_url"] == f"/v1/jobs/{body['job_id']}/stream"


async def test_submit_bad_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/jobs", content=b'{"operation": ', headers={"content-type": "application/json"}
    )

    error = assert_error_shape(response, 400)
    assert "not valid JSON" in error["message"]
    assert error["type"] == "invalid_request_error"


async def test_submit_non_utf8_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", content=b'{"operation": "\xff"}')

    error = assert_error_shape(response, 400)
    assert "UTF-8" in error["message"]


@pytest.mark.parametrize("body", [[], ["status"], "status", 5, None])
async def test_submit_non_object_is_400(client: httpx.AsyncClient, body: Any) -> None:
    response = await client.post("/v1/jobs", content=json.dumps(body).encode())

    error = assert_error_shape(response, 400)
    assert "JSON object" in error["message"]


async def test_submit_unknown_operation_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", json={"operation": "model_list"})

    error = assert_error_shape(response, 400)
    assert error["code"] == "unknown_operation"
    assert "hive_check, infer, queen_check, status" in error["message"]


async def test_submit_missing_operation_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", json={"prompt": "hello"})

    error = assert_error_shape(response, 400)
    assert error["code"] == "missing_operation"


async def test_submit_invalid_field_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/jobs", json={"operation": "infer", "prompt": "hi", "max_tokens": "5"}
    )

    error = assert_error_shape(response, 400)
    assert error["code"] == "invalid_field"
    assert "'max_tokens'" in error["message"]


async def test_submit_rejected_creates_no_job(client: httpx.AsyncClient) -> None:
    before = (await client.get("/v1/jobs")).json()["jobs"]

    await client.post("/v1/jobs", json={"operation": "infer", "prompt": ""})
    after = (await client.get("/v1/jobs")).json()["jobs"]

    assert len(after) == len(before)


async def test_submit_body_over_limit_is_400(client: httpx.AsyncClient) -> None:
    padding = "x" * MAX_BODY_BYTES
    response = await client.post("/v1/jobs", json={"operation": "status", "pad": padding})

    error = assert_error_shape(response, 400)
    assert str(MAX_BODY_BYTES) in error["message"]


async def test_submit_chunked_body_over_limit_is_400(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"operation": "status", "pad": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    response = await client.post("/v1/jobs", content=chunks())

    error = assert_error_shape(response, 400)
    assert str(MAX_BODY_BYTES) in error["message"]


async def test_get_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs/job-unknown")

    error = assert_error_shape(response, 404)
    assert error["code"] == "not_found"


async def test_stream_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs/job-unknown/stream")

    assert_error_shape(response, 404)


async def test_delete_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/jobs/job-unknown")

    assert_error_shape(response, 404)


async def test_stream_headers(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})

    response = await client.get(job["sse_url"])

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"


async def test_stream_ids_equal_seq(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})

    messages = await read_stream(client, job["sse_url"])
    with_id = [message for message in messages if message.id is not None]

    assert [message.id for message in with_id] == [
        str(json.loads(message.data)["seq"]) for message in with_id
    ]
    assert [int(message.id) for message in with_id] == list(range(1, STATUS_EVENT_COUNT + 1))


async def test_stream_events_belong_to_job(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})

    streamed = event_messages(await read_stream(client, job["sse_url"]))

    assert {event["job_id"] for event in streamed} == {job["job_id"]}


async def test_stream_carries_narration(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})

    streamed = event_messages(await read_stream(client, job["sse_url"]))
    narrations = [event for event in streamed if event["type"] == events.NARRATION]

    assert [event["fields"]["step"] for event in narrations] == list(range(1, STEP_COUNT + 1))
    assert all(event["cute"] and event["story"] for event in narrations)


async def test_stream_ends_done_then_marker(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})

    messages = await read_stream(client, job["sse_url"])
    streamed = event_messages(messages)

    assert streamed[-2]["type"] == events.DATA
    assert streamed[-2]["data"] == {"steps": STEP_COUNT}
    assert streamed[-1]["type"] == events.DONE
    assert messages[-1].data == "[DONE]"
    assert messages[-1].id is None


async def test_stream_error_ends_with_marker(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "queen_check"})

    messages = await read_stream(client, job["sse_url"])
    terminal = json.loads(messages[-2].data)

    assert terminal["type"] == events.ERROR
    assert terminal["message"] == FAILURE_MESSAGE
    assert terminal["code"] == "test_failure"
    assert messages[-1].data == f"[ERROR] {FAILURE_MESSAGE}"


async def test_stream_reconnect_resumes_after_id(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})
    first_part = []
    async with aconnect_sse(client, "GET", job["sse_url"]) as source:
        async for message in source.aiter_sse():
            first_part.append(json.loads(message.data))
            if len(first_part) == 3:
                break

    last_seen = str(first_part[-1]["seq"])
    resumed = event_messages(
        await read_stream(client, job["sse_url"], headers={"Last-Event-ID": last_seen})
    )
    seqs = [event["seq"] for event in first_part + resumed]

    assert [event["seq"] for event in first_part] == [1, 2, 3]
    assert resumed[0]["seq"] == 4
    assert seqs == list(range(1, STATUS_EVENT_COUNT + 1))
    assert resumed[-1]["type"] == events.DONE


async def test_stream_query_last_event_id(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})
    await read_stream(client, job["sse_url"])

    resumed = event_messages(await read_stream(client, f"{job['sse_url']}?last_event_id=5"))

    assert [event["seq"] for event in resumed] == list(range(6, STATUS_EVENT_COUNT + 1))


async def test_stream_finished_from_last_id(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})
    await read_stream(client, job["sse_url"])

    messages = await read_stream(
        client, job["sse_url"], headers={"Last-Event-ID": str(STATUS_EVENT_COUNT)}
    )

    assert [message.data for message in messages] == ["[DONE]"]


async def test_stream_garbage_last_id_replays_all(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})

    messages = await read_stream(client, job["sse_url"], headers={"Last-Event-ID": "abc"})

    assert len(event_messages(messages)) == STATUS_EVENT_COUNT


async def test_stream_idle_sends_ping(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "hive_check"})
    await read_first_event(client, job["sse_url"])
    comments = 0

    async with client.stream("GET", job["sse_url"]) as response:
        async for line in response.aiter_lines():
            if line.startswith(":"):
                comments += 1
                break

    await client.delete(f"/v1/jobs/{job['job_id']}")
    assert comments == 1


async def test_delete_cancels_running_job(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "hive_check"})
    first = await read_first_event(client, job["sse_url"])

    response = await client.delete(f"/v1/jobs/{job['job_id']}")
    messages = await read_stream(client, job["sse_url"])
    streamed = event_messages(messages)

    assert first["type"] == events.NARRATION
    assert response.status_code == 200
    assert response.json()["job_id"] == job["job_id"]
    assert streamed[-1]["type"] == events.CANCELLED
    assert streamed[-1]["message"] == "Cancelled by request."
    assert messages[-1].data == "[CANCELLED]"


async def test_delete_ends_open_stream(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "hive_check"})
    streamed: list[dict[str, Any]] = []
    markers: list[str] = []

    async with aconnect_sse(client, "GET", job["sse_url"]) as source:
        async for message in source.aiter_sse():
            if message.data.startswith("["):
                markers.append(message.data)
                continue
            streamed.append(json.loads(message.data))
            if len(streamed) == 1:
                await client.delete(f"/v1/jobs/{job['job_id']}")

    assert [event["type"] for event in streamed] == [events.NARRATION, events.CANCELLED]
    assert markers == ["[CANCELLED]"]


async def test_delete_is_idempotent(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "hive_check"})
    await read_first_event(client, job["sse_url"])

    first = await client.delete(f"/v1/jobs/{job['job_id']}")
    await read_stream(client, job["sse_url"])
    second = await client.delete(f"/v1/jobs/{job['job_id']}")
    messages = await read_stream(client, job["sse_url"])

    assert first.status_code == 200
    assert second.status_code == 200
    assert second.json()["state"] == "cancelled"
    assert [event["type"] for event in event_messages(messages)].count(events.CANCELLED) == 1


async def test_delete_finished_job_keeps_state(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})
    await read_stream(client, job["sse_url"])

    response = await client.delete(f"/v1/jobs/{job['job_id']}")

    assert response.status_code == 200
    assert response.json()["state"] == "completed"


async def test_list_jobs_shows_state(client: httpx.AsyncClient) -> None:
    done_job = await submit(client, {"operation": "status"})
    await read_stream(client, done_job["sse_url"])
    failed_job = await submit(client, {"operation": "queen_check"})
    await read_stream(client, failed_job["sse_url"])

    response = await client.get("/v1/jobs")
    listed = {job["job_id"]: job for job in response.json()["jobs"]}

    assert response.status_code == 200
    assert listed[done_job["job_id"]]["state"] == "completed"
    assert listed[done_job["job_id"]]["operation"] == "status"
    assert listed[failed_job["job_id"]]["state"] == "failed"
    assert listed[failed_job["job_id"]]["error"] == FAILURE_MESSAGE


async def test_list_jobs_shows_cancelled(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "hive_check"})
    await read_first_event(client, job["sse_url"])
    await client.delete(f"/v1/jobs/{job['job_id']}")
    await read_stream(client, job["sse_url"])

    listed = {entry["job_id"]: entry for entry in (await client.get("/v1/jobs")).json()["jobs"]}

    assert listed[job["job_id"]]["state"] == "cancelled"
    assert listed[job["job_id"]]["finished_at"] is not None


async def test_get_job_summary(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "status"})
    await read_stream(client, job["sse_url"])

    response = await client.get(f"/v1/jobs/{job['job_id']}")
    summary = response.json()

    assert response.status_code == 200
    assert summary["job_id"] == job["job_id"]
    assert summary["state"] == "completed"
    assert summary["events"] == STATUS_EVENT_COUNT


async def test_disconnect_cancels_inference(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "infer", "prompt": "Hello"})
    await read_first_event(client, job["sse_url"])

    state = await wait_for_state(client, job["job_id"], "cancelled")

    assert state == "cancelled"


async def test_disconnect_keeps_other_jobs(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"operation": "hive_check"})
    await read_first_event(client, job["sse_url"])
    # Wait past the disconnect grace period of a cancel-on-disconnect job.
    await asyncio.sleep(1.0)

    state = (await client.get(f"/v1/jobs/{job['job_id']}")).json()["state"]
    await client.delete(f"/v1/jobs/{job['job_id']}")

    assert state == "running"
