"""Unit tests of the keeper's SSH argv, failure messages, progress lines and parser."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from rbee_tui.cli import remote
from rbee_tui.cli.hives_conf import HiveHost
from rbee_tui.cli.main import build_parser
from rbee_tui.cli.progress import ProgressView

HOST = HiveHost(alias="box", hostname="10.0.0.5", user="alice", port=2222,
                identity_file="/keys/id")


def test_ssh_command_is_non_interactive_and_pinned() -> None:
    argv = remote.ssh_command(HOST, "true")

    joined = " ".join(argv)
    assert "BatchMode=yes" in joined
    assert f"ConnectTimeout={remote.CONNECT_TIMEOUT_SECONDS}" in joined
    assert "StrictHostKeyChecking=accept-new" in joined
    assert f"UserKnownHostsFile={remote.known_hosts_file()}" in joined
    assert argv[-3:] == ["--", "10.0.0.5", "true"]
    assert ["-p", "2222"] == argv[argv.index("-p"):argv.index("-p") + 2]
    assert ["-i", "/keys/id"] == argv[argv.index("-i"):argv.index("-i") + 2]


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("Host key verification failed.", "host key changed"),
        ("alice@10.0.0.5: Permission denied (publickey).", "SSH login refused"),
        ("ssh: connect to host 10.0.0.5 port 2222: Connection refused", "unreachable over SSH"),
        ("ssh: connect to host 10.0.0.5 port 2222: Connection timed out", "unreachable over SSH"),
        ("ssh: Could not resolve hostname nope: Name or service not known", "does not resolve"),
        ("something odd", "SSH failed: something odd"),
    ],
)
def test_explain_ssh_failure(stderr: str, expected: str) -> None:
    message = remote.explain_ssh_failure(HOST, stderr)

    assert message.startswith("Hive 'box' (alice@10.0.0.5 port 2222)")
    assert expected in message


def test_progress_plain_lines_when_not_a_tty() -> None:
    stream = io.StringIO()
    view = ProgressView(stream)

    view.update({"type": "progress", "fields": {"model": "m", "bytes_done": 50_000_000,
                                                "bytes_total": 100_000_000,
                                                "rate_bytes_per_second": 2e6,
                                                "eta_seconds": 25}})
    view.update({"type": "progress", "fields": {"model": "m", "bytes_done": 60_000_000,
                                                "bytes_total": 100_000_000}})
    view.update({"type": "progress", "fields": {"model": "m", "bytes_done": 100_000_000,
                                                "bytes_total": 100_000_000}})

    lines = stream.getvalue().splitlines()
    assert lines[0] == "m: 50.0 MB of 100.0 MB (50.0%), 2.0 MB/s, ETA 25 s"
    assert lines[-1] == "m: 100.0 MB of 100.0 MB (100.0%)"
    assert len(lines) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["status"], ["infer", "hi"], ["queen", "start"], ["queen", "stop"], ["queen", "status"],
        ["hive", "list"], ["hive", "install", "-a", "x"], ["hive", "uninstall", "-a", "x"],
        ["hive", "start"], ["hive", "stop", "-a", "x"], ["hive", "status"],
        ["model", "download", "hf:o/r:f.gguf"], ["model", "list", "--hive", "x"],
        ["model", "get", "m"], ["model", "delete", "m"], ["worker", "spawn", "--model", "m"],
        ["worker", "list"], ["worker", "stop", "w"], ["jobs", "list"], ["jobs", "show", "j"],
        ["jobs", "follow", "j"], ["jobs", "cancel", "j"], ["self-check"],
    ],
)
def test_parser_accepts_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)

    assert callable(args.handler)


def test_cli_does_not_import_textual() -> None:
    code = ("import sys; from rbee_tui.cli.main import run; "
            "from rbee_tui.cli import progress; assert 'textual' not in sys.modules")

    subprocess.run([sys.executable, "-c", code], check=True)
