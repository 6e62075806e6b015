"""The hive's HTTP API and the operations it runs as jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rbee_daemons import __version__, devices, paths
from rbee_daemons.errors import InvalidRequestError, ModelError
from rbee_daemons.hive import default_model
from rbee_daemons.hive.catalog import Catalog, ModelEntry
from rbee_daemons.hive.heartbeat import run_heartbeats
from rbee_daemons.hive.workers import WorkerManager
from rbee_daemons.jobs import JobRegistry
from rbee_daemons.jobserver import JobServer, OperationHandler
from rbee_daemons.narration import narrate
from rbee_daemons.operations import (
    HiveCheckOperation,
    ModelGetOperation,
    Operation,
    WorkerSpawnOperation,
    WorkerStopOperation,
)

logger = logging.getLogger(__name__)


@dataclass
class HiveSettings:
    host: str = "127.0.0.1"
    port: int = 7835
    queen_url: str = "http://127.0.0.1:7833"
    advertise_url: str | None = None

    @property
    def url(self) -> str:
        return self.advertise_url or f"http://{self.host}:{self.port}"


def load_hive_id(data_dir: Path) -> str:
    """Return this machine's hive id, generating and storing it on first start."""
    id_file = data_dir / "hive_id"
    if id_file.is_file():
        stored = id_file.read_text(encoding="utf-8").strip()
        if stored:
            return stored
    hive_id = f"hive-{uuid.uuid4().hex[:12]}"
    id_file.write_text(hive_id + "\n", encoding="utf-8")
    return hive_id


class Hive:
    """State of one hive: catalog, workers and jobs."""

    def __init__(self, settings: HiveSettings) -> None:
        self.settings = settings
        data = paths.data_dir()
        self.hive_id = load_hive_id(data)
        self.catalog = Catalog(data / "catalog.sqlite3", data / "models")
        self.catalog.ensure(default_model.catalog_entry(self.catalog.models_root))
        self.workers = WorkerManager(paths.state_dir() / "workers", host="127.0.0.1")
        self.jobs = JobRegistry()
        self._model_locks: dict[str, asyncio.Lock] = {}
        self.job_server = JobServer(
            self.jobs,
            {
                "hive_check": OperationHandler(self.hive_check),
                "model_list": OperationHandler(self.model_list),
                "model_get": OperationHandler(self.model_get),
                "worker_spawn": OperationHandler(self.worker_spawn),
                "worker_list": OperationHandler(self.worker_list),
                "worker_stop": OperationHandler(self.worker_stop),
            },
        )

    def app(self) -> Starlette:
        routes = [
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/capabilities", self.capabilities, methods=["GET"]),
            *self.job_server.routes(),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        heartbeat = asyncio.create_task(
            run_heartbeats(self.settings.queen_url, self.heartbeat_payload, self.refresh_workers)
        )
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
            await self.jobs.shutdown()
            await self.workers.stop_all()
            self.catalog.close()

    async def refresh_workers(self, client: httpx.AsyncClient) -> None:
        await self.workers.refresh(client)

    def heartbeat_payload(self) -> dict[str, Any]:
        return {
            "hive_id": self.hive_id,
            "url": self.settings.url,
            "version": __version__,
            "devices": devices.snapshot(),
            "models": [self._model_summary(entry) for entry in self.catalog.list()],
            "workers": [worker.describe() for worker in self.workers.list()],
        }

    @staticmethod
    def _model_summary(entry: ModelEntry) -> dict[str, Any]:
        return {"id": entry.id, "name": entry.name, "size": entry.size, "state": entry.state,
                "source": entry.source}

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "hive_id": self.hive_id, "version": __version__})

    async def capabilities(self, request: Request) -> Response:
        return JSONResponse(
            {"hive_id": self.hive_id, "devices": devices.snapshot(), "backends": ["cpu"]}
        )

    async def hive_check(self, operation: HiveCheckOperation) -> dict[str, Any]:
        narrate(
            "hive_check",
            f"Hive {self.hive_id} is healthy with {len(self.workers.list())} workers.",
            cute=f"🐝 Hive {self.hive_id} is buzzing happily!",
            story=f'"All well here," reported hive {self.hive_id}.',
            hive_id=self.hive_id,
        )
        return {"hive_id": self.hive_id}

    async def model_list(self, operation: Operation) -> dict[str, Any]:
        entries = await asyncio.to_thread(self.catalog.list)
        return {"hive_id": self.hive_id, "models": [entry.to_dict() for entry in entries]}

    async def model_get(self, operation: ModelGetOperation) -> dict[str, Any]:
        entry = await asyncio.to_thread(self.catalog.get, operation.id)
        return entry.to_dict()

    async def worker_spawn(self, operation: WorkerSpawnOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        entry = await asyncio.to_thread(self.catalog.get, operation.model)
        model_path = await self.prepare_model(entry)
        worker = await self.workers.spawn(entry.id, model_path)
        await asyncio.to_thread(self.catalog.touch, entry.id)
        narrate(
            "hive_worker_ready",
            f"Worker {worker.worker_id} serves {entry.id} at {worker.url}.",
            cute=f"🍯 Worker {worker.worker_id} is ready to make honey from {entry.id}!",
            story=f'"Worker {worker.worker_id} is ready," the hive told the queen.',
            worker_id=worker.worker_id,
            model=entry.id,
            url=worker.url,
        )
        return {"hive_id": self.hive_id, **worker.describe()}

    async def worker_list(self, operation: Operation) -> dict[str, Any]:
        return {"hive_id": self.hive_id,
                "workers": [worker.describe() for worker in self.workers.list()]}

    async def worker_stop(self, operation: WorkerStopOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        await self.workers.stop(operation.id)
        return {"hive_id": self.hive_id, "worker_id": operation.id, "state": "stopped"}

    def _check_hive_id(self, hive_id: str | None) -> None:
        if hive_id is not None and hive_id != self.hive_id:
            raise InvalidRequestError(
                f"This is hive {self.hive_id!r}, not {hive_id!r}; send the job to the queen, "
                "which forwards it to the right hive."
            )

    async def prepare_model(self, entry: ModelEntry) -> Path:
        """Return the model's file path, assembling the bundled model on first use."""
        lock = self._model_locks.setdefault(entry.id, asyncio.Lock())
        async with lock:
            entry = await asyncio.to_thread(self.catalog.get, entry.id)
            path = Path(entry.path)
            bundled = entry.source == default_model.SOURCE
            size = await asyncio.to_thread(_file_size, path)
            if size is not None:
                # A bundled file is trusted once its sha256 was verified at this size.
                verified = entry.sha256 is not None and size == entry.size
                if not bundled or verified:
                    return path
            elif not bundled:
                raise ModelError(
                    f"The file of model {entry.id!r} is missing at {path}; download it again."
                )
            return await self._assemble_default(entry, path)

    async def _assemble_default(self, entry: ModelEntry, path: Path) -> Path:
        narrate(
            "hive_model_assemble",
            f"Assembling the bundled model {entry.id} into {path.parent}.",
            cute=f"🧩 Piecing {entry.id} together, chunk by chunk!",
            story=f'"The pieces are all here," said the hive, fitting {entry.id} together.',
            model=entry.id,
        )
        size, sha256 = await asyncio.to_thread(default_model.assemble, path)
        await asyncio.to_thread(
            self.catalog.update, entry.id, size=size, sha256=sha256, state="available"
        )
        narrate(
            "hive_model_ready",
            f"Model {entry.id} is ready ({size / 1e6:.0f} MB, sha256 verified).",
            cute=f"✨ {entry.id} is whole again, {size / 1e6:.0f} MB of brains!",
            story=f'"Verified to the last byte," said the hive of {entry.id}.',
            model=entry.id,
            size=size,
        )
        return path


def _file_size(path: Path) -> int | None:
    """Return the size of a regular file, or None when there is none at `path`."""
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None
