"""Starting local daemons: pid files, races between keepers, ports taken by other programs.

A stand-in daemon (`tests.cli.fake_daemon`) plays the queen, so these tests start real
processes on loopback ports without loading a model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from rbee_daemons.errors import DaemonError
from rbee_tui.cli import daemons
from rbee_tui.cli.client import QueenClient
from tests.e2e.conftest import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    return tmp_path / "state"


def fake_spec(port: int, *extra: str) -> daemons.DaemonSpec:
    return daemons.DaemonSpec("queen", "tests.cli.fake_daemon", "127.0.0.1", port, "queen-rbee",
                              "RBEE_QUEEN_URL", ("--port", str(port), *extra))


def fake_daemon_pids(port: int) -> list[int]:
    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "tests.cli.fake_daemon" in cmdline and str(port) in cmdline:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    pids.append(process.info["pid"])
            except psutil.Error:
                continue
    return pids


def listening_pid(port: int) -> int | None:
    for pid in fake_daemon_pids(port):
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
                return pid
    return None


def kill_fake_daemons(port: int) -> None:
    for pid in fake_daemon_pids(port):
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            continue


@pytest.fixture
def port() -> Iterator[int]:
    chosen = free_port()
    try:
        yield chosen
    finally:
        kill_fake_daemons(chosen)


class OtherProgram(BaseHTTPRequestHandler):
    """A web server that is not an rbee daemon; `/health` returns the class's body."""

    status_code = 404
    body = b"not found"

    def do_GET(self) -> None:
        self.send_response(self.status_code)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        return


class PlainOk(OtherProgram):
    status_code = 200
    body = b'{"status": "ok"}'


@pytest.fixture
def other_program(port: int, request: pytest.FixtureRequest) -> Iterator[None]:
    handler = getattr(request, "param", OtherProgram)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_start_writes_pid_of_serving_process(state_dir: Path, port: int) -> None:
    spec = fake_spec(port)

    pid = daemons.start(spec)

    assert pid is not None
    assert pid == listening_pid(port)
    assert json.loads(spec.pid_file.read_text())["pid"] == pid
    assert daemons.stop(spec) == pid
    assert fake_daemon_pids(port) == []


def test_start_uses_daemon_already_serving(state_dir: Path, port: int) -> None:
    first = fake_spec(port)
    serving = daemons.start(first)
    record = first.pid_file.read_text()

    again = daemons.start(fake_spec(port))

    assert again is None
    assert first.pid_file.read_text() == record
    assert fake_daemon_pids(port) == [serving]
    assert daemons.stop(first) == serving


def test_start_after_losing_race_keeps_pid_file(
    state_dir: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulate a daemon that a keeper without the lock starts between this keeper's check and
    its spawn. The new process exits, so the keeper uses that daemon and keeps its pid file."""
    outside = subprocess.Popen([sys.executable, "-m", "tests.cli.fake_daemon", "--port",
                                str(port)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    try:
        checks = iter([False])
        real_answers_as = daemons.answers_as
        monkeypatch.setattr(daemons, "answers_as",
                            lambda url, name: next(checks, None) or real_answers_as(url, name))
        monkeypatch.setattr(daemons, "port_in_use", lambda spec: False)
        spec = fake_spec(port, "--bind-delay", "0.5")

        result = daemons.start(spec)

        assert result is None
        assert not spec.pid_file.exists()
        assert fake_daemon_pids(port) == [outside.pid]
    finally:
        outside.kill()
        outside.wait()


def test_concurrent_starts_start_one_daemon(state_dir: Path, port: int) -> None:
    script = (
        "import sys; from rbee_tui.cli import daemons; "
        f"spec = daemons.DaemonSpec('queen', 'tests.cli.fake_daemon', '127.0.0.1', {port}, "
        f"'queen-rbee', 'RBEE_QUEEN_URL', ('--port', '{port}', '--bind-delay', '0.5')); "
        "print(daemons.start(spec))"
    )
    keepers = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    results = [keeper.communicate(timeout=60) for keeper in keepers]

    assert [keeper.returncode for keeper in keepers] == [0, 0, 0], results
    serving = listening_pid(port)
    assert fake_daemon_pids(port) == [serving]
    assert json.loads(fake_spec(port).pid_file.read_text())["pid"] == serving
    assert daemons.stop(fake_spec(port)) == serving


def test_start_rejects_port_of_other_program(
    state_dir: Path, port: int, other_program: None
) -> None:
    spec = fake_spec(port)

    with pytest.raises(DaemonError) as raised:
        daemons.start(spec)

    assert raised.value.message == (f"Port {port} is in use by a program that is not a "
                                    "queen-rbee; stop it or set RBEE_QUEEN_URL.")
    assert fake_daemon_pids(port) == []
    assert not spec.pid_file.exists()


@pytest.mark.parametrize("other_program", [PlainOk], indirect=True)
def test_plain_ok_health_is_not_a_queen(state_dir: Path, port: int, other_program: None) -> None:
    url = f"http://127.0.0.1:{port}"

    with QueenClient(url) as client:
        assert not client.is_healthy()
    assert not daemons.answers_as(url, "queen")
    with pytest.raises(DaemonError, match="not a queen-rbee"):
        daemons.start(fake_spec(port))


def test_start_failure_shows_only_new_output(state_dir: Path, port: int) -> None:
    spec = fake_spec(port, "--fail-with", "5")
    spec.output_file.write_text("old line from an earlier run\n")

    with pytest.raises(DaemonError) as raised:
        daemons.start(spec)

    assert "exited with code 5" in raised.value.message
    assert "fake daemon failed on purpose" in raised.value.message
    assert "earlier run" not in raised.value.message
    assert not spec.pid_file.exists()


def test_read_pid_ignores_record_for_other_url(state_dir: Path) -> None:
    spec = fake_spec(7835)
    this = psutil.Process()
    spec.pid_file.write_text(json.dumps({"pid": this.pid, "create_time": this.create_time(),
                                         "url": "http://127.0.0.1:27835"}))

    assert daemons.read_pid(spec) is not None
    assert daemons.read_pid(spec, url="http://127.0.0.1:27835") is not None
    assert daemons.read_pid(spec, url=spec.url) is None
