"""Picking a worker for an inference, or starting one on a hive that can host it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import httpx

from rbee_daemons.errors import NoCapacityError, NotFoundError
from rbee_daemons.narration import narrate
from rbee_daemons.operations import InferOperation
from rbee_daemons.queen.hive_client import run_hive_job
from rbee_daemons.queen.registry import HiveRecord, HiveRegistry

# Rough memory a worker needs beyond the model file: llama.cpp context, buffers, Python.
WORKER_OVERHEAD_BYTES = 300 * 1024 * 1024


@dataclass(frozen=True)
class WorkerTarget:
    hive_id: str
    worker_id: str
    url: str
    model: str


class Scheduler:
    def __init__(self, registry: HiveRegistry, client: httpx.AsyncClient) -> None:
        self.registry = registry
        self.client = client
        # Requests the queen itself has in flight per worker; heartbeats lag by up to a second.
        self.in_flight: defaultdict[str, int] = defaultdict(int)
        self._spawn_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def acquire(self, operation: InferOperation) -> WorkerTarget:
        """Return a worker for the operation's model and count the request against it."""
        target = self._pick_ready(operation)
        if target is None:
            async with self._spawn_locks[operation.model]:
                target = self._pick_ready(operation) or await self._start_worker(operation)
        self.in_flight[target.worker_id] += 1
        return target

    def release(self, target: WorkerTarget) -> None:
        self.in_flight[target.worker_id] -= 1
        if self.in_flight[target.worker_id] <= 0:
            del self.in_flight[target.worker_id]

    def _pick_ready(self, operation: InferOperation) -> WorkerTarget | None:
        candidates = []
        for hive in self.registry.online():
            if operation.hive_id and hive.hive_id != operation.hive_id:
                continue
            for worker in hive.heartbeat.workers:
                if worker.get("model") != operation.model:
                    continue
                if worker.get("state") not in ("ready", "busy"):
                    continue
                if operation.worker_id and worker.get("worker_id") != operation.worker_id:
                    continue
                candidates.append((hive, worker))
        if not candidates:
            if operation.worker_id:
                raise NotFoundError(
                    f"Worker {operation.worker_id!r} is not a ready worker for "
                    f"{operation.model!r} on an online hive; list workers with "
                    "`rbee --no-tui status`."
                )
            return None
        hive, worker = min(candidates, key=lambda pair: self.in_flight[pair[1]["worker_id"]])
        target = WorkerTarget(hive.hive_id, worker["worker_id"], worker["url"], operation.model)
        narrate(
            "queen_route",
            f"Routing to worker {target.worker_id} on hive {hive.hive_id} "
            f"({self.in_flight[target.worker_id]} requests in flight).",
            cute=f"👑 Sending this one to {target.worker_id} on {hive.hive_id}!",
            story=f'"{target.worker_id}, this one is yours," said the queen.',
            hive_id=hive.hive_id,
            worker_id=target.worker_id,
        )
        return target

    async def _start_worker(self, operation: InferOperation) -> WorkerTarget:
        hive, reason = self._choose_hive(operation)
        narrate(
            "queen_schedule",
            f"Starting a worker for {operation.model} on hive {hive.hive_id}: {reason}.",
            cute=f"👑 No worker for {operation.model} yet; hive {hive.hive_id}, hatch one!",
            story=(
                f'"We need a worker for {operation.model}," said the queen. '
                f'"Hive {hive.hive_id}, you have room."'
            ),
            hive_id=hive.hive_id,
            model=operation.model,
        )
        worker: dict[str, Any] = await run_hive_job(
            self.client, hive.hive_id, hive.url,
            {"operation": "worker_spawn", "hive_id": hive.hive_id, "model": operation.model},
        )
        self.registry.add_worker(hive.hive_id, worker)
        return WorkerTarget(hive.hive_id, worker["worker_id"], worker["url"], operation.model)

    def _choose_hive(self, operation: InferOperation) -> tuple[HiveRecord, str]:
        online = self.registry.online()
        if operation.hive_id:
            online = [hive for hive in online if hive.hive_id == operation.hive_id]
            if not online:
                raise NoCapacityError(
                    f"Hive {operation.hive_id!r} is not online; check it with "
                    "`rbee --no-tui status`."
                )
        if not online:
            raise NoCapacityError(
                "No hive is online; start the local one with `rbee --no-tui hive start` or "
                "check `rbee --no-tui status`."
            )
        fits = []
        reasons = []
        for hive in online:
            model = hive.has_model(operation.model)
            if model is None:
                reasons.append(f"hive {hive.hive_id} does not have {operation.model}")
                continue
            free = int(hive.heartbeat.devices.get("ram", {}).get("available_bytes") or 0)
            needed = int(model.get("size") or 0) + WORKER_OVERHEAD_BYTES
            if free < needed:
                reasons.append(
                    f"hive {hive.hive_id} has {free / 1e9:.1f} GB RAM free, needs "
                    f"{needed / 1e9:.1f} GB"
                )
                continue
            fits.append((free, hive, needed))
        if not fits:
            raise NoCapacityError(
                f"No online hive can start a worker for {operation.model!r}: "
                + "; ".join(reasons) + "."
            )
        free, hive, needed = max(fits, key=lambda item: item[0])
        reason = f"{free / 1e9:.1f} GB RAM free, model needs about {needed / 1e9:.1f} GB"
        return hive, reason
