"""The headless keeper as a user runs it: `rbee --no-tui ...` in a shell, from nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import free_port, isolated_env, wait_until, worker_pids

pytestmark = pytest.mark.e2e

PROMPT = "Once upon a time"


class Keeper:
    """Runs `rbee` with an isolated environment and its own daemon ports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = isolated_env(root)
        self.queen_url = f"http://127.0.0.1:{free_port()}"
        self.env["RBEE_QUEEN_URL"] = self.queen_url
        self.env["RBEE_HIVE_PORT"] = str(free_port())

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "rbee_tui", *args]

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def pid_file(self, name: str) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "rbee" / "run" / f"{name}.pid"


@pytest.fixture(scope="module")
def keeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keeper]:
    running = Keeper(tmp_path_factory.mktemp("keeper"))
    try:
        yield running
    finally:
        running.run("--no-tui", "hive", "stop")
        running.run("--no-tui", "queen", "stop")


def test_infer_from_nothing_starts_daemons(keeper: Keeper) -> None:
    result = keeper.run("--no-tui", "infer", "--max-tokens", "12", "--temperature", "0",
                        "--seed", "3", PROMPT)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "Starting queen" in result.stderr
    assert "Starting hive" in result.stderr
    for actor in ("queen-rbee", "rbee-hive", "llm-worker-rbee"):
        assert actor in result.stderr
    assert keeper.pid_file("queen").is_file()
    assert keeper.pid_file("hive").is_file()


def test_infer_prints_only_text_on_stdout(keeper: Keeper) -> None:
    result = keeper.run("--no-tui", "infer", "--max-tokens", "8", "--temperature", "0", PROMPT)

    assert result.returncode == 0, result.stderr
    assert "queen-rbee" not in result.stdout
    assert "queen_infer" in result.stderr


def test_infer_is_repeatable_with_temperature_zero(keeper: Keeper) -> None:
    args = ("--no-tui", "infer", "--max-tokens", "20", "--temperature", "0", "--seed", "11",
            PROMPT)
    first = keeper.run(*args)
    second = keeper.run(*args)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout.strip()
    assert first.stdout == second.stdout


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("human", "Scheduling an inference"), ("cute", "👑"), ("story", "asked the queen")],
)
def test_infer_narration_modes(keeper: Keeper, mode: str, expected: str) -> None:
    result = keeper.run("--no-tui", "--narration", mode, "infer", "--max-tokens", "4", PROMPT)

    assert result.returncode == 0, result.stderr
    assert expected in result.stderr


def test_infer_quiet_prints_no_narration(keeper: Keeper) -> None:
    result = keeper.run("--no-tui", "--quiet", "infer", "--max-tokens", "4", PROMPT)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip()


def test_infer_json_prints_result(keeper: Keeper) -> None:
    result = keeper.run("--no-tui", "--json", "--quiet", "infer", "--max-tokens", "4", PROMPT)

    data = json.loads(result.stdout)
    assert data["model"] == "gemma-3-270m"
    assert data["usage"]["completion_tokens"] >= 1


def test_infer_unknown_model_exits_1(keeper: Keeper) -> None:
    result = keeper.run("--no-tui", "infer", "--model", "missing-model", PROMPT)

    assert result.returncode == 1
    assert "error:" in result.stderr
    assert "missing-model" in result.stderr


def test_infer_invalid_value_exits_2(keeper: Keeper) -> None:
    result = keeper.run("--no-tui", "infer", "--temperature", "9", PROMPT)

    assert result.returncode == 2
    assert "temperature" in result.stderr


def test_status_lists_hive_worker_and_model(keeper: Keeper) -> None:
    result = keeper.run("--no-tui", "status")

    assert result.returncode == 0, result.stderr
    assert "HIVES" in result.stdout
    assert "online" in result.stdout
    assert "gemma-3-270m" in result.stdout
    assert "worker-" in result.stdout


def test_status_json(keeper: Keeper) -> None:
    result = keeper.run("--no-tui", "--json", "status")

    data = json.loads(result.stdout)
    assert data["hives"][0]["state"] == "online"
    assert data["models"][0]["id"] == "gemma-3-270m"


def test_ctrl_c_cancels_job_on_queen(keeper: Keeper) -> None:
    process = subprocess.Popen(
        keeper.command("--no-tui", "infer", "--max-tokens", "3000", "--temperature", "0.9",
                       "A very long story begins:"),
        env=keeper.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    first = process.stdout.read(1)
    assert first
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130
    assert b"cancelled job" in stderr
    jobs = httpx.get(f"{keeper.queen_url}/v1/jobs").json()["jobs"]
    infer_jobs = [job for job in jobs if job["operation"] == "infer"]

    def newest_cancelled() -> bool:
        newest = httpx.get(f"{keeper.queen_url}/v1/jobs").json()["jobs"][0]
        return bool(newest["state"] == "cancelled")

    assert infer_jobs
    wait_until(newest_cancelled, 10, "the interrupted job to show as cancelled")


def test_stop_leaves_no_daemon_or_worker(keeper: Keeper) -> None:
    queen_pid = json.loads(keeper.pid_file("queen").read_text())["pid"]
    hive_pid = json.loads(keeper.pid_file("hive").read_text())["pid"]
    assert worker_pids(keeper.root)

    hive = keeper.run("--no-tui", "hive", "stop")
    queen = keeper.run("--no-tui", "queen", "stop")

    assert hive.returncode == 0
    assert f"pid {hive_pid}" in hive.stderr
    assert queen.returncode == 0
    assert f"pid {queen_pid}" in queen.stderr
    assert worker_pids(keeper.root) == []
    assert not psutil.pid_exists(hive_pid) or psutil.Process(hive_pid).status() == "zombie"
    assert not keeper.pid_file("queen").exists()


def test_stop_when_nothing_runs_says_so(tmp_path: Path) -> None:
    keeper = Keeper(tmp_path)

    result = keeper.run("--no-tui", "queen", "stop")

    assert result.returncode == 0
    assert "No local queen is running" in result.stderr


def test_rbee_help_points_to_cli(tmp_path: Path) -> None:
    # Without arguments `rbee` opens the terminal app; its --help names the scriptable CLI.
    result = Keeper(tmp_path).run("--help")

    assert result.returncode == 0
    assert "rbee --no-tui --help" in result.stdout


def test_no_tui_help_lists_commands(tmp_path: Path) -> None:
    result = Keeper(tmp_path).run("--no-tui", "--help")

    assert result.returncode == 0
    for command in ("infer", "status", "queen", "hive"):
        assert command in result.stdout
