"""The worker's HTTP API: `/health` and OpenAI-shaped `/v1/completions` and
`/v1/chat/completions`, streamed or not."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rbee_daemons import sse
from rbee_daemons.errors import RbeeError
from rbee_daemons.http import error_response, read_json_object, response_for_error
from rbee_daemons.narration import narrate
from rbee_daemons.openapi import openapi_route, worker_document
from rbee_daemons.worker.engine import GenerationRequest, GenerationResult, LlamaEngine
from rbee_daemons.worker.requests import (
    ChatRequest,
    CompletionRequest,
    SamplingRequest,
    parse_request,
)
from rbee_daemons.worker.shapes import CHAT, TEXT, ResponseShape

logger = logging.getLogger(__name__)

# Requests that ask for this header get narration events (`event: narration`) in the stream.
NARRATION_HEADER = "x-rbee-narration"


def new_completion_id() -> str:
    return TEXT.new_id()


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

    def app(self, token_required: bool = False) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                openapi_route(worker_document(token_required)),
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
            completion = parse_request(CompletionRequest, body)
        except RbeeError as exc:
            return response_for_error(exc)
        return await self._serve(request, completion, completion.generation(), TEXT)

    async def chat_completions(self, request: Request) -> Response:
        try:
            body = await read_json_object(request)
            chat = parse_request(ChatRequest, body)
        except RbeeError as exc:
            return response_for_error(exc)
        if not self.engine.loaded:
            return self._loading()
        prompt = self.engine.chat_template().render(chat.chat_messages())
        return await self._serve(request, chat, chat.generation_for(prompt.text, prompt.stop),
                                 CHAT)

    def _loading(self) -> Response:
        return error_response(
            503, "The model is still loading; retry in a moment.", "service_unavailable"
        )

    async def _serve(self, request: Request, sampling: SamplingRequest,
                     generation: GenerationRequest, shape: ResponseShape) -> Response:
        if not self.engine.loaded:
            return self._loading()
        # One request runs, up to max_queue wait; beyond that the client should retry.
        if self.in_flight >= self.max_queue + 1:
            return error_response(
                429,
                f"Worker {self.worker_id} is busy with {self.in_flight} requests; retry shortly.",
                "rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        too_long = await self._context_error(generation)
        if too_long is not None:
            return too_long
        narrated = request.headers.get(NARRATION_HEADER) == "1"
        if sampling.stream:
            stream = self._stream(generation, shape, sampling.include_usage, narrated)
            return sse.event_stream_response(stream)
        return await self._complete(generation, shape)

    async def _context_error(self, generation: GenerationRequest) -> Response | None:
        """Return a 400 when the prompt and max_tokens do not fit the context."""
        # Tokenizing reads only the vocabulary, so it may run beside a generation.
        prompt_tokens = await asyncio.to_thread(self.engine.count_tokens, generation.prompt)
        if prompt_tokens + generation.max_tokens <= self.engine.n_ctx:
            return None
        return error_response(
            400,
            f"The prompt has {prompt_tokens} tokens and max_tokens is {generation.max_tokens}, "
            f"which exceeds the context size of {self.engine.n_ctx} tokens; shorten the prompt "
            "or lower max_tokens.",
            "invalid_request_error", param="max_tokens", code="context_length_exceeded",
        )

    async def _complete(self, generation: GenerationRequest, shape: ResponseShape) -> Response:
        pieces: list[str] = []
        cancelled = threading.Event()
        self.in_flight += 1
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.engine.generate, generation, pieces.append, cancelled,
            )
        except RbeeError as exc:
            return response_for_error(exc)
        finally:
            cancelled.set()
            self.in_flight -= 1
        body = shape.base(shape.new_id(), self.model_id, full=True)
        body["choices"] = [shape.full_choice("".join(pieces), result.finish_reason)]
        body["usage"] = result.usage()
        return JSONResponse(body)

    async def _stream(self, generation: GenerationRequest, shape: ResponseShape,
                      include_usage: bool, narrated: bool) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()
        completion_id = shape.new_id()
        self.in_flight += 1

        def on_token(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ("token", text))

        future = loop.run_in_executor(
            self.executor, self.engine.generate, generation, on_token, cancelled
        )
        future.add_done_callback(lambda done: queue.put_nowait(("end", done)))
        try:
            if narrated:
                yield self._narration_frame(self._narrate_start(generation))
            opening = shape.opening_choice()
            if opening is not None:
                yield self._frame(shape, completion_id, [opening])
            while True:
                kind, value = await queue.get()
                if kind == "token":
                    yield self._frame(shape, completion_id, [shape.choice(value, None)])
                    continue
                async for frame in self._finish_stream(
                    value, shape, completion_id, include_usage, narrated
                ):
                    yield frame
                return
        finally:
            # Runs on normal end and when the client disconnects and the response is cancelled.
            cancelled.set()
            self.in_flight -= 1

    async def _finish_stream(
        self,
        done: asyncio.Future[GenerationResult],
        shape: ResponseShape,
        completion_id: str,
        include_usage: bool,
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
        yield self._frame(shape, completion_id, [shape.choice("", result.finish_reason)])
        if narrated:
            yield self._narration_frame(self._narrate_end(result))
        if include_usage or narrated:
            yield self._frame(shape, completion_id, [], usage=result.usage())
        yield sse.frame("[DONE]")

    def _frame(self, shape: ResponseShape, completion_id: str, choices: list[dict[str, Any]],
               usage: dict[str, Any] | None = None) -> str:
        chunk = shape.base(completion_id, self.model_id)
        chunk["choices"] = choices
        if usage is not None:
            chunk["usage"] = usage
        return sse.frame(sse.dumps(chunk))

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


def parse_completion_request(body: dict[str, Any]) -> CompletionRequest:
    return parse_request(CompletionRequest, body)
