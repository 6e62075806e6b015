"""The hive's HTTP API, its lifespan, and the operations it runs as jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from rbee_daemons import __version__, devices, paths
from rbee_daemons.auth import BearerAuthMiddleware
from rbee_daemons.daemon import is_loopback
from rbee_daemons.errors import ConfigError
from rbee_daemons.hive import default_model
from rbee_daemons.hive.catalog import Catalog, ModelEntry
from rbee_daemons.hive.downloads import DownloadPolicy
from rbee_daemons.hive.handlers import HiveHandlers
from rbee_daemons.hive.heartbeat import run_heartbeats, send_goodbye
from rbee_daemons.hive.models import ModelStore
from rbee_daemons.hive.workers import WorkerManager, WorkerSettings
from rbee_daemons.jobs import JobRegistry
from rbee_daemons.jobserver import JobServer
from rbee_daemons.narration import narrate
from rbee_daemons.openapi import hive_document, openapi_route
from rbee_daemons.operations import ModelDownloadOperation

logger = logging.getLogger(__name__)


@dataclass
class HiveSettings:
    host: str = "127.0.0.1"
    port: int = 7835
    queen_url: str = "http://127.0.0.1:7833"
    advertise_url: str | None = None
    token: str | None = None
    # Seconds a worker waits for this hive to respond again before it exits by itself.
    worker_orphan_seconds: float = 60.0
    # Seconds without a byte before a download connection counts as stalled.
    download_stall_seconds: float = 30.0

    @property
    def url(self) -> str:
        return self.advertise_url or f"http://{self.host}:{self.port}"

    @property
    def network(self) -> bool:
        return not is_loopback(self.host)

    @property
    def local_url(self) -> str:
        """The URL the hive's own workers use to reach it on this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


_HIVE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def load_hive_id(data_dir: Path) -> str:
    """Return this machine's hive id, generating and storing it on first start."""
    id_file = data_dir / "hive_id"
    if id_file.is_file():
        stored = id_file.read_bytes().decode("utf-8", errors="replace").strip()
        if stored and not _HIVE_ID.fullmatch(stored):
            # The queen rejects heartbeats from such an id, so the hive would never join.
            raise ConfigError(
                f"The hive id file {id_file} contains {stored[:40]!r}, which is not a valid "
                "hive id (letters, digits, '.', '_' and '-'); delete the file and the hive "
                "generates a new id."
            )
        if stored:
            return stored
    hive_id = f"hive-{uuid.uuid4().hex[:12]}"
    id_file.write_text(hive_id + "\n", encoding="utf-8")
    return hive_id


def worker_settings(settings: HiveSettings, hive_id: str) -> WorkerSettings:
    advertise = urlsplit(settings.url).hostname or settings.host
    return WorkerSettings(
        log_dir=paths.state_dir() / "workers",
        bind_host=settings.host,
        advertise_host=advertise if settings.network else "127.0.0.1",
        network=settings.network,
        hive_url=settings.local_url,
        hive_id=hive_id,
        orphan_seconds=settings.worker_orphan_seconds,
    )


class Hive:
    """State of one hive: catalog, workers and jobs."""

    def __init__(self, settings: HiveSettings) -> None:
        self.settings = settings
        data = paths.data_dir()
        self.hive_id = load_hive_id(data)
        self.catalog = Catalog(data / "catalog.sqlite3", data / "models")
        self.catalog.ensure(default_model.catalog_entry(self.catalog.models_root))
        policy = DownloadPolicy(read_timeout=settings.download_stall_seconds)
        self.models = ModelStore(self.catalog, policy)
        self.workers = WorkerManager(worker_settings(settings, self.hive_id))
        self.jobs = JobRegistry()
        self.handlers = HiveHandlers(self.hive_id, self.models, self.workers)
        self.job_server = JobServer(self.jobs, self.handlers.table())

    def app(self) -> ASGIApp:
        routes = [
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/capabilities", self.capabilities, methods=["GET"]),
            *self.job_server.routes(),
            openapi_route(hive_document(token_required=bool(self.settings.token))),
        ]
        app = Starlette(routes=routes, lifespan=self.lifespan)
        if self.settings.token:
            return BearerAuthMiddleware(app, self.settings.token)
        return app

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=2.0) as client:
            await self.workers.adopt(client)
        self._resume_downloads()
        heartbeat = asyncio.create_task(run_heartbeats(
            self.settings.queen_url, self.heartbeat_payload, self.refresh_workers,
            token=self.settings.token,
        ))
        narrate(
            "hive_start",
            f"Hive {self.hive_id} is listening on {self.settings.url}, reporting to "
            f"{self.settings.queen_url}.",
            cute=f"🏠 Hive {self.hive_id} is open for business!",
            story=f'"I am here," called hive {self.hive_id} to the queen.',
            hive_id=self.hive_id,
        )
        try:
            yield
        finally:
            heartbeat.cancel()
            await send_goodbye(self.settings.queen_url, self.heartbeat_payload(),
                               self.settings.token)
            await self.jobs.shutdown()
            await self.workers.stop_all()
            self.catalog.close()

    def _resume_downloads(self) -> None:
        """Restart downloads a killed hive left unfinished, as jobs anyone can follow."""
        for entry in self.models.interrupted_downloads():
            operation = ModelDownloadOperation(operation="model_download", model=entry.source,
                                               id=entry.id, sha256=entry.sha256)
            job = self.job_server.submit_operation(operation)
            logger.info("Resuming the download of %s as %s", entry.id, job.job_id)

    async def refresh_workers(self, client: httpx.AsyncClient) -> None:
        await self.workers.refresh(client)

    def heartbeat_payload(self) -> dict[str, Any]:
        return {
            "hive_id": self.hive_id,
            "url": self.settings.url,
            "version": __version__,
            "devices": devices.snapshot(),
            "models": [model_summary(entry) for entry in self.catalog.list()],
            "workers": [worker.describe() for worker in self.workers.list()],
        }

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "hive_id": self.hive_id, "version": __version__})

    async def capabilities(self, request: Request) -> Response:
        snapshot = await asyncio.to_thread(devices.snapshot)
        return JSONResponse({"hive_id": self.hive_id, "version": __version__,
                             "devices": snapshot, "backends": devices.backends(snapshot),
                             "network_mode": self.settings.network})


def model_summary(entry: ModelEntry) -> dict[str, Any]:
    return {"id": entry.id, "name": entry.name, "size": entry.size, "state": entry.state,
            "source": entry.source, "architecture": entry.architecture,
            "quantization": entry.quantization, "context_length": entry.context_length,
            "parameter_count": entry.parameter_count}
