"""The job endpoints every daemon serves: submit, stream, cancel, list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rbee_daemons import sse
from rbee_daemons.errors import RbeeError
from rbee_daemons.http import read_json_object, response_for_error
from rbee_daemons.jobs import Job, JobRegistry
from rbee_daemons.operations import ALL_OPERATIONS, Operation, parse_operation


@dataclass(frozen=True)
class OperationHandler:
    """The coroutine and options a daemon runs one operation with."""

    run: Callable[[Any], Awaitable[Any]]
    # Inference stops when no client follows its stream any more; downloads and spawns go on.
    cancel_on_disconnect: bool = False
    # Checks run at submission; an RbeeError from them rejects the request with no job.
    admit: Callable[[Any], None] | None = None
    # Read-only queries (status) are not worth writing to the job history: their results
    # can be megabytes with a thousand hives, and they are stale a second later.
    persist: bool = True


class JobServer:
    """Starlette routes for `/v1/jobs` backed by a JobRegistry and a table of handlers."""

    def __init__(
        self,
        registry: JobRegistry,
        handlers: Mapping[str, OperationHandler],
        ping_interval: float = 15.0,
    ) -> None:
        self.registry = registry
        self.handlers = dict(handlers)
        self.accepted = {name: ALL_OPERATIONS[name] for name in self.handlers}
        self.ping_interval = ping_interval

    def routes(self) -> list[Route]:
        return [
            Route("/v1/jobs", self.submit, methods=["POST"]),
            Route("/v1/jobs", self.list_jobs, methods=["GET"]),
            Route("/v1/jobs/{job_id}", self.get_job, methods=["GET"]),
            Route("/v1/jobs/{job_id}", self.cancel_job, methods=["DELETE"]),
            Route("/v1/jobs/{job_id}/stream", self.stream_job, methods=["GET"]),
        ]

    def submit_operation(self, operation: Operation) -> Job:
        handler = self.handlers[operation.operation]
        return self.registry.submit(
            operation.operation,
            operation.model_dump(exclude_none=True),
            lambda: handler.run(operation),
            cancel_on_disconnect=handler.cancel_on_disconnect,
            persist=handler.persist,
        )

    async def submit(self, request: Request) -> Response:
        try:
            body = await read_json_object(request)
            operation = parse_operation(body, self.accepted)
            admit = self.handlers[operation.operation].admit
            if admit is not None:
                admit(operation)
        except RbeeError as exc:
            return response_for_error(exc)
        job = self.submit_operation(operation)
        return JSONResponse(
            {"job_id": job.job_id, "sse_url": f"/v1/jobs/{job.job_id}/stream"}, status_code=201
        )

    async def list_jobs(self, request: Request) -> Response:
        return JSONResponse({"jobs": [job.summary() for job in self.registry.list()]})

    async def get_job(self, request: Request) -> Response:
        try:
            job = self.registry.get(request.path_params["job_id"])
        except RbeeError as exc:
            return response_for_error(exc)
        return JSONResponse(job.summary())

    async def cancel_job(self, request: Request) -> Response:
        try:
            job = self.registry.get(request.path_params["job_id"])
        except RbeeError as exc:
            return response_for_error(exc)
        job.cancel()
        return JSONResponse({"job_id": job.job_id, "state": job.state.value})

    async def stream_job(self, request: Request) -> Response:
        try:
            job = self.registry.get(request.path_params["job_id"])
        except RbeeError as exc:
            return response_for_error(exc)
        last_seq = sse.parse_last_event_id(
            request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        )
        return sse.event_stream_response(self._stream(job, last_seq))

    async def _stream(self, job: Job, last_seq: int) -> AsyncIterator[str]:
        self.registry.subscriber_joined(job)
        try:
            async for event in job.follow(last_seq, self.ping_interval):
                if event is None:
                    yield sse.PING
                    continue
                yield sse.frame_event(event)
            yield sse.frame_end(job.events[-1])
        finally:
            self.registry.subscriber_left(job)
