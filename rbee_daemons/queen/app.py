"""The queen's HTTP API and the operations it runs as jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from rbee_daemons import __version__, paths, sse
from rbee_daemons.auth import BearerAuthMiddleware
from rbee_daemons.errors import (
    HiveError,
    InvalidRequestError,
    NoCapacityError,
    RbeeError,
    WorkerUnreachableError,
)
from rbee_daemons.http import error_response, read_body, response_for_error
from rbee_daemons.jobs import JobRegistry
from rbee_daemons.jobserver import JobServer, OperationHandler
from rbee_daemons.jobstore import SqliteJobStore
from rbee_daemons.narration import narrate
from rbee_daemons.openapi import openapi_route, queen_document
from rbee_daemons.operations import (
    HIVE_OPERATIONS,
    InferOperation,
    Operation,
    QueenCheckOperation,
    validation_message,
)
from rbee_daemons.queen.heartbeats import HeartbeatHub
from rbee_daemons.queen.hive_client import run_hive_job
from rbee_daemons.queen.openai_api import OpenAIApi
from rbee_daemons.queen.registry import Heartbeat, HiveRecord, HiveRegistry
from rbee_daemons.queen.relay import relay_completion
from rbee_daemons.queen.scheduler import DEFAULT_QUEUE_LIMIT, Scheduler, WorkerTarget

logger = logging.getLogger(__name__)

MAX_HEARTBEAT_BYTES = 4 * 1024 * 1024
MONITOR_INTERVAL_SECONDS = 0.5


@dataclass
class QueenSettings:
    host: str = "127.0.0.1"
    port: int = 7833
    token: str | None = None
    job_retention_count: int = 500
    job_retention_hours: float = 24.0
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    persist_jobs: bool = True


class Queen:
    def __init__(self, settings: QueenSettings) -> None:
        self.settings = settings
        self.registry = HiveRegistry()
        self.hub = HeartbeatHub(self.registry)
        store = (SqliteJobStore(paths.data_dir() / "queen-jobs.sqlite3")
                 if settings.persist_jobs else None)
        self.jobs = JobRegistry(settings.job_retention_count,
                                settings.job_retention_hours * 3600, store)
        # Pooled connections to hives and workers; no overall timeout because token streams
        # last as long as generation does. Each call sets its own connect and read timeouts.
        headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, read=None), headers=headers,
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        )
        self.scheduler = Scheduler(self.registry, self.client, settings.queue_limit)
        # The token relay uses aiohttp: on this project's relay benchmark (docs/benchmarks.md)
        # httpx's streaming client spent about 40 % of the queen's CPU in its own machinery.
        self.relay_session: aiohttp.ClientSession | None = None
        handlers = {
            "status": OperationHandler(self.status, persist=False),
            "queen_check": OperationHandler(self.queen_check, persist=False),
            "infer": OperationHandler(self.infer, cancel_on_disconnect=True,
                                      admit=self.scheduler.admit),
        }
        for name in HIVE_OPERATIONS:
            handlers[name] = OperationHandler(self.forward_to_hive)
        self.job_server = JobServer(self.jobs, handlers)
        self.openai = OpenAIApi(self.registry, self.scheduler, self.job_server)

    def app(self) -> ASGIApp:
        routes = [
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/hive-heartbeat", self.hive_heartbeat, methods=["POST"]),
            Route("/v1/hives", self.list_hives, methods=["GET"]),
            Route("/v1/heartbeats/stream", self.heartbeat_stream, methods=["GET"]),
            *self.openai.routes(),
            *self.job_server.routes(),
            openapi_route(queen_document(token_required=bool(self.settings.token))),
        ]
        app = Starlette(routes=routes, lifespan=self.lifespan)
        if self.settings.token:
            return BearerAuthMiddleware(app, self.settings.token)
        return app

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        monitor = asyncio.create_task(self._monitor_hives())
        self.relay_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300),
            auto_decompress=False,
        )
        narrate(
            "queen_start",
            f"Queen is listening on http://{self.settings.host}:{self.settings.port}"
            f"{' with a bearer token' if self.settings.token else ''}.",
            cute="👑 The queen is awake and holding court!",
            story='"Bring me your hives," said the queen, settling onto her throne.',
            host=self.settings.host,
            port=self.settings.port,
        )
        try:
            yield
        finally:
            monitor.cancel()
            await self.jobs.shutdown()
            await self.client.aclose()
            await self.relay_session.close()

    async def _monitor_hives(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_SECONDS)
            for hive in self.hub.check_states():
                self.scheduler.mark_offline(hive)
                narrate(
                    "queen_hive_offline",
                    f"Hive {hive.hive_id} at {hive.url} is offline: no heartbeat for "
                    f"{hive.age():.0f} s.",
                    cute=f"😟 Hive {hive.hive_id} stopped buzzing!",
                    story=f'"Where is {hive.hive_id}?" asked the queen. Silence answered.',
                    level="warn",
                    hive_id=hive.hive_id,
                )

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def hive_heartbeat(self, request: Request) -> Response:
        try:
            # Parsed and validated in one pass by pydantic-core: a thousand hives send a
            # thousand of these a second.
            heartbeat = Heartbeat.model_validate_json(
                await read_body(request, MAX_HEARTBEAT_BYTES))
        except RbeeError as exc:
            return response_for_error(exc)
        except ValidationError as exc:
            return error_response(400, validation_message(exc), "invalid_request_error")
        joined = self.registry.record(heartbeat)
        if joined:
            narrate(
                "queen_hive_joined",
                f"Hive {heartbeat.hive_id} joined from {heartbeat.url} with "
                f"{len(heartbeat.workers)} workers.",
                cute=f"🐝 Hive {heartbeat.hive_id} buzzed in to say hello!",
                story=f'"Welcome, {heartbeat.hive_id}," said the queen.',
                hive_id=heartbeat.hive_id,
                url=heartbeat.url,
                workers=len(heartbeat.workers),
            )
        self.hub.heartbeat_received(heartbeat, joined)
        return JSONResponse({"ok": True, "version": __version__})

    async def list_hives(self, request: Request) -> Response:
        return JSONResponse({"hives": [hive.describe() for hive in self.registry.hives.values()]})

    async def heartbeat_stream(self, request: Request) -> Response:
        return sse.event_stream_response(self.hub.stream())

    async def status(self, operation: Operation) -> dict[str, Any]:
        hives = [hive.describe() for hive in self.registry.hives.values()]
        workers = self.registry.workers()
        models = self.registry.models()
        narrate(
            "queen_status",
            f"{len(hives)} hives, {len(workers)} workers, {len(models)} models.",
            cute=f"👑 Counting the kingdom: {len(hives)} hives and {len(workers)} workers!",
            story=f'"{len(hives)} hives answer to me," mused the queen.',
        )
        running = sum(1 for job in self.jobs.list() if not job.finished)
        return {"hives": hives, "workers": workers, "models": models, "running_jobs": running}

    async def queen_check(self, operation: QueenCheckOperation) -> dict[str, Any]:
        narrate(
            "queen_check",
            f"Queen {__version__} is healthy; {len(self.registry.online())} hives online.",
            cute="👑 The queen is fit as a fiddle!",
            story='"I am well," said the queen, "and my hives are near."',
        )
        return {"version": __version__, "hives_online": len(self.registry.online())}

    async def infer(self, operation: InferOperation) -> dict[str, Any]:
        narrate(
            "queen_infer",
            f"Scheduling an inference on {operation.model} for up to {operation.max_tokens} "
            "tokens.",
            cute=f"👑 A prompt for {operation.model}! Let's find a busy bee.",
            story=f'"Who will answer this prompt?" asked the queen, looking at {operation.model}.',
            model=operation.model,
            max_tokens=operation.max_tokens,
        )
        result, target = await self._infer_once_more_if_unreachable(operation)
        narrate(
            "queen_infer_done",
            f"Inference finished: {result['tokens']} tokens from worker {target.worker_id}, "
            f"finish reason {result['finish_reason']}.",
            cute=f"👑✨ All {result['tokens']} tokens delivered!",
            story=f'"Well done, {target.worker_id}," said the queen.',
            worker_id=target.worker_id,
            tokens=result["tokens"],
        )
        return {"model": operation.model, "hive_id": target.hive_id,
                "worker_id": target.worker_id, **result}

    async def _infer_once_more_if_unreachable(
        self, operation: InferOperation
    ) -> tuple[dict[str, Any], WorkerTarget]:
        """Run the inference; if the chosen worker refuses connections, retry once.

        A worker that crashed stays `ready` in the registry until its hive's next heartbeat,
        so requests in that second reach a closed port although the hive restarts the worker.
        The retry waits for the restarted worker rather than starting another one.
        """
        for attempt in (1, 2):
            async with self.scheduler.lease(operation) as target:
                try:
                    return await self._relay_watching_hive(target, operation), target
                except WorkerUnreachableError as exc:
                    self.registry.mark_worker_starting(target.hive_id, target.worker_id)
                    if attempt == 2:
                        raise
                    narrate(
                        "queen_worker_unreachable",
                        f"Worker {target.worker_id} did not respond ({exc.message}); trying "
                        "again.",
                        cute=f"🐝 {target.worker_id} is not home; let's find another bee!",
                        story=f'"{target.worker_id} does not answer," said the queen. '
                              '"Find me another."',
                        level="warn",
                        worker_id=target.worker_id,
                    )
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _relay_watching_hive(
        self, target: WorkerTarget, operation: InferOperation
    ) -> dict[str, Any]:
        """Relay the tokens, but fail with the hive's name if it goes offline meanwhile."""
        assert self.relay_session is not None, "the relay session opens in the lifespan"
        relay = asyncio.create_task(relay_completion(self.relay_session, target, operation))
        lost = self.scheduler.hive_lost(target.hive_id)
        waiting: set[asyncio.Future[Any]] = {relay, lost}
        try:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not relay.done():
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError, RbeeError):
                    await relay
        if relay not in done:
            raise lost.exception() or HiveError(f"Hive {target.hive_id!r} went offline.")
        return relay.result()

    async def forward_to_hive(self, operation: Operation) -> Any:
        hive = self._resolve_hive(getattr(operation, "hive_id", None))
        body = operation.model_dump(exclude_none=True)
        body["hive_id"] = hive.hive_id
        return await run_hive_job(self.client, hive.hive_id, hive.url, body)

    def _resolve_hive(self, hive_id: str | None) -> HiveRecord:
        if hive_id is not None:
            hive = self.registry.get(hive_id)
            if hive is None:
                raise InvalidRequestError(
                    f"Hive {hive_id!r} is not known to this queen; list hives with "
                    "`rbee --no-tui status`."
                )
            if hive.state() == "offline":
                raise NoCapacityError(f"Hive {hive_id!r} is offline (last heartbeat "
                                      f"{hive.age():.0f} s ago).")
            return hive
        online = self.registry.online()
        if len(online) == 1:
            return online[0]
        if not online:
            raise NoCapacityError("No hive is online; start one with `rbee --no-tui hive start`.")
        names = ", ".join(sorted(hive.hive_id for hive in online))
        raise InvalidRequestError(f"Several hives are online ({names}); set hive_id to one.")
