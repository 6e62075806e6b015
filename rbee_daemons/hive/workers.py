"""Worker processes of a hive: spawn on a free port, health-poll, supervise, adopt, stop."""

from __future__ import annotations

import asyncio
import builtins
import functools
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rbee_daemons import narration
from rbee_daemons.auth import generate_token
from rbee_daemons.errors import NotFoundError, WorkerError
from rbee_daemons.hive import worker_story as story
from rbee_daemons.hive.worker_process import (
    ProcessHandle,
    WorkerRecord,
    adoptable,
    port_is_free,
    start_process,
    tail_lines,
    worker_command,
)
from rbee_daemons.redact import register_secret

logger = logging.getLogger(__name__)

PORT_RANGE = range(9300, 9400)
READY_TIMEOUT_SECONDS = 180.0
STOP_GRACE_SECONDS = 5.0
PORT_ATTEMPTS = 5
# Consecutive failed loads after a crash before the worker is marked failed.
MAX_LOAD_FAILURES = 3
RESTART_BACKOFF_SECONDS = 0.5
MAX_RESTART_BACKOFF_SECONDS = 30.0
# A worker that ran at least this long before crashing starts its backoff from the beginning.
STABLE_SECONDS = 60.0
# Matches `EXIT_PORT_IN_USE` in rbee_daemons.worker.main.
EXIT_PORT_IN_USE = 4


class _PortTaken(Exception):
    """The worker lost the race for its port to another process."""


@dataclass
class WorkerSettings:
    """Settings this hive starts its workers with."""

    log_dir: Path
    bind_host: str = "127.0.0.1"
    # Host in worker URLs; differs from bind_host when binding 0.0.0.0.
    advertise_host: str = "127.0.0.1"
    # Network mode: each worker requires its own bearer token.
    network: bool = False
    hive_url: str | None = None
    hive_id: str | None = None
    orphan_seconds: float = 60.0


@dataclass
class WorkerProcess:
    worker_id: str
    model: str
    model_path: Path
    log_path: Path
    host: str
    token: str | None
    port: int = 0
    handle: ProcessHandle | None = None
    state: str = "starting"
    reason: str | None = None
    restarts: int = 0
    in_flight: int = 0
    ready_at: float | None = None
    stopping: bool = False
    supervised: bool = False
    restarting: bool = False

    @property
    def pid(self) -> int | None:
        return self.handle.pid if self.handle is not None else None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> dict[str, Any]:
        rss, cpu = self.handle.stats() if self.handle is not None else (None, None)
        return {"worker_id": self.worker_id, "model": self.model, "port": self.port,
                "pid": self.pid, "url": self.url, "state": self.state, "reason": self.reason,
                "restarts": self.restarts, "in_flight": self.in_flight, "rss_bytes": rss,
                "cpu_percent": cpu, "token": self.token}


class WorkerManager:
    """Starts, supervises and stops the worker processes of this hive."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.workers: dict[str, WorkerProcess] = {}
        self._restarts: dict[str, asyncio.Task[None]] = {}
        settings.log_dir.mkdir(parents=True, exist_ok=True)

    def list(self) -> list[WorkerProcess]:
        return list(self.workers.values())

    def get(self, worker_id: str) -> WorkerProcess:
        worker = self.workers.get(worker_id)
        if worker is None:
            raise NotFoundError(
                f"Worker {worker_id!r} is not running on this hive; list workers with "
                "`rbee --no-tui worker list`."
            )
        return worker

    def for_model(self, model_id: str) -> builtins.list[WorkerProcess]:
        return [worker for worker in self.workers.values() if worker.model == model_id]

    def allocate_port(self) -> int:
        taken = {worker.port for worker in self.workers.values()}
        for port in PORT_RANGE:
            if port not in taken and port_is_free(self.settings.bind_host, port):
                return port
        raise WorkerError(
            f"No free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1} for a new worker; stop "
            "a worker first."
        )

    async def spawn(self, model_id: str, model_path: Path) -> WorkerProcess:
        """Start a worker for `model_id` and wait until its `/health` reports ready.

        Relays the worker's start-up narration into the current job. Raises WorkerError with
        the worker's last output when it exits or does not become ready in time.
        """
        worker_id = f"worker-{uuid.uuid4().hex[:8]}"
        token = generate_token() if self.settings.network else None
        register_secret(token)
        worker = WorkerProcess(worker_id, model_id, model_path,
                               self.settings.log_dir / f"{worker_id}.log",
                               self.settings.advertise_host, token)
        self.workers[worker_id] = worker
        try:
            await self._launch(worker)
        except BaseException:
            await self._terminate(worker)
            self.workers.pop(worker_id, None)
            raise
        worker.supervised = True
        return worker

    async def _launch(self, worker: WorkerProcess) -> None:
        """Start the process on a probed port; move to another port if one was taken."""
        for _ in range(PORT_ATTEMPTS):
            worker.port = self.allocate_port()
            story.spawning(worker.worker_id, worker.model, worker.port)
            worker.state = "starting"
            offset = await asyncio.to_thread(_file_size, worker.log_path)
            worker.handle = await asyncio.to_thread(
                start_process, self._command(worker), worker.log_path,
                {"RBEE_WORKER_TOKEN": worker.token} if worker.token else {},
            )
            self._record(worker)
            try:
                await self._wait_ready(worker, offset)
            except _PortTaken:
                story.port_taken(worker.worker_id, worker.port)
                continue
            worker.state = "ready"
            worker.ready_at = time.monotonic()
            return
        raise WorkerError(f"Worker {worker.worker_id} lost the race for a free port "
                          f"{PORT_ATTEMPTS} times; is another program taking ports 9300-9399?")

    def _command(self, worker: WorkerProcess) -> builtins.list[str]:
        settings = self.settings
        return worker_command({
            "model_path": worker.model_path, "model_id": worker.model,
            "worker_id": worker.worker_id, "host": settings.bind_host, "port": worker.port,
            "hive_url": settings.hive_url, "hive_id": settings.hive_id,
            "orphan_timeout": settings.orphan_seconds if settings.hive_url else None,
        })

    def _record(self, worker: WorkerProcess) -> None:
        handle = worker.handle
        if handle is None:
            return
        WorkerRecord(worker.worker_id, worker.model, str(worker.model_path),
                     self.settings.bind_host, worker.host, worker.port, handle.pid,
                     handle.create_time, str(worker.log_path), worker.token,
                     worker.restarts).save(self.settings.log_dir)

    async def _wait_ready(self, worker: WorkerProcess, offset: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        assert worker.handle is not None
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                offset = relay_narration(worker.log_path, offset)
                if worker.handle.exited():
                    relay_narration(worker.log_path, offset)
                    self._raise_exit(worker)
                if await self._is_ready(client, worker):
                    relay_narration(worker.log_path, offset)
                    return
                if time.monotonic() > deadline:
                    raise WorkerError(
                        f"Worker {worker.worker_id} for {worker.model} was not ready after "
                        f"{READY_TIMEOUT_SECONDS:.0f} s; see {worker.log_path}."
                    )
                await asyncio.sleep(0.1)

    def _raise_exit(self, worker: WorkerProcess) -> None:
        assert worker.handle is not None
        worker.handle.wait(1.0)
        code = worker.handle.exit_code()
        if code == EXIT_PORT_IN_USE:
            raise _PortTaken()
        last = " | ".join(tail_lines(worker.log_path)) or "no output"
        raise WorkerError(
            f"Worker {worker.worker_id} for {worker.model} exited with code {code} "
            f"while loading; its last output: {last}"
        )

    async def _is_ready(self, client: httpx.AsyncClient, worker: WorkerProcess) -> bool:
        try:
            response = await client.get(f"{worker.url}/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def supervise(self) -> None:
        """Restart workers that crashed after they had been ready; called every heartbeat."""
        for worker in list(self.workers.values()):
            crashed = worker.handle is not None and worker.handle.exited()
            if not crashed or worker.stopping or not worker.supervised or worker.restarting:
                continue
            if worker.state == "failed":
                continue
            code = worker.handle.exit_code() if worker.handle else None
            story.crashed(worker, code, tail_lines(worker.log_path))
            # Set here, not in the restart task: the heartbeat built right after this call
            # must not report the dead worker as ready.
            worker.state, worker.in_flight = "starting", 0
            worker.restarting = True
            task = asyncio.create_task(self._restart(worker), name=f"restart-{worker.worker_id}")
            self._restarts[worker.worker_id] = task
            task.add_done_callback(functools.partial(self._forget_restart, worker.worker_id))

    def _forget_restart(self, worker_id: str, task: asyncio.Task[None]) -> None:
        self._restarts.pop(worker_id, None)

    async def _restart(self, worker: WorkerProcess) -> None:
        stable = worker.ready_at is not None and time.monotonic() - worker.ready_at > STABLE_SECONDS
        streak = 0 if stable else min(worker.restarts, 6)
        failures = 0
        try:
            while not worker.stopping:
                delay = min(RESTART_BACKOFF_SECONDS * 2**streak, MAX_RESTART_BACKOFF_SECONDS)
                story.restarting(worker, delay)
                await asyncio.sleep(delay)
                worker.restarts += 1
                try:
                    await self._launch(worker)
                    story.restarted(worker)
                    return
                except WorkerError as exc:
                    failures, streak = failures + 1, streak + 1
                    if failures >= MAX_LOAD_FAILURES:
                        worker.state, worker.reason = "failed", exc.message
                        story.gave_up(worker, failures)
                        return
        finally:
            worker.restarting = False

    async def adopt(self, client: httpx.AsyncClient) -> None:
        """Take over live workers a previous hive process started; forget dead ones."""
        for record in await asyncio.to_thread(WorkerRecord.load_all, self.settings.log_dir):
            handle = adoptable(record)
            if handle is None:
                record.forget(self.settings.log_dir)
                continue
            register_secret(record.token)
            worker = WorkerProcess(record.worker_id, record.model, Path(record.model_path),
                                   Path(record.log_path), record.advertise_host, record.token,
                                   port=record.port, handle=handle, restarts=record.restarts,
                                   supervised=True, ready_at=time.monotonic())
            ready = await self._is_ready(client, worker)
            worker.state = "ready" if ready else "starting"
            self.workers[worker.worker_id] = worker
            story.adopted(worker)

    async def refresh(self, client: httpx.AsyncClient) -> None:
        """Update states and in-flight counts from each worker's `/health`."""
        self.supervise()
        for worker in list(self.workers.values()):
            if worker.state not in ("ready", "busy", "starting") or worker.restarting:
                continue
            if not worker.supervised:
                continue
            try:
                response = await client.get(f"{worker.url}/health", timeout=1.0)
                body = response.json()
            except (httpx.HTTPError, ValueError):
                continue
            if response.status_code == 200:
                worker.in_flight = int(body.get("in_flight", 0))
                worker.state = "busy" if worker.in_flight else "ready"

    async def stop(self, worker_id: str, *, narrate_stop: bool = True) -> None:
        """Stop a worker: SIGTERM to its process group, SIGKILL after a grace period."""
        worker = self.get(worker_id)
        worker.stopping = True
        worker.state = "stopping"
        restart = self._restarts.get(worker_id)
        if restart is not None:
            restart.cancel()
            await asyncio.gather(restart, return_exceptions=True)
        if narrate_stop:
            story.stopping(worker)
        await self._terminate(worker)
        self.workers.pop(worker_id, None)

    async def _terminate(self, worker: WorkerProcess) -> None:
        if worker.handle is not None:
            await asyncio.to_thread(worker.handle.terminate_group, STOP_GRACE_SECONDS)
        (self.settings.log_dir / f"{worker.worker_id}.json").unlink(missing_ok=True)

    async def stop_all(self) -> None:
        await asyncio.gather(
            *(self.stop(worker_id) for worker_id in list(self.workers)), return_exceptions=True
        )


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def relay_narration(log_path: Path, offset: int) -> int:
    """Relay narration JSON lines written after `offset`; return the new offset."""
    try:
        with log_path.open("rb") as log_file:
            log_file.seek(offset)
            data = log_file.read()
    except OSError:
        return offset
    complete, _, _ = data.rpartition(b"\n")
    for line in complete.splitlines():
        if not line.startswith(b"{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "narration":
            narration.relay(event)
    return offset + len(complete) + (1 if complete else 0)
