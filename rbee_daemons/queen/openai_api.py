"""OpenAI-compatible endpoints on the queen: `/v1/models`, `/v1/completions`, chat.

Each request runs as an `infer` job, so it shows in the job history with its narration. The
response waits for the first token (or the job's failure) before it starts, so scheduling
errors still get their own HTTP status; a failure after streaming began is sent as one more
`data:` event with an `error` object, then `[DONE]`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rbee_daemons import events, sse
from rbee_daemons.errors import RbeeError
from rbee_daemons.http import error_body, error_response, read_json_object
from rbee_daemons.jobs import Job, JobRegistry
from rbee_daemons.jobserver import JobServer
from rbee_daemons.operations import MAX_PROMPT_CHARS, MAX_TOKENS_LIMIT, InferOperation
from rbee_daemons.queen.registry import HiveRegistry
from rbee_daemons.queen.scheduler import Scheduler

# HTTP status and OpenAI error type for each job error code.
_STATUS_BY_CODE = {
    "invalid_request": (400, "invalid_request_error"),
    "invalid_field": (400, "invalid_request_error"),
    "context_length_exceeded": (400, "invalid_request_error"),
    "not_found": (404, "not_found_error"),
    "model_not_found": (404, "not_found_error"),
    "queue_full": (429, "rate_limit_exceeded"),
    "no_capacity": (503, "service_unavailable"),
}


class SamplingFields(BaseModel):
    """Fields shared by completion and chat requests; unknown OpenAI fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: Annotated[str, Field(min_length=1, max_length=128)]
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    stop: Annotated[str, Field(min_length=1)] | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: Annotated[int, Field(ge=1, le=1)] = 1

    def sampling(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"model": self.model, "temperature": self.temperature}
        for name in ("top_p", "seed"):
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        if self.stop is not None:
            fields["stop"] = [self.stop] if isinstance(self.stop, str) else self.stop
        return fields

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionBody(SamplingFields):
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)] | Annotated[
        list[Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]],
        Field(min_length=1, max_length=1),
    ]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessageBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]

    def as_text(self) -> dict[str, str]:
        text = self.content if isinstance(self.content, str) else "".join(
            part.text for part in self.content)
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": text}


class ChatBody(SamplingFields):
    messages: Annotated[list[ChatMessageBody], Field(min_length=1, max_length=256)]
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)] | None = None


class OpenAIApi:
    def __init__(self, registry: HiveRegistry, scheduler: Scheduler, job_server: JobServer,
                 default_max_tokens: int = 256) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.job_server = job_server
        self.jobs: JobRegistry = job_server.registry
        self.default_max_tokens = default_max_tokens

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
        ]

    async def models(self, request: Request) -> Response:
        found: dict[str, dict[str, Any]] = {}
        for hive in self.registry.online():
            serving = {w.get("model") for w in hive.heartbeat.workers}
            for model in hive.heartbeat.models:
                if model.get("state") != "available":
                    continue
                entry = found.setdefault(str(model["id"]), {
                    "id": model["id"], "object": "model", "created": 0, "owned_by": "rbee",
                    "hives": [], "loaded": False,
                })
                entry["hives"].append(hive.hive_id)
                entry["loaded"] = entry["loaded"] or model["id"] in serving
        return JSONResponse({"object": "list", "data": sorted(found.values(),
                                                               key=lambda m: m["id"])})

    async def completions(self, request: Request) -> Response:
        try:
            body = CompletionBody.model_validate(await read_json_object(request))
        except (RbeeError, ValidationError) as exc:
            return _invalid(exc)
        prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
        max_tokens = body.max_tokens or 16
        return await self._serve(body, False, prompt=prompt, max_tokens=max_tokens)

    async def chat_completions(self, request: Request) -> Response:
        try:
            body = ChatBody.model_validate(await read_json_object(request))
        except (RbeeError, ValidationError) as exc:
            return _invalid(exc)
        messages = [message.as_text() for message in body.messages]
        max_tokens = body.max_completion_tokens or body.max_tokens or self.default_max_tokens
        return await self._serve(body, True, messages=messages, max_tokens=max_tokens)

    async def _serve(self, body: SamplingFields, chat: bool, **fields: Any) -> Response:
        try:
            operation = InferOperation.model_validate(
                {"operation": "infer", **body.sampling(), **fields}, strict=False
            )
            self.scheduler.admit(operation)
        except ValidationError as exc:
            return _invalid(exc)
        except RbeeError as exc:
            return _error_for_code(exc.message, exc.code, param="model")
        job = self.job_server.submit_operation(operation)
        self.jobs.subscriber_joined(job)
        stream = job.follow(0)
        shape = _Shape(job, body.model, chat)
        head = await _read_until_output(stream)
        if head and head[-1]["type"] == events.ERROR and not _tokens(head):
            self.jobs.subscriber_left(job)
            return _error_for_code(head[-1]["message"], head[-1].get("code", ""),
                                   headers={"X-Rbee-Job-Id": job.job_id})
        if not body.stream:
            return await self._collect(job, stream, head, shape)
        response = sse.event_stream_response(
            self._stream(job, stream, head, shape, body.include_usage)
        )
        response.headers["X-Rbee-Job-Id"] = job.job_id
        return response

    async def _collect(self, job: Job, stream: AsyncIterator[events.Event | None],
                       head: list[events.Event], shape: _Shape) -> Response:
        try:
            found = head + [event async for event in stream if event is not None]
        finally:
            self.jobs.subscriber_left(job)
        last = found[-1]
        if last["type"] != events.DONE:
            message = last.get("message", "The job ended without a result.")
            return _error_for_code(message, last.get("code", ""),
                                   headers={"X-Rbee-Job-Id": job.job_id})
        result = _result(found)
        text = "".join(_tokens(found))
        return JSONResponse(shape.complete(text, result), headers={"X-Rbee-Job-Id": job.job_id})

    async def _stream(self, job: Job, stream: AsyncIterator[events.Event | None],
                      head: list[events.Event], shape: _Shape,
                      include_usage: bool) -> AsyncIterator[str]:
        try:
            if shape.chat:
                yield sse.frame(sse.dumps(shape.chunk(role=True)))
            async for event in _chain(head, stream):
                if event is None:
                    yield sse.PING
                    continue
                for frame in shape.frames(event, include_usage):
                    yield frame
        finally:
            self.jobs.subscriber_left(job)


class _Shape:
    """Builds OpenAI response objects for one request."""

    def __init__(self, job: Job, model: str, chat: bool) -> None:
        prefix = "chatcmpl" if chat else "cmpl"
        self.id = f"{prefix}-{job.job_id.removeprefix('job-').replace('-', '')}"
        self.model = model
        self.chat = chat
        self.created = int(time.time())
        self.result: dict[str, Any] = {}

    def _base(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def chunk(self, text: str = "", finish_reason: str | None = None,
              role: bool = False) -> dict[str, Any]:
        if not self.chat:
            chunk = self._base("text_completion")
            chunk["choices"] = [{"text": text, "index": 0, "logprobs": None,
                                 "finish_reason": finish_reason}]
            return chunk
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
        if text:
            delta["content"] = text
        chunk = self._base("chat.completion.chunk")
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason}]
        return chunk

    def frames(self, event: events.Event, include_usage: bool) -> list[str]:
        kind = event["type"]
        if kind == events.TOKEN:
            return [sse.frame(sse.dumps(self.chunk(event["text"])))]
        if kind == events.DATA:
            self.result = event.get("data") or {}
            return []
        if kind == events.DONE:
            finish = _finish_reason(self.result)
            frames = [sse.frame(sse.dumps(self.chunk(finish_reason=finish)))]
            if include_usage:
                usage_chunk = self._base(
                    "chat.completion.chunk" if self.chat else "text_completion")
                usage_chunk["choices"] = []
                usage_chunk["usage"] = self.result.get("usage")
                frames.append(sse.frame(sse.dumps(usage_chunk)))
            return [*frames, sse.frame("[DONE]")]
        if kind in (events.ERROR, events.CANCELLED):
            message = event.get("message", "The job ended early.")
            body = error_body(message, "server_error", code=event.get("code", kind))
            return [sse.frame(sse.dumps(body)), sse.frame("[DONE]")]
        return []

    def complete(self, text: str, result: dict[str, Any]) -> dict[str, Any]:
        finish = _finish_reason(result)
        if self.chat:
            body = self._base("chat.completion")
            body["choices"] = [{"index": 0, "message": {"role": "assistant", "content": text},
                                "logprobs": None, "finish_reason": finish}]
        else:
            body = self._base("text_completion")
            body["choices"] = [{"text": text, "index": 0, "logprobs": None,
                                "finish_reason": finish}]
        body["usage"] = result.get("usage")
        return body


async def _read_until_output(stream: AsyncIterator[events.Event | None]) -> list[events.Event]:
    """Read events until the first token or the terminal event."""
    head: list[events.Event] = []
    async for event in stream:
        if event is None:
            continue
        head.append(event)
        if event["type"] == events.TOKEN or events.is_terminal(event):
            break
    return head


async def _chain(head: list[events.Event], stream: AsyncIterator[events.Event | None]
                 ) -> AsyncIterator[events.Event | None]:
    for early in head:
        yield early
    if head and events.is_terminal(head[-1]):
        return
    async for event in stream:
        yield event


def _tokens(found: list[events.Event]) -> list[str]:
    return [event["text"] for event in found if event["type"] == events.TOKEN]


def _result(found: list[events.Event]) -> dict[str, Any]:
    for event in reversed(found):
        if event["type"] == events.DATA:
            return dict(event.get("data") or {})
    return {}


def _finish_reason(result: dict[str, Any]) -> str:
    reason = str(result.get("finish_reason") or "stop")
    return reason if reason in ("stop", "length") else "stop"


def _invalid(exc: RbeeError | ValidationError) -> Response:
    if isinstance(exc, RbeeError):
        return error_response(400, exc.message, "invalid_request_error", code=exc.code)
    first = exc.errors()[0]
    # Only named parts: pydantic adds the member type of a union (e.g. 'constrained-str').
    names = [str(part) for part in first["loc"] if isinstance(part, int) or "-" not in str(part)]
    param = ".".join(names) or None
    if first["type"] == "missing":
        message = f"The field {param!r} is required."
    else:
        message = f"Invalid field {param!r}: {first['msg']}."
    return error_response(400, message, "invalid_request_error", param=param,
                          code="invalid_field")


def _error_for_code(message: str, code: str, *, param: str | None = None,
                    headers: dict[str, str] | None = None) -> Response:
    status, error_type = _STATUS_BY_CODE.get(code, (500, "server_error"))
    all_headers = dict(headers or {})
    if status == 429:
        all_headers["Retry-After"] = "1"
    return error_response(status, message, error_type,
                          param=param if status in (400, 404) else None, code=code,
                          headers=all_headers)


