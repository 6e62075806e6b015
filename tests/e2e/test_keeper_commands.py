"""`jobs`, `model`, `worker` and `self-check` against a running queen and hive."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e


def keeper(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env, "RBEE_QUEEN_URL": cluster.queen_url}
    return subprocess.run([sys.executable, "-m", "rbee_tui", "--no-tui", *args], env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def test_jobs_list_show_follow(cluster: Cluster) -> None:
    assert keeper(cluster, "status").returncode == 0

    listed = keeper(cluster, "--json", "jobs", "list")
    job_id = json.loads(listed.stdout)[0]["job_id"]
    shown = keeper(cluster, "--json", "jobs", "show", job_id)
    followed = keeper(cluster, "jobs", "follow", job_id)
    text = keeper(cluster, "jobs", "list")

    assert json.loads(shown.stdout)["state"] == "completed"
    assert followed.returncode == 0, followed.stderr
    assert "queen_status" in followed.stderr
    assert job_id in text.stdout


def test_jobs_cancel_unknown_exits_1(cluster: Cluster) -> None:
    result = keeper(cluster, "jobs", "cancel", "job-does-not-exist")

    assert result.returncode == 1
    assert "job-does-not-exist" in result.stderr


def test_model_list_text_and_json(cluster: Cluster) -> None:
    text = keeper(cluster, "model", "list")
    data = keeper(cluster, "--json", "model", "list")

    assert text.returncode == 0, text.stderr
    assert "gemma-3-270m" in text.stdout
    assert data.returncode == 0, data.stderr
    assert "gemma-3-270m" in json.dumps(json.loads(data.stdout))


def test_worker_list_exits_0(cluster: Cluster) -> None:
    result = keeper(cluster, "worker", "list")

    assert result.returncode == 0, result.stderr


def test_self_check_narrates_each_mode(cluster: Cluster) -> None:
    result = keeper(cluster, "self-check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is checking the cluster" in result.stderr
    assert "🐝" in result.stderr
    assert "asked the keeper" in result.stderr
    assert "queen" in result.stdout


def test_self_check_without_queen_exits_1(tmp_path: Path) -> None:
    from tests.e2e.conftest import free_port, isolated_env

    env = {**isolated_env(tmp_path), "RBEE_QUEEN_URL": f"http://127.0.0.1:{free_port()}"}
    result = subprocess.run([sys.executable, "-m", "rbee_tui", "--no-tui", "--json",
                             "self-check"], env=env, capture_output=True, text=True, timeout=60)

    checks = {row["check"]: row["ok"] for row in json.loads(result.stdout)}
    assert result.returncode == 1
    assert checks["queen"] is False
    assert checks["hives.conf"] is True
