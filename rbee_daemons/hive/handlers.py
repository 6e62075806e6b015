"""The operations a hive runs as jobs: models, workers and the narration self-check."""

from __future__ import annotations

import asyncio
from typing import Any

from rbee_daemons.errors import InvalidRequestError
from rbee_daemons.hive.models import ModelStore
from rbee_daemons.hive.workers import WorkerManager, WorkerProcess
from rbee_daemons.jobserver import OperationHandler
from rbee_daemons.narration import narrate
from rbee_daemons.operations import (
    HiveCheckOperation,
    ModelDeleteOperation,
    ModelDownloadOperation,
    ModelGetOperation,
    ModelListOperation,
    ModelLoadOperation,
    ModelUnloadOperation,
    WorkerGetOperation,
    WorkerListOperation,
    WorkerSpawnOperation,
    WorkerStopOperation,
)


class HiveHandlers:
    def __init__(self, hive_id: str, models: ModelStore, workers: WorkerManager) -> None:
        self.hive_id = hive_id
        self.models = models
        self.workers = workers

    def table(self) -> dict[str, OperationHandler]:
        return {
            "hive_check": OperationHandler(self.hive_check),
            "model_list": OperationHandler(self.model_list),
            "model_get": OperationHandler(self.model_get),
            "model_download": OperationHandler(self.model_download),
            "model_delete": OperationHandler(self.model_delete),
            "model_load": OperationHandler(self.model_load),
            "model_unload": OperationHandler(self.model_unload),
            "worker_spawn": OperationHandler(self.worker_spawn),
            "worker_list": OperationHandler(self.worker_list),
            "worker_get": OperationHandler(self.worker_get),
            "worker_stop": OperationHandler(self.worker_stop),
        }

    def _check_hive_id(self, hive_id: str | None) -> None:
        if hive_id is not None and hive_id != self.hive_id:
            raise InvalidRequestError(
                f"This is hive {self.hive_id!r}, not {hive_id!r}; send the job to the queen, "
                "which forwards it to the right hive."
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

    async def model_list(self, operation: ModelListOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        entries = await asyncio.to_thread(self.models.catalog.list)
        return {"hive_id": self.hive_id, "models": [entry.to_dict() for entry in entries]}

    async def model_get(self, operation: ModelGetOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        entry = await asyncio.to_thread(self.models.catalog.get, operation.id)
        return {"hive_id": self.hive_id, **entry.to_dict()}

    async def model_download(self, operation: ModelDownloadOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        entry = await self.models.download(operation.model, operation.id, operation.sha256)
        return {"hive_id": self.hive_id, **entry.to_dict()}

    async def model_delete(self, operation: ModelDeleteOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        users = [w.worker_id for w in self.workers.for_model(operation.id)]
        if users:
            raise InvalidRequestError(
                f"Model {operation.id!r} is in use by {', '.join(users)}; unload it first with "
                "the model_unload operation.", code="model_in_use",
            )
        entry = await self.models.delete(operation.id)
        narrate(
            "hive_model_deleted",
            f"Deleted model {entry.id} and its files.",
            cute=f"🧹 {entry.id} swept out of the pantry.",
            story=f'"We will not need {entry.id} any more," said the hive, clearing a shelf.',
            model=entry.id,
        )
        return {"hive_id": self.hive_id, "id": entry.id, "state": "deleted"}

    async def model_load(self, operation: ModelLoadOperation) -> dict[str, Any]:
        """Return a live worker for the model, starting one when there is none."""
        self._check_hive_id(operation.hive_id)
        live = [w for w in self.workers.for_model(operation.id)
                if w.state in ("ready", "busy", "starting")]
        if live:
            worker = live[0]
            narrate(
                "hive_model_loaded",
                f"{operation.id} is already loaded by worker {worker.worker_id} ({worker.state}).",
                cute=f"🍯 {operation.id} is already warm in {worker.worker_id}!",
                story=f'"{worker.worker_id} has {operation.id} open already," said the hive.',
                model=operation.id, worker_id=worker.worker_id,
            )
            return {"hive_id": self.hive_id, **worker.describe()}
        return await self._spawn(operation.id)

    async def model_unload(self, operation: ModelUnloadOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        await asyncio.to_thread(self.models.catalog.get, operation.id)
        stopped = [w.worker_id for w in self.workers.for_model(operation.id)]
        for worker_id in stopped:
            await self.workers.stop(worker_id)
        return {"hive_id": self.hive_id, "id": operation.id, "stopped_workers": stopped}

    async def worker_spawn(self, operation: WorkerSpawnOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        return await self._spawn(operation.model)

    async def _spawn(self, model_id: str) -> dict[str, Any]:
        entry = await asyncio.to_thread(self.models.catalog.get, model_id)
        model_path = await self.models.prepare(entry)
        worker = await self.workers.spawn(entry.id, model_path)
        await asyncio.to_thread(self.models.catalog.touch, entry.id)
        _narrate_ready(worker)
        return {"hive_id": self.hive_id, **worker.describe()}

    async def worker_list(self, operation: WorkerListOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        return {"hive_id": self.hive_id,
                "workers": [worker.describe() for worker in self.workers.list()]}

    async def worker_get(self, operation: WorkerGetOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        return {"hive_id": self.hive_id, **self.workers.get(operation.id).describe()}

    async def worker_stop(self, operation: WorkerStopOperation) -> dict[str, Any]:
        self._check_hive_id(operation.hive_id)
        await self.workers.stop(operation.id)
        return {"hive_id": self.hive_id, "worker_id": operation.id, "state": "stopped"}


def _narrate_ready(worker: WorkerProcess) -> None:
    narrate(
        "hive_worker_ready",
        f"Worker {worker.worker_id} serves {worker.model} at {worker.url}.",
        cute=f"🍯 Worker {worker.worker_id} is ready to make honey from {worker.model}!",
        story=f'"Worker {worker.worker_id} is ready," the hive told the queen.',
        worker_id=worker.worker_id,
        model=worker.model,
        url=worker.url,
    )
