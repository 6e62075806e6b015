"""Picking a worker for an inference, or starting one on a hive that can host it.

Admission control lives here too: the queen sends one request at a time to each worker and
keeps the others in a bounded FIFO per worker, so it can tell a job its queue position,
return 429 when every queue is full, and drop a cancelled request before it reaches a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from rbee_daemons.errors import HiveError, NoCapacityError, NotFoundError, QueueFullError
from rbee_daemons.narration import narrate
from rbee_daemons.operations import InferOperation
from rbee_daemons.queen.hive_client import run_hive_job
from rbee_daemons.queen.registry import HiveRecord, HiveRegistry

# Rough memory a worker needs beyond the model file: llama.cpp context, buffers, Python.
WORKER_OVERHEAD_BYTES = 300 * 1024 * 1024
DEFAULT_QUEUE_LIMIT = 8
# How long a request waits for a worker that its hive is (re)starting.
STARTING_WAIT_SECONDS = 180.0
SERVING_STATES = ("ready", "busy")


@dataclass(frozen=True)
class WorkerTarget:
    hive_id: str
    worker_id: str
    url: str
    model: str
    token: str | None = None


@dataclass
class WorkerQueue:
    """The queen's admission state for one worker."""

    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    waiting: int = 0
    running: int = 0

    @property
    def load(self) -> int:
        return self.waiting + self.running


class Scheduler:
    def __init__(
        self,
        registry: HiveRegistry,
        client: httpx.AsyncClient,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> None:
        self.registry = registry
        self.client = client
        self.queue_limit = queue_limit
        self.queues: dict[str, WorkerQueue] = {}
        self._spawn_locks: dict[str, asyncio.Lock] = {}
        self._hive_lost: dict[str, asyncio.Future[None]] = {}

    # Admission --------------------------------------------------------------------------

    def admit(self, operation: InferOperation) -> None:
        """Reject a request up front: unknown model (404), no hive (503), full queues (429)."""
        online = self.registry.online()
        if not online:
            raise NoCapacityError(
                "No hive is online; start the local one with `rbee --no-tui hive start` or "
                "check `rbee --no-tui status`."
            )
        if not any(hive.has_model(operation.model) or _serving(hive, operation.model)
                   for hive in online):
            raise NotFoundError(
                f"The model {operation.model!r} is not available on any online hive; list "
                "models with GET /v1/models.",
                code="model_not_found",
            )
        candidates = self._candidates(operation)
        if candidates and all(self._is_full(w["worker_id"]) for _, w in candidates):
            raise QueueFullError(
                f"Every worker for {operation.model!r} has {self.queue_limit} requests "
                "waiting; retry shortly."
            )

    def queue_position(self, worker_id: str) -> int:
        return self._queue(worker_id).waiting

    @contextlib.asynccontextmanager
    async def lease(self, operation: InferOperation) -> AsyncIterator[WorkerTarget]:
        """Hold a worker for one request: pick or start it, then wait for its turn."""
        target = await self._find_worker(operation)
        queue = self._queue(target.worker_id)
        if self._is_full(target.worker_id):
            raise QueueFullError(
                f"Worker {target.worker_id} has {self.queue_limit} requests waiting; retry "
                "shortly."
            )
        queue.waiting += 1
        try:
            if queue.gate.locked():
                narrate(
                    "queen_queued",
                    f"Queued at position {queue.waiting} for worker {target.worker_id}.",
                    cute=f"⏳ Waiting in line, number {queue.waiting}, for {target.worker_id}!",
                    story=f'"Please wait your turn," said the queen. "You are number '
                          f'{queue.waiting}."',
                    worker_id=target.worker_id,
                    position=queue.waiting,
                )
            await queue.gate.acquire()
        finally:
            queue.waiting -= 1
        queue.running += 1
        try:
            yield target
        finally:
            queue.running -= 1
            queue.gate.release()

    def _is_full(self, worker_id: str) -> bool:
        # One request runs on the worker; up to queue_limit wait behind it.
        return self._queue(worker_id).load >= 1 + self.queue_limit

    def _queue(self, worker_id: str) -> WorkerQueue:
        queue = self.queues.get(worker_id)
        if queue is None:
            queue = self.queues[worker_id] = WorkerQueue()
        return queue

    # Hives going away -----------------------------------------------------------------

    def hive_lost(self, hive_id: str) -> asyncio.Future[None]:
        """Return a future that fails when `hive_id` goes offline."""
        future = self._hive_lost.get(hive_id)
        if future is None or future.done():
            future = self._hive_lost[hive_id] = asyncio.get_running_loop().create_future()
        return future

    def mark_offline(self, hive: HiveRecord) -> None:
        future = self._hive_lost.pop(hive.hive_id, None)
        if future is not None and not future.done():
            future.set_exception(HiveError(
                f"Hive {hive.hive_id!r} at {hive.url} went offline (no heartbeat for "
                f"{hive.age():.0f} s) while serving this job; check it with "
                "`rbee --no-tui status`."
            ))
            # Nobody may be waiting on it; do not warn about an unretrieved exception.
            future.exception()

    # Picking and starting workers ----------------------------------------------------

    def _candidates(self, operation: InferOperation) -> list[tuple[HiveRecord, dict[str, Any]]]:
        found = []
        for hive in self.registry.online():
            if operation.hive_id and hive.hive_id != operation.hive_id:
                continue
            for worker in hive.heartbeat.workers:
                if worker.get("model") != operation.model:
                    continue
                if worker.get("state") not in SERVING_STATES:
                    continue
                if operation.worker_id and worker.get("worker_id") != operation.worker_id:
                    continue
                found.append((hive, worker))
        return found

    async def _find_worker(self, operation: InferOperation) -> WorkerTarget:
        deadline = time.monotonic() + STARTING_WAIT_SECONDS
        announced = False
        while True:
            target = self._pick_ready(operation)
            if target is not None:
                return target
            if operation.worker_id:
                raise NotFoundError(
                    f"Worker {operation.worker_id!r} is not a ready worker for "
                    f"{operation.model!r} on an online hive; list workers with "
                    "`rbee --no-tui status`."
                )
            starting = self._starting_worker(operation)
            if starting is None or time.monotonic() > deadline:
                break
            if not announced:
                narrate(
                    "queen_wait_worker",
                    f"Waiting for worker {starting} to finish starting.",
                    cute=f"⏳ {starting} is still stretching its wings, let's wait!",
                    story=f'"{starting} is nearly awake," said the queen. "We shall wait."',
                    worker_id=starting,
                )
                announced = True
            await asyncio.sleep(0.2)
        lock = self._spawn_locks.setdefault(operation.model, asyncio.Lock())
        async with lock:
            return self._pick_ready(operation) or await self._start_worker(operation)

    def _starting_worker(self, operation: InferOperation) -> str | None:
        for hive in self.registry.online():
            if operation.hive_id and hive.hive_id != operation.hive_id:
                continue
            for worker in hive.heartbeat.workers:
                if worker.get("model") == operation.model and worker.get("state") == "starting":
                    return str(worker.get("worker_id"))
        return None

    def _pick_ready(self, operation: InferOperation) -> WorkerTarget | None:
        candidates = self._candidates(operation)
        if not candidates:
            return None
        hive, worker = min(candidates, key=lambda pair: self._queue(pair[1]["worker_id"]).load)
        target = _target(hive, worker, operation.model)
        narrate(
            "queen_route",
            f"Routing to worker {target.worker_id} on hive {hive.hive_id} "
            f"({self._queue(target.worker_id).load} requests ahead).",
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
        self.registry.add_worker(hive.hive_id, {**worker, "state": "ready"})
        return _target(hive, worker, operation.model)

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


def _serving(hive: HiveRecord, model_id: str) -> bool:
    return any(worker.get("model") == model_id for worker in hive.heartbeat.workers)


def _target(hive: HiveRecord, worker: dict[str, Any], model: str) -> WorkerTarget:
    return WorkerTarget(hive.hive_id, str(worker["worker_id"]), str(worker["url"]), model,
                        worker.get("token"))
