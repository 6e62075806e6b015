"""The worker's HTTP API: `/health` and an OpenAI-shaped streaming `/v1/completions`."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rbee_daemons import sse
from rbee_daemons.errors import InvalidRequestError, RbeeError
from rbee_daemons.http import error_response, read_json_object, response_for_error
from rbee_daemons.narration import narrate
from rbee_daemons.operations import MAX_PROMPT_CHARS, MAX_TOKENS_LIMIT, validation_message
from rbee_daemons.worker.engine import GenerationRequest, GenerationResult, LlamaEngine

logger = logging.getLogger(__name__)

# Requests that ask for this header get narration events (`event: narration`) in the stream.
NARRATION_HEADER = "x-rbee-narration"


class CompletionRequest(BaseModel):
    """The subset of OpenAI's completion request the worker serves; unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)] = 16
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    top_k: Annotated[int, Field(ge=0, le=1000)] = 40
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: Annotated[int, Field(ge=1, le=1)] = 1

    def generation(self) -> GenerationRequest:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerationRequest(
            prompt=self.prompt,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=self.seed,
            stop=stop,
        )


class Worker:
    """State of one worker process: its engine, its load status and its request queue."""

    def __init__(self, engine: LlamaEngine, *, worker_id: str, model_id: str, max_queue: int):
        self.engine = engine
        self.worker_id = worker_id
        self.model_id = model_id
        self.max_queue = max_queue
        self.in_flight = 0
        self.load_error: str | None = None
        # llama.cpp is not thread-safe: one generation thread, requests wait their turn.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
            ]
        )

    async def health(self, request: Request) -> Response:
        body = {
            "worker_id": self.worker_id,
            "model": self.model_id,
            "in_flight": self.in_flight,
        }
        if self.load_error:
            return JSONResponse({**body, "status": "failed", "error": self.load_error}, 503)
        if not self.engine.loaded:
            return JSONResponse({**body, "status": "loading"}, 503)
        return JSONResponse({**body, "status": "ready"})

    async def completions(self, request: Request) -> Response:
        try:
            body = await read_json_object(request)
            completion = parse_completion_request(body)
        except RbeeError as exc:
            return response_for_error(exc)
        if not self.engine.loaded:
            return error_response(
                503, "The model is still loading; retry in a moment.", "service_unavailable"
            )
        # One request runs, up to max_queue wait; beyond that the client should retry.
        if self.in_flight >= self.max_queue + 1:
            return error_response(
                429,
                f"Worker {self.worker_id} is busy with {self.in_flight} requests; retry shortly.",
                "rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        narrated = request.headers.get(NARRATION_HEADER) == "1"
        if completion.stream:
            return sse.event_stream_response(self._stream(completion, narrated))
        return await self._complete(completion)

    async def _complete(self, completion: CompletionRequest) -> Response:
        pieces: list[str] = []
        cancelled = threading.Event()
        self.in_flight += 1
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.engine.generate, completion.generation(), pieces.append,
                cancelled,
            )
        except RbeeError as exc:
            return response_for_error(exc)
        finally:
            cancelled.set()
            self.in_flight -= 1
        body = self._chunk(new_completion_id(), "".join(pieces), result.finish_reason)
        body["usage"] = result.usage()
        return JSONResponse(body)

    async def _stream(self, completion: CompletionRequest, narrated: bool) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()
        request = completion.generation()
        completion_id = new_completion_id()
        self.in_flight += 1

        def on_token(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ("token", text))

        future = loop.run_in_executor(
            self.executor, self.engine.generate, request, on_token, cancelled
        )
        future.add_done_callback(lambda done: queue.put_nowait(("end", done)))
        try:
            if narrated:
                yield self._narration_frame(self._narrate_start(request))
            while True:
                kind, value = await queue.get()
                if kind == "token":
                    yield sse.frame(sse.dumps(self._chunk(completion_id, value, None)))
                    continue
                finish = self._finish_stream(value, completion, completion_id, narrated)
                async for frame in finish:
                    yield frame
                return
        finally:
            # Runs on normal end and when the client disconnects and the response is cancelled.
            cancelled.set()
            self.in_flight -= 1

    async def _finish_stream(
        self,
        done: asyncio.Future[GenerationResult],
        completion: CompletionRequest,
        completion_id: str,
        narrated: bool,
    ) -> AsyncIterator[str]:
        error = done.exception()
        if error is not None:
            message = error.message if isinstance(error, RbeeError) else str(error)
            logger.error("Generation failed: %s", message)
            yield sse.frame(sse.dumps({"error": {"message": message, "type": "server_error",
                                                 "param": None, "code": "worker_error"}}))
            yield sse.frame("[DONE]")
            return
        result = done.result()
        yield sse.frame(sse.dumps(self._chunk(completion_id, "", result.finish_reason)))
        if narrated:
            yield self._narration_frame(self._narrate_end(result))
        include_usage = bool((completion.stream_options or {}).get("include_usage"))
        if include_usage or narrated:
            usage_chunk = self._chunk_base(completion_id)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = result.usage()
            yield sse.frame(sse.dumps(usage_chunk))
        yield sse.frame("[DONE]")

    def _narrate_start(self, request: GenerationRequest) -> dict[str, Any]:
        return narrate(
            "worker_generate",
            f"Generating up to {request.max_tokens} tokens with {self.model_id}.",
            cute=f"🐝 Buzzing out up to {request.max_tokens} tokens with {self.model_id}!",
            story=(
                f'"Give me {request.max_tokens} tokens," said the queen. '
                f'"Coming right up," hummed the worker.'
            ),
            model=self.model_id,
            worker_id=self.worker_id,
            max_tokens=request.max_tokens,
        )

    def _narrate_end(self, result: GenerationResult) -> dict[str, Any]:
        usage = result.usage()
        rate = usage["timings"]["tokens_per_second"]
        return narrate(
            "worker_generate_done",
            f"Generated {result.completion_tokens} tokens in {result.generation_ms / 1000:.2f} s "
            f"({rate:.1f} tokens/s), finish reason {result.finish_reason}.",
            cute=f"🍯 Done! {result.completion_tokens} tokens at {rate:.0f} tokens/s!",
            story=(
                f'"That makes {result.completion_tokens} tokens," said the worker, '
                f"wiping its brow."
            ),
            model=self.model_id,
            worker_id=self.worker_id,
            finish_reason=result.finish_reason,
            **usage,
        )

    def _narration_frame(self, event: dict[str, Any]) -> str:
        return sse.frame(sse.dumps(event), event="narration")

    def _chunk_base(self, completion_id: str) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_id,
        }

    def _chunk(self, completion_id: str, text: str, finish_reason: str | None) -> dict[str, Any]:
        chunk = self._chunk_base(completion_id)
        chunk["choices"] = [
            {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
        ]
        return chunk


def new_completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex[:24]}"


def parse_completion_request(body: dict[str, Any]) -> CompletionRequest:
    try:
        return CompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequestError(validation_message(exc), code="invalid_field") from exc
