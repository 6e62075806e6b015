"""Operating-system side of a worker: start, signal, inspect and remember its process."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

STDERR_TAIL_LINES = 8


@dataclass
class WorkerRecord:
    """The facts a restarted hive needs to adopt a live worker, stored as JSON (mode 0600)."""

    worker_id: str
    model: str
    model_path: str
    host: str
    advertise_host: str
    port: int
    pid: int
    create_time: float
    log_path: str
    token: str | None
    restarts: int = 0

    def save(self, folder: Path) -> None:
        path = folder / f"{self.worker_id}.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle)

    @staticmethod
    def load_all(folder: Path) -> list[WorkerRecord]:
        records = []
        for path in sorted(folder.glob("worker-*.json")):
            try:
                records.append(WorkerRecord(**json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError) as exc:
                logger.warning("Ignored unreadable worker record %s: %s", path, exc)
                path.unlink(missing_ok=True)
        return records

    def forget(self, folder: Path) -> None:
        (folder / f"{self.worker_id}.json").unlink(missing_ok=True)


class ProcessHandle:
    """A worker process: a child this hive started, or one adopted from a previous hive."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.popen = popen
        self._stats: psutil.Process | None = None
        try:
            self._stats = psutil.Process(pid)
        except psutil.Error:
            self._stats = None

    @property
    def create_time(self) -> float:
        return self._stats.create_time() if self._stats is not None else 0.0

    def exited(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is not None
        try:
            return self._stats is None or self._stats.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return True

    def exit_code(self) -> int | None:
        """Return the exit code of a child, or None while it runs or when it was adopted."""
        return self.popen.poll() if self.popen is not None else None

    def stats(self) -> tuple[int | None, float | None]:
        """Resident memory in bytes and CPU percent since the previous call."""
        try:
            if self._stats is None:
                return None, None
            return self._stats.memory_info().rss, self._stats.cpu_percent(interval=None)
        except psutil.Error:
            return None, None

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the process to end; return whether it did."""
        try:
            if self.popen is not None:
                self.popen.wait(timeout=timeout)
            elif self._stats is not None:
                self._stats.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            return False
        except psutil.Error:
            return True
        return True

    def terminate_group(self, grace_seconds: float) -> None:
        """SIGTERM the process group, then SIGKILL if it is still alive after the grace."""
        if self.exited():
            self.wait(0.1)
            return
        if not _signal_group(self.pid, signal.SIGTERM) or self.wait(grace_seconds):
            return
        logger.warning("Worker pid %d ignored SIGTERM for %.0f s; sending SIGKILL",
                       self.pid, grace_seconds)
        _signal_group(self.pid, signal.SIGKILL)
        self.wait(grace_seconds)


def _signal_group(pid: int, signum: signal.Signals) -> bool:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    return True


def adoptable(record: WorkerRecord) -> ProcessHandle | None:
    """Return a handle on the recorded worker if that very process still runs."""
    try:
        process = psutil.Process(record.pid)
        same = abs(process.create_time() - record.create_time) < 1.0
        running = process.status() != psutil.STATUS_ZOMBIE
        if same and running and record.worker_id in process.cmdline():
            return ProcessHandle(record.pid)
    except psutil.Error:
        pass
    return None


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def tail_lines(path: Path, count: int = STDERR_TAIL_LINES) -> list[str]:
    """Return the last `count` lines of a worker log that are not narration JSON."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    return lines[-count:]


def start_process(command: list[str], log_path: Path, env: dict[str, str]) -> ProcessHandle:
    """Start a worker in its own process group with stdout and stderr in its log file."""
    with log_path.open("ab") as log_file:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
    return ProcessHandle(popen.pid, popen)


def worker_command(args: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-m", "rbee_daemons.worker"]
    for name, value in args.items():
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    return command
