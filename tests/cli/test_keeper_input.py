"""The keeper's handling of bad input and hostile output, run in-process through `run()`.

Invalid values must exit 2 before any daemon starts, so `daemons.start` fails the test if
it is called. A fake queen on loopback sends events with terminal escape sequences.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest

from rbee_daemons.daemon import check_bind
from rbee_daemons.errors import ConfigError, DaemonError
from rbee_daemons.hive import main as hive_main
from rbee_daemons.queen import main as queen_main
from rbee_tui.cli import daemons, tables
from rbee_tui.cli.client import QueenClient
from rbee_tui.cli.keeper import Keeper
from rbee_tui.cli.main import build_parser, run
from tests.e2e.conftest import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ESCAPES = "\x1b[2J\x1b]0;PWNED\x07"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated XDG dirs, a queen URL where nothing listens, and no daemon start allowed."""
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    monkeypatch.setenv("RBEE_QUEEN_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("RBEE_HIVE_PORT", raising=False)
    monkeypatch.delenv("RBEE_TOKEN", raising=False)

    def fail_on_start(spec: daemons.DaemonSpec) -> int:
        raise AssertionError(f"the keeper started the {spec.name}")

    monkeypatch.setattr(daemons, "start", fail_on_start)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["infer", "--max-tokens", "0", "Hi"], {}, "--max-tokens should be greater than"),
        (["infer", "--max-tokens", "-5", "Hi"], {}, "--max-tokens should be greater than"),
        (["infer", "--max-tokens", "40000", "Hi"], {}, "--max-tokens should be less than"),
        (["infer", "--stop", "", "Hi"], {}, "--stop should have at least 1 character"),
        (["infer", "--seed", "-1", "Hi"], {}, "--seed should be greater than"),
        (["infer", "--model", "a/b", "Hi"], {}, "--model should match pattern"),
        (["infer", "abc\udcff\udcfe"], {}, "PROMPT contains bytes that are not valid UTF-8"),
        (["infer", "--model", "g\udcff", "Hi"], {}, "--model contains bytes that are not valid"),
        (["model", "get", "m\udcff"], {}, "ID contains bytes that are not valid UTF-8"),
        (["--queen-url", "127.0.0.1:27833", "status"], {},
         "--queen-url must start with http:// or https://, not '127.0.0.1:27833'; use e.g. "
         "http://127.0.0.1:27833."),
        (["--queen-url", "not a url", "status"], {}, "--queen-url must start with http://"),
        (["--queen-url", "ftp://127.0.0.1:27833", "status"], {}, "must use http or https"),
        (["--queen-url", "http://127.0.0.1:99999", "status"], {}, "--queen-url has an invalid"),
        (["--queen-url", "http://:7833", "status"], {}, "--queen-url has no host"),
        (["status"], {"RBEE_QUEEN_URL": "localhost:7833"}, "RBEE_QUEEN_URL must start with"),
        (["hive", "status"], {"RBEE_HIVE_PORT": "abc"}, "RBEE_HIVE_PORT must be a port number"),
        (["hive", "status"], {"RBEE_HIVE_PORT": "99999"}, "RBEE_HIVE_PORT must be a port"),
        (["infer", "Hi"], {"RBEE_HIVE_PORT": "0"}, "RBEE_HIVE_PORT must be a port number"),
    ],
)
def test_invalid_input_exits_2_before_start(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    argv: list[str], env: dict[str, str], expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    code = run(argv)

    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ")
    assert expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "NaN", "Infinity"])
def test_non_finite_temperature_is_usage_error(
    isolated: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        run(["infer", "--temperature", value, "Hi"])

    assert raised.value.code == 2
    assert "argument --temperature: must be a finite number" in capsys.readouterr().err


def test_unexpected_error_prints_one_line(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(self: Keeper) -> QueenClient:
        raise RuntimeError("boom \x1b[31m")

    monkeypatch.setattr(Keeper, "ensure_queen", broken)

    code = run(["status"])

    err = capsys.readouterr().err
    log = (isolated / "state" / "rbee" / "logs" / "keeper.log").read_text()
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("error: Internal error in the keeper: RuntimeError: boom \\x1b[31m")
    assert "keeper.log" in err
    assert "Traceback" not in err
    assert "Traceback" in log
    assert "RuntimeError: boom" in log


def test_hive_status_ignores_other_port_pid(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = daemons.hive_spec("http://127.0.0.1:7833", port=free_port())
    this = psutil.Process()
    other.pid_file.write_text(json.dumps({"pid": this.pid, "create_time": this.create_time(),
                                          "url": other.url}))
    monkeypatch.setenv("RBEE_HIVE_PORT", str(free_port()))

    code = run(["--json", "hive", "status"])

    state = json.loads(capsys.readouterr().out)
    assert code == 1
    assert state["pid"] is None


def test_status_table_tolerates_partial_ram() -> None:
    assert tables.ram({"ram": {"total_bytes": 8e9}}) == "-"
    assert tables.ram({"ram": "lots"}) == "-"
    assert tables.ram({"ram": {"available_bytes": 2e9, "total_bytes": 8e9}}) == "2.0/8.0 GB"


class FakeQueen(BaseHTTPRequestHandler):
    """A queen that runs every job as the class's `events`, sent as one SSE stream."""

    events: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok", "version": "0.0.0-test"})
        elif self.path == "/v1/hives":
            self._json(200, {"hives": [{"hive_id": "h1", "state": "online"}]})
        elif self.path.endswith("/stream"):
            lines = [f"id: {seq}\ndata: {json.dumps({**event, 'seq': seq})}\n\n"
                     for seq, event in enumerate(self.events, start=1)]
            body = "".join(lines).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._json(201, {"job_id": "job-1"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def fake_queen(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeQueen)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("RBEE_QUEEN_URL", url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["error", "cancelled"])
def test_job_messages_are_sanitized(
    fake_queen: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    monkeypatch.setattr(FakeQueen, "events", [
        {"type": kind, "message": f"Lost worker w{ESCAPES} on hive h1"},
    ])

    code = run(["infer", "Hi"])

    err = capsys.readouterr().err
    assert code == 1
    assert "\x1b" not in err
    assert "\x07" not in err
    assert f"{kind}: Lost worker w\\x1b[2J\\x1b]0;PWNED\\x07 on hive h1" in err


def test_result_text_is_sanitized(
    fake_queen: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(FakeQueen, "events", [
        {"type": "data", "data": {"id": "m", "note": f"x{ESCAPES}"}},
        {"type": "done"},
    ])

    code = run(["model", "get", "m"])

    out = capsys.readouterr().out
    assert code == 0
    assert "\x1b" not in out


def test_keeper_error_lines_are_sanitized(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(self: Keeper) -> QueenClient:
        raise DaemonError(f"The hive said {ESCAPES}")

    monkeypatch.setattr(Keeper, "ensure_queen", failing)

    code = run(["status"])

    err = capsys.readouterr().err
    assert code == 1
    assert "\x1b" not in err
    assert "The hive said \\x1b[2J" in err


def test_lost_stream_gives_up_soon_when_refused() -> None:
    with QueenClient(f"http://127.0.0.1:{free_port()}") as client:
        started = time.monotonic()
        with pytest.raises(DaemonError) as raised:
            list(client.follow("job-1"))
        elapsed = time.monotonic() - started

    assert elapsed < 4.0
    assert "refuses connections" in raised.value.message
    assert "`rbee --no-tui queen status`" in raised.value.message


NARRATION_AFTER_TEXT = """
import argparse
from rbee_tui.cli.keeper import Keeper, _JobOutput
from rbee_tui.cli.progress import ProgressView

args = argparse.Namespace(queen_url="http://127.0.0.1:1", narration="human", quiet=False,
                          json=False)
keeper = Keeper(args)
output = _JobOutput(keeper, ProgressView(enabled=False))
for event in [
    {"type": "token", "text": "I am new"},
    {"type": "narration", "actor": "llm-worker-rbee", "action": "worker_generate_done",
     "human": "Generated 3 tokens.", "ts": None},
    {"type": "token", "text": "line two"},
    {"type": "done"},
]:
    output.handle(event)
output.finish()
"""


def test_narration_after_text_starts_new_line() -> None:
    """On a terminal that carries both stdout and stderr, narration must not continue the
    line of streamed text."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-c", NARRATION_AFTER_TEXT], cwd=REPO_ROOT,
                               stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    screen = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
    finally:
        process.wait(timeout=30)
        os.close(controller)

    lines = screen.decode().replace("\r\n", "\n").split("\n")
    assert process.returncode == 0, screen
    assert lines[0] == "I am new"
    assert re.match(r"\d\d:\d\d:\d\d llm-worker-rbee", lines[1])
    assert lines[2] == "line two"


def test_bind_message_names_existing_options() -> None:
    with pytest.raises(ConfigError) as raised:
        check_bind("queen-rbee", "192.0.2.1", None)

    named = set(re.findall(r"--[a-z][a-z-]*", raised.value.message))
    assert named
    for parse_args in (queen_main.parse_args, hive_main.parse_args):
        assert named <= _options_of(parse_args)


def _options_of(parse_args: Any) -> set[str]:
    """The long options a daemon's `--help` lists."""
    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text), pytest.raises(SystemExit):
        parse_args(["--help"])
    return set(re.findall(r"--[a-z][a-z-]*", help_text.getvalue()))


def test_suggested_commands_exist() -> None:
    """Every "`rbee --no-tui ...`" in a message must parse as a command of this build."""
    suggestion = re.compile(r"`rbee --no-tui ([^`]+)`")
    found = []
    for root in ("rbee_tui", "rbee_daemons"):
        for path in (REPO_ROOT / root).rglob("*.py"):
            for line in path.read_text(encoding="utf-8").splitlines():
                if '"""' in line:
                    continue  # docstrings show usage patterns, not commands to run
                found += [(path.name, match.group(1)) for match in suggestion.finditer(line)]
    assert found
    parser = build_parser()
    for name, command in found:
        if command == "--help":
            continue  # argparse's own option; it prints help and exits
        # A placeholder in the first word names a daemon: `{spec.name} stop`.
        first = ["queen", "hive"] if command.startswith("{") else [command.split()[0]]
        for group in first:
            # `{...}` and upper-case words such as ID are placeholders for values.
            words = [group, *re.sub(r"\{[^}]*\}", "x", command).split()[1:]]
            words = ["x" if re.fullmatch(r"[A-Z_]+", word) else word for word in words]
            try:
                args = parser.parse_args(words)
            except SystemExit as exc:
                if exc.code == 0:
                    continue  # `--help` prints the usage and exits with 0
                pytest.fail(f"{name} suggests `rbee --no-tui {command}`, which does not parse")
            assert callable(args.handler)
