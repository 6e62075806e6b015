"""The token relay: stream a completion from a worker into the queen's job as it arrives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from rbee_daemons import events, narration
from rbee_daemons.errors import (
    InvalidRequestError,
    QueueFullError,
    WorkerError,
    WorkerUnreachableError,
)
from rbee_daemons.operations import InferOperation
from rbee_daemons.queen.scheduler import WorkerTarget
from rbee_daemons.sse import Message, MessageDecoder

NARRATION_HEADER = "x-rbee-narration"
# Tokens come as long as generation runs; only connecting is bounded.
RELAY_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=None)


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
    session: aiohttp.ClientSession, target: WorkerTarget, operation: InferOperation
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
    state = _RelayState()
    try:
        return await _relay(session, target, operation, path, body, headers, state, where)
    except aiohttp.ClientConnectorError as exc:
        raise WorkerUnreachableError(
            f"{where} did not accept a connection at {target.url}: {exc}."
        ) from exc


async def _relay(session: aiohttp.ClientSession, target: WorkerTarget,
                 operation: InferOperation, path: str, body: dict[str, Any],
                 headers: dict[str, str], state: _RelayState, where: str) -> dict[str, Any]:
    try:
        async with session.post(f"{target.url}{path}", json=body, headers=headers,
                                timeout=RELAY_TIMEOUT) as response:
            await _check_status(response, where)
            decoder = MessageDecoder()
            async for raw in response.content:
                message = decoder.feed(raw.decode("utf-8").rstrip("\r\n"))
                if message is not None and _handle(message, state, where):
                    break
    except aiohttp.ClientConnectorError:
        raise
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise WorkerError(
            f"Lost the stream from {where} at {target.url} after {state.index} tokens: "
            f"{exc or type(exc).__name__}."
        ) from exc
    if state.finish_reason is None:
        raise WorkerError(
            f"The stream from {where} ended after {state.index} tokens without finishing."
        )
    return {"finish_reason": state.finish_reason, "usage": state.usage, "tokens": state.index}


@dataclass
class _RelayState:
    index: int = 0
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None


def _handle(message: Message, state: _RelayState, where: str) -> bool:
    """Apply one worker message to the job; return True at the end of the stream."""
    if message.event == "narration":
        narration.relay(json.loads(message.data))
        return False
    if message.data == "[DONE]":
        return True
    chunk = json.loads(message.data)
    if "error" in chunk:
        raise WorkerError(f"{where} failed: {chunk['error'].get('message')}")
    state.usage = chunk.get("usage") or state.usage
    for choice in chunk.get("choices", []):
        text = _chunk_text(choice)
        if text:
            narration.emit(events.TOKEN, text=text, index=state.index)
            state.index += 1
        state.finish_reason = choice.get("finish_reason") or state.finish_reason
    return False


async def _check_status(response: aiohttp.ClientResponse, where: str) -> None:
    if response.status == 200:
        return
    text = await response.text()
    code: str | None = None
    try:
        error = json.loads(text)["error"]
        message, code = str(error["message"]), error.get("code")
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status}"
    if response.status == 429:
        raise QueueFullError(f"{where} is busy: {message}")
    if response.status == 400:
        raise InvalidRequestError(message, code=code or "invalid_request")
    raise WorkerError(f"{where} rejected the request: {message}")
