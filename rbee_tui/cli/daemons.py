"""Starting and stopping the local queen and hive, tracked by pid files in the state dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from rbee_daemons import paths
from rbee_daemons.errors import DaemonError
from rbee_daemons.narration import narrate

START_TIMEOUT_SECONDS = 60.0
# The hive stops its workers (5 s grace each) before it exits.
STOP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class DaemonSpec:
    name: str
    module: str
    host: str
    port: int
    extra_args: tuple[str, ...] = ()
    # Extra environment for the daemon, e.g. RBEE_TOKEN: never on the command line.
    env: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        """Where the keeper checks `/health`: the wildcard bind is reached on loopback."""
        host = "127.0.0.1" if self.host == "0.0.0.0" else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return paths.run_dir() / f"{self.name}.pid"

    @property
    def output_file(self) -> Path:
        return paths.log_dir() / f"{self.name}.out"


def queen_spec(queen_url: str, bind: str | None = None, token: str | None = None) -> DaemonSpec:
    """The local queen at `queen_url`, bound to `bind` (default: the URL's host)."""
    parts = urlsplit(queen_url)
    host = bind or parts.hostname or "127.0.0.1"
    port = parts.port or 7833
    return DaemonSpec("queen", "rbee_daemons.queen", host, port,
                      ("--host", host, "--port", str(port)), _token_env(token))


def hive_spec(
    queen_url: str, host: str = "127.0.0.1", port: int | None = None, token: str | None = None
) -> DaemonSpec:
    port = port or int(os.environ.get("RBEE_HIVE_PORT", "7835"))
    return DaemonSpec("hive", "rbee_daemons.hive", host, port,
                      ("--host", host, "--port", str(port), "--queen-url", queen_url),
                      _token_env(token))


def _token_env(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("RBEE_TOKEN", token),) if token else ()


def is_healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def read_pid(spec: DaemonSpec) -> psutil.Process | None:
    """Return the daemon's process from its pid file, or None when it is not running.

    The pid file stores the process start time too, so a recycled pid is not mistaken for it.
    """
    try:
        record = json.loads(spec.pid_file.read_text(encoding="utf-8"))
        process = psutil.Process(int(record["pid"]))
        if abs(process.create_time() - float(record["create_time"])) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None


def start(spec: DaemonSpec) -> int:
    """Start the daemon detached, wait until `/health` answers, and return its pid."""
    narrate(
        f"keeper_{spec.name}_start",
        f"Starting {spec.name} on {spec.url}.",
        cute=f"🐝 Waking the {spec.name} up at {spec.url}!",
        story=f'"Time to get up," the keeper told the {spec.name}.',
        url=spec.url,
    )
    with spec.output_file.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", spec.module, *spec.extra_args],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, **dict(spec.env)},
        )
    record = {"pid": process.pid, "create_time": psutil.Process(process.pid).create_time(),
              "url": spec.url}
    spec.pid_file.write_text(json.dumps(record), encoding="utf-8")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if is_healthy(spec.url):
            return process.pid
        code = process.poll()
        if code is not None:
            spec.pid_file.unlink(missing_ok=True)
            raise DaemonError(
                f"The {spec.name} exited with code {code} while starting; its output: "
                f"{_tail(spec.output_file)}"
            )
        time.sleep(0.1)
    raise DaemonError(
        f"The {spec.name} did not answer at {spec.url} within {START_TIMEOUT_SECONDS:.0f} s; "
        f"see {spec.output_file}."
    )


def stop(spec: DaemonSpec) -> int | None:
    """Stop the daemon recorded in the pid file; return its pid, or None if none was running."""
    process = read_pid(spec)
    if process is None:
        spec.pid_file.unlink(missing_ok=True)
        return None
    pid: int = process.pid
    _signal_group(pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except psutil.TimeoutExpired:
        _signal_group(pid, signal.SIGKILL)
        process.wait(timeout=5)
    spec.pid_file.unlink(missing_ok=True)
    return pid


def _signal_group(pid: int, signum: int) -> None:
    """Signal the daemon's process group, or the daemon alone if it does not lead a group."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = 8) -> str:
    try:
        content = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no output"
    return " | ".join(content[-lines:]) or "no output"
