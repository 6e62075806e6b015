"""The token relay: stream a completion from a worker into the queen's job as it arrives."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from rbee_daemons import events, narration
from rbee_daemons.errors import InvalidRequestError, QueueFullError, WorkerError
from rbee_daemons.operations import InferOperation
from rbee_daemons.queen.scheduler import WorkerTarget

NARRATION_HEADER = "x-rbee-narration"


def completion_request(operation: InferOperation) -> tuple[str, dict[str, Any]]:
    """Return the worker path and body for the operation: a completion or a chat reply."""
    body: dict[str, Any] = {
        "model": operation.model,
        "max_tokens": operation.max_tokens,
        "temperature": operation.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    for name in ("top_p", "top_k", "seed", "stop"):
        value = getattr(operation, name)
        if value is not None:
            body[name] = value
    if operation.messages is not None:
        body["messages"] = [message.model_dump() for message in operation.messages]
        return "/v1/chat/completions", body
    body["prompt"] = operation.prompt
    return "/v1/completions", body


def _chunk_text(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return str(delta.get("content") or "")
    return str(choice.get("text") or "")


async def relay_completion(
    client: httpx.AsyncClient, target: WorkerTarget, operation: InferOperation
) -> dict[str, Any]:
    """Emit one `token` event per token from the worker; return finish reason and usage.

    Closing the stream (the job was cancelled) disconnects from the worker, which then stops
    generating within one token.
    """
    path, body = completion_request(operation)
    where = f"worker {target.worker_id} on hive {target.hive_id}"
    headers = {NARRATION_HEADER: "1"}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    index = 0
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    try:
        async with aconnect_sse(
            client, "POST", f"{target.url}{path}", json=body, headers=headers,
            timeout=httpx.Timeout(10.0, read=None),
        ) as source:
            await _check_status(source.response, where)
            async for message in source.aiter_sse():
                if message.event == "narration":
                    narration.relay(json.loads(message.data))
                    continue
                if message.data == "[DONE]":
                    break
                chunk = json.loads(message.data)
                if "error" in chunk:
                    raise WorkerError(f"{where} failed: {chunk['error'].get('message')}")
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices", []):
                    text = _chunk_text(choice)
                    if text:
                        narration.emit(events.TOKEN, text=text, index=index)
                        index += 1
                    finish_reason = choice.get("finish_reason") or finish_reason
    except httpx.HTTPError as exc:
        raise WorkerError(
            f"Lost the stream from {where} at {target.url} after {index} tokens: "
            f"{exc or type(exc).__name__}."
        ) from exc
    if finish_reason is None:
        raise WorkerError(f"The stream from {where} ended after {index} tokens without finishing.")
    return {"finish_reason": finish_reason, "usage": usage, "tokens": index}


async def _check_status(response: httpx.Response, where: str) -> None:
    if response.status_code == 200:
        return
    await response.aread()
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}"
    if response.status_code == 429:
        raise QueueFullError(f"{where} is busy: {message}")
    if response.status_code == 400:
        code = _error_code(response) or "invalid_request"
        raise InvalidRequestError(message, code=code)
    raise WorkerError(f"{where} rejected the request: {message}")


def _error_code(response: httpx.Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(code) if code else None
