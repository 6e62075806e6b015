"""Fixtures that run the real daemons as processes on loopback with isolated XDG dirs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from httpx_sse import connect_sse

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def isolated_env(root: Path) -> dict[str, str]:
    """Environment whose XDG dirs all live under `root`, so a run touches nothing else."""
    env = dict(os.environ)
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        env[f"XDG_{name}_HOME"] = str(root / name.lower())
    env.pop("RBEE_TOKEN", None)
    env["NO_COLOR"] = "1"
    return env


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Cluster:
    """A queen and a hive started by a test, and helpers to talk to them."""

    root: Path
    env: dict[str, str]
    queen_url: str
    hive_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    queen_args: tuple[str, ...] = ()

    def start(self, module: str, *args: str, log_name: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{log_name}.out").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args], env=self.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.processes.append(process)
        return process

    def hives(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.queen_url}/v1/hives", timeout=5).json()["hives"])

    def submit(self, operation: dict[str, Any]) -> str:
        response = httpx.post(f"{self.queen_url}/v1/jobs", json=operation, timeout=10)
        assert response.status_code == 201, response.text
        return str(response.json()["job_id"])

    def stream(
        self, job_id: str, last_event_id: int | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Read a job's whole stream; return its events and the end marker."""
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        found: list[dict[str, Any]] = []
        marker = ""
        with httpx.Client(timeout=httpx.Timeout(10, read=120)) as client, connect_sse(
            client, "GET", f"{self.queen_url}/v1/jobs/{job_id}/stream", headers=headers
        ) as source:
            for message in source.iter_sse():
                if message.data.startswith("["):
                    marker = message.data
                    break
                event = json.loads(message.data)
                assert message.id == str(event["seq"])
                found.append(event)
        return found, marker

    def run(self, operation: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        return self.stream(self.submit(operation))

    def event_count(self, job_id: str) -> int:
        summary = httpx.get(f"{self.queen_url}/v1/jobs/{job_id}", timeout=10).json()
        return int(summary["events"])

    @contextlib.contextmanager
    def hold(self, job_id: str) -> Iterator[None]:
        """Keep one subscriber on the job's stream, as a client following it would.

        An infer job is cancelled when its last subscriber leaves, so a test that peeks at
        the stream with `stream_so_far` must hold it open meanwhile.
        """
        stop = threading.Event()

        def follow() -> None:
            with httpx.Client(timeout=httpx.Timeout(10, read=1)) as client, connect_sse(
                client, "GET", f"{self.queen_url}/v1/jobs/{job_id}/stream"
            ) as source:
                events = source.iter_sse()
                while not stop.is_set():
                    try:
                        if next(events).data.startswith("["):
                            return
                    except httpx.ReadTimeout:
                        continue
                    except StopIteration:
                        return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()

    def stream_so_far(self, job_id: str) -> list[dict[str, Any]]:
        """Return the events a job has emitted so far, without waiting for its end."""
        summary = httpx.get(f"{self.queen_url}/v1/jobs/{job_id}", timeout=10).json()
        count = int(summary["events"])
        found: list[dict[str, Any]] = []
        if count == 0:
            return found
        with httpx.Client(timeout=30) as client, connect_sse(
            client, "GET", f"{self.queen_url}/v1/jobs/{job_id}/stream"
        ) as source:
            for message in source.iter_sse():
                found.append(json.loads(message.data))
                if len(found) >= count:
                    break
        return found

    def restart_queen(self) -> None:
        """Start the queen again on the same port and data dir (its old process is gone)."""
        port = self.queen_url.rsplit(":", 1)[1]
        queen = self.start("rbee_daemons.queen", "--port", port, *self.queen_args,
                           log_name="queen")
        self.processes[0] = queen
        self.processes.pop()
        wait_until(lambda: healthy(self.queen_url), STARTUP_TIMEOUT, "the restarted queen")

    def stop(self) -> None:
        # Hive first: it stops its workers on SIGTERM.
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)


def start_cluster(root: Path, queen_args: tuple[str, ...] = ()) -> Cluster:
    root.mkdir(parents=True, exist_ok=True)
    queen_port, hive_port = free_port(), free_port()
    cluster = Cluster(root, isolated_env(root), f"http://127.0.0.1:{queen_port}",
                      f"http://127.0.0.1:{hive_port}", queen_args=queen_args)
    cluster.start("rbee_daemons.queen", "--port", str(queen_port), *queen_args,
                  log_name="queen")
    wait_until(lambda: healthy(cluster.queen_url), STARTUP_TIMEOUT, "the queen's /health")
    cluster.start("rbee_daemons.hive", "--port", str(hive_port), "--queen-url",
                  cluster.queen_url, log_name="hive")
    wait_until(lambda: any(h["state"] == "online" for h in cluster.hives()), STARTUP_TIMEOUT,
               "the hive's first heartbeat")
    return cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield running
    finally:
        running.stop()


def worker_pids(root: Path) -> list[int]:
    """Pids of live worker processes whose command line points into `root`."""
    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "rbee_daemons.worker" in cmdline and any(str(root) in part for part in cmdline):
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    pids.append(process.info["pid"])
            except psutil.Error:
                continue
    return pids
