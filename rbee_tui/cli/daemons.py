"""Starting and stopping the local queen and hive, tracked by pid files in the state dir."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil

from rbee_daemons import paths
from rbee_daemons.errors import DaemonError
from rbee_daemons.narration import narrate
from rbee_tui.cli import validate

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 60.0
# The hive stops its workers (5 s grace each) before it exits.
STOP_TIMEOUT_SECONDS = 15.0
# A keeper waits this long for another keeper's start, which gives up after START_TIMEOUT.
LOCK_TIMEOUT_SECONDS = START_TIMEOUT_SECONDS + 20.0


@dataclass(frozen=True)
class DaemonSpec:
    name: str
    module: str
    host: str
    port: int
    # The program's own name and the setting that moves its port, for error messages.
    program: str
    port_setting: str
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
    """Describe the local queen at `queen_url`, bound to `bind` (default: the URL's host)."""
    parts = urlsplit(queen_url)
    host = bind or parts.hostname or "127.0.0.1"
    # The port the keeper's client connects to: without one in the URL, the scheme's default.
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return DaemonSpec("queen", "rbee_daemons.queen", host, port, "queen-rbee", "RBEE_QUEEN_URL",
                      ("--host", host, "--port", str(port)), _token_env(token))


def hive_spec(
    queen_url: str, host: str = "127.0.0.1", port: int | None = None, token: str | None = None,
    port_setting: str = validate.HIVE_PORT_ENV,
) -> DaemonSpec:
    """Describe the hive at `host:port`. `port` defaults to $RBEE_HIVE_PORT or 7835, and a
    variable that is not a port number raises ConfigError."""
    port = port or validate.hive_port()
    return DaemonSpec("hive", "rbee_daemons.hive", host, port, "rbee-hive", port_setting,
                      ("--host", host, "--port", str(port), "--queen-url", queen_url),
                      _token_env(token))


def _token_env(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("RBEE_TOKEN", token),) if token else ()


def health(url: str) -> dict[str, Any] | None:
    """Return the JSON object of a status-200 response to `url`'s `/health`, else None."""
    try:
        response = httpx.get(f"{url}/health", timeout=2.0)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def role(body: dict[str, Any]) -> str | None:
    """Name the rbee daemon ("queen" or "hive") whose `/health` returned `body`, else None.

    Both report `status: ok` and their `version`, and only the hive reports a `hive_id`.
    A worker reports its own states and no version, so it is neither.
    """
    if body.get("status") != "ok" or not isinstance(body.get("version"), str):
        return None
    return "hive" if isinstance(body.get("hive_id"), str) else "queen"


def answers_as(url: str, name: str) -> bool:
    """Check whether the `name` daemon ("queen" or "hive") responds to `/health` at `url`."""
    body = health(url)
    return body is not None and role(body) == name


def port_in_use(spec: DaemonSpec) -> bool:
    """Check whether any program accepts TCP connections on the daemon's port."""
    host = urlsplit(spec.url).hostname or "127.0.0.1"
    try:
        with socket.create_connection((host, spec.port), timeout=1.0):
            return True
    except OSError:
        return False


def port_taken_message(spec: DaemonSpec) -> str:
    return (f"Port {spec.port} is in use by a program that is not a {spec.program}; stop it "
            f"or set {spec.port_setting}.")


def _port_taken_reason(spec: DaemonSpec) -> str:
    """Explain a taken port: our own daemon that stopped responding, or another program."""
    ours = read_pid(spec, url=spec.url)
    if ours is None:
        return port_taken_message(spec)
    return (f"The {spec.name} (pid {ours.pid}) holds port {spec.port} but does not respond "
            f"/health at {spec.url}; stop it with `rbee --no-tui {spec.name} stop` and retry.")


def read_pid(spec: DaemonSpec, url: str | None = None) -> psutil.Process | None:
    """Return the daemon's process from its pid file, or None when it is not running.

    The pid file stores the process start time too, so a recycled pid is not mistaken for it.
    With `url`, a pid file written for a daemon at another URL counts as no daemon.
    """
    try:
        record = json.loads(spec.pid_file.read_text(encoding="utf-8"))
        if url is not None and record.get("url") != url:
            return None
        process = psutil.Process(int(record["pid"]))
        if abs(process.create_time() - float(record["create_time"])) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (OSError, ValueError, KeyError, TypeError, AttributeError, psutil.Error):
        return None


def start(spec: DaemonSpec) -> int | None:
    """Start the daemon detached and return its pid once it serves `/health` on its port.

    A lock file serialises starts, so keepers that start at the same time start one daemon.
    The pid file is written only for a process that responds. Returns None, and leaves the
    pid file alone, when a daemon of this kind already serves the port.
    Raises DaemonError when the port is taken by another program or the daemon fails.
    """
    with _start_lock(spec):
        if answers_as(spec.url, spec.name):
            return None
        if port_in_use(spec):
            raise DaemonError(_port_taken_reason(spec))
        narrate(
            f"keeper_{spec.name}_start",
            f"Starting {spec.name} on {spec.url}.",
            cute=f"🐝 Waking the {spec.name} up at {spec.url}!",
            story=f'"Time to get up," the keeper told the {spec.name}.',
            url=spec.url,
        )
        offset = _file_size(spec.output_file)
        with spec.output_file.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", spec.module, *spec.extra_args],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **dict(spec.env)},
            )
        try:
            return _wait_until_serving(spec, process, offset)
        except BaseException:
            _terminate(process)
            raise


def _wait_until_serving(spec: DaemonSpec, process: subprocess.Popen[bytes],
                        offset: int) -> int | None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            return _after_early_exit(spec, code, offset)
        # Another daemon may respond at the URL while ours is still binding or failing to.
        if _listens_on(process.pid, spec.port) and answers_as(spec.url, spec.name):
            _write_pid_file(spec, process)
            # The daemon outlives the keeper on purpose. Popen warns when it collects a child
            # whose exit it never saw, and a set return code stops that warning.
            process.returncode = 0
            return process.pid
        time.sleep(0.1)
    raise DaemonError(
        f"The {spec.name} did not respond at {spec.url} within {START_TIMEOUT_SECONDS:.0f} s, "
        f"so the keeper stopped it; see {spec.output_file}."
    )


def _after_early_exit(spec: DaemonSpec, code: int, offset: int) -> int | None:
    """Handle a daemon that exited before it responded: use a daemon of the same kind that
    serves the port instead (started outside this keeper), or raise DaemonError."""
    if answers_as(spec.url, spec.name):
        logger.info("The new %s exited with code %s; another %s already serves %s.",
                    spec.name, code, spec.name, spec.url)
        return None
    if port_in_use(spec):
        raise DaemonError(port_taken_message(spec))
    raise DaemonError(
        f"The {spec.name} exited with code {code} while starting; its output: "
        f"{_output_since(spec.output_file, offset)}"
    )


def _listens_on(pid: int, port: int) -> bool:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(connection.status == psutil.CONN_LISTEN and connection.laddr
               and connection.laddr.port == port for connection in connections)


def _write_pid_file(spec: DaemonSpec, process: subprocess.Popen[bytes]) -> None:
    record = {"pid": process.pid, "create_time": psutil.Process(process.pid).create_time(),
              "url": spec.url}
    # Write and rename, so a concurrent reader never sees a half-written file.
    partial = spec.pid_file.with_suffix(".pid.tmp")
    partial.write_text(json.dumps(record), encoding="utf-8")
    partial.replace(spec.pid_file)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a daemon that never responded, so no untracked process stays behind."""
    if process.poll() is not None:
        return
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextmanager
def _start_lock(spec: DaemonSpec) -> Iterator[None]:
    """Hold an exclusive flock on `<run dir>/<name>.lock`; the kernel drops it if we die."""
    path = paths.run_dir() / f"{spec.name}.lock"
    with path.open("a") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DaemonError(
                        f"Another keeper has been starting the {spec.name} for more than "
                        f"{LOCK_TIMEOUT_SECONDS:.0f} s (it holds {path}); see "
                        f"{spec.output_file}."
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _output_since(path: Path, offset: int, lines: int = 8) -> str:
    """Return the last `lines` lines the daemon wrote after `offset`, joined with ` | `."""
    try:
        with path.open("rb") as output:
            output.seek(offset)
            content = output.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return "no output"
    return " | ".join(content[-lines:]) or "no output"
