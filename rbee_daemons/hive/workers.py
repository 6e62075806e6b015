"""Worker processes of a hive: spawn on a free port, health-poll, supervise, stop."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from rbee_daemons import narration
from rbee_daemons.errors import NotFoundError, WorkerError
from rbee_daemons.narration import narrate

logger = logging.getLogger(__name__)

PORT_RANGE = range(9300, 9400)
READY_TIMEOUT_SECONDS = 180.0
STOP_GRACE_SECONDS = 5.0
STDERR_TAIL_LINES = 8


@dataclass
class WorkerProcess:
    worker_id: str
    model: str
    port: int
    host: str
    log_path: Path
    process: subprocess.Popen[bytes]
    state: str = "starting"
    in_flight: int = 0
    started_at: float = field(default_factory=time.time)
    stopping: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "worker_id": self.worker_id,
            "model": self.model,
            "port": self.port,
            "pid": self.pid,
            "url": self.url,
            "state": self.state,
            "in_flight": self.in_flight,
            "rss_bytes": None,
            "cpu_percent": None,
        }
        try:
            proc = psutil.Process(self.pid)
            info["rss_bytes"] = proc.memory_info().rss
            info["cpu_percent"] = proc.cpu_percent(interval=None)
        except psutil.Error:
            pass
        return info


def tail_lines(path: Path, count: int = STDERR_TAIL_LINES) -> list[str]:
    """Return the last `count` lines of a worker log that are not narration JSON."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    return lines[-count:]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class WorkerManager:
    """Starts and tracks the worker processes of this hive."""

    def __init__(self, log_dir: Path, host: str = "127.0.0.1") -> None:
        self.log_dir = log_dir
        self.host = host
        self.workers: dict[str, WorkerProcess] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

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

    def allocate_port(self) -> int:
        taken = {worker.port for worker in self.workers.values()}
        for port in PORT_RANGE:
            if port not in taken and port_is_free(self.host, port):
                return port
        raise WorkerError(
            f"No free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1} for a new worker; stop "
            "a worker first."
        )

    async def spawn(self, model_id: str, model_path: Path) -> WorkerProcess:
        """Start a worker for `model_id` and wait until its `/health` says ready.

        Relays the worker's start-up narration into the current job. Raises WorkerError with
        the worker's last output when it exits or does not become ready in time.
        """
        worker_id = f"worker-{uuid.uuid4().hex[:8]}"
        port = self.allocate_port()
        log_path = self.log_dir / f"{worker_id}.log"
        narrate(
            "hive_worker_spawn",
            f"Starting worker {worker_id} for {model_id} on port {port}.",
            cute=f"🐝 Hatching worker {worker_id} for {model_id} on port {port}!",
            story=f'"Wake up, little one," said the hive to {worker_id}. "{model_id} awaits."',
            worker_id=worker_id,
            model=model_id,
            port=port,
        )
        command = [
            sys.executable, "-m", "rbee_daemons.worker",
            "--model-path", str(model_path), "--model-id", model_id,
            "--worker-id", worker_id, "--host", self.host, "--port", str(port),
        ]
        process = await asyncio.to_thread(_start_process, command, log_path)
        worker = WorkerProcess(worker_id, model_id, port, self.host, log_path, process)
        self.workers[worker_id] = worker
        try:
            await self._wait_ready(worker)
        except BaseException:
            await self.stop(worker_id, narrate_stop=False)
            raise
        worker.state = "ready"
        return worker

    async def _wait_ready(self, worker: WorkerProcess) -> None:
        offset = 0
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                offset = self._relay_narration(worker.log_path, offset)
                code = worker.process.poll()
                if code is not None:
                    self._relay_narration(worker.log_path, offset)
                    last = " | ".join(tail_lines(worker.log_path)) or "no output"
                    raise WorkerError(
                        f"Worker {worker.worker_id} for {worker.model} exited with code {code} "
                        f"while loading; its last output: {last}"
                    )
                if await self._is_ready(client, worker):
                    self._relay_narration(worker.log_path, offset)
                    return
                if time.monotonic() > deadline:
                    raise WorkerError(
                        f"Worker {worker.worker_id} for {worker.model} was not ready after "
                        f"{READY_TIMEOUT_SECONDS:.0f} s; see {worker.log_path}."
                    )
                await asyncio.sleep(0.1)

    async def _is_ready(self, client: httpx.AsyncClient, worker: WorkerProcess) -> bool:
        try:
            response = await client.get(f"{worker.url}/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _relay_narration(self, log_path: Path, offset: int) -> int:
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

    async def refresh(self, client: httpx.AsyncClient) -> None:
        """Update in-flight counts from each worker and notice workers that exited."""
        for worker in list(self.workers.values()):
            code = worker.process.poll()
            if code is not None and not worker.stopping:
                self._report_crash(worker, code)
                continue
            if worker.state not in ("ready", "busy"):
                continue
            try:
                response = await client.get(f"{worker.url}/health", timeout=1.0)
                worker.in_flight = int(response.json().get("in_flight", 0))
                worker.state = "busy" if worker.in_flight else "ready"
            except (httpx.HTTPError, ValueError):
                pass

    def _report_crash(self, worker: WorkerProcess, code: int) -> None:
        del self.workers[worker.worker_id]
        last = " | ".join(tail_lines(worker.log_path)) or "no output"
        narrate(
            "hive_worker_crashed",
            f"Worker {worker.worker_id} for {worker.model} exited with code {code}; "
            f"its last output: {last}",
            cute=f"💥 Worker {worker.worker_id} fell out of the hive (code {code})!",
            story=f'"Where did {worker.worker_id} go?" asked the hive. Nobody answered.',
            level="error",
            worker_id=worker.worker_id,
            model=worker.model,
            exit_code=code,
        )

    async def stop(self, worker_id: str, *, narrate_stop: bool = True) -> None:
        """Stop a worker: SIGTERM to its process group, SIGKILL after a grace period."""
        worker = self.get(worker_id)
        worker.stopping = True
        worker.state = "stopping"
        if narrate_stop:
            narrate(
                "hive_worker_stop",
                f"Stopping worker {worker_id} ({worker.model}, pid {worker.pid}).",
                cute=f"😴 Tucking worker {worker_id} into bed.",
                story=f'"Rest now," said the hive, and {worker_id} went quiet.',
                worker_id=worker_id,
                model=worker.model,
            )
        await asyncio.to_thread(terminate_group, worker.process, STOP_GRACE_SECONDS)
        self.workers.pop(worker_id, None)

    async def stop_all(self) -> None:
        await asyncio.gather(
            *(self.stop(worker_id) for worker_id in list(self.workers)), return_exceptions=True
        )


def _start_process(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a worker in its own process group with stdout and stderr in its log file."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def terminate_group(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """Send SIGTERM to the process group, then SIGKILL if it is still alive after the grace."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        logger.warning("Worker pid %d ignored SIGTERM; sending SIGKILL", process.pid)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(timeout=grace_seconds)
