"""Faults: killed and frozen processes, with real daemons and the real model."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.conftest import (
    STARTUP_TIMEOUT,
    Cluster,
    free_port,
    healthy,
    isolated_env,
    start_cluster,
    wait_until,
    worker_pids,
)
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.e2e

LONG = {"operation": "infer", "prompt": "Write a long story about bees.", "max_tokens": 3000,
        "temperature": 0.9}
POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="subscriber")
SHORT = {"operation": "infer", "prompt": "The sky is", "max_tokens": 4, "temperature": 0}


def subscribe(cluster: Cluster, job_id: str) -> Future[tuple[list[dict[str, Any]], str]]:
    """Keep one subscriber on the job, so its inference is not cancelled for lack of one."""
    return POOL.submit(cluster.stream, job_id)


def tokens_flow(cluster: Cluster, job_id: str) -> None:
    wait_until(lambda: sum(e["type"] == "token" for e in cluster.stream_so_far(job_id)) > 3,
               90, "tokens to flow")


def start_cluster_with_hive_args(root: Path, *hive_args: str) -> Cluster:
    """Like start_cluster, with extra arguments for the hive."""
    root.mkdir(parents=True, exist_ok=True)
    queen_port, hive_port = free_port(), free_port()
    cluster = Cluster(root, isolated_env(root), f"http://127.0.0.1:{queen_port}",
                      f"http://127.0.0.1:{hive_port}")
    cluster.start("rbee_daemons.queen", "--port", str(queen_port), log_name="queen")
    wait_until(lambda: healthy(cluster.queen_url), STARTUP_TIMEOUT, "the queen")
    cluster.start("rbee_daemons.hive", "--port", str(hive_port), "--queen-url",
                  cluster.queen_url, *hive_args, log_name="hive")
    wait_until(lambda: any(h["state"] == "online" for h in cluster.hives()), STARTUP_TIMEOUT,
               "the hive's first heartbeat")
    return cluster


def hive_state(cluster: Cluster) -> str:
    return str(cluster.hives()[0]["state"])


def test_worker_sigkill_mid_stream(tmp_path: Path, scenario: Scenario) -> None:
    """SIGKILL a worker mid-stream"""
    cluster = start_cluster(tmp_path / "c")
    try:
        cluster.run(SHORT)
        job_id = cluster.submit(LONG)
        subscriber = subscribe(cluster, job_id)
        tokens_flow(cluster, job_id)
        [pid] = worker_pids(cluster.root)
        scenario.did(f"Started an infer of 3000 tokens through the queen; after the first "
                     f"tokens, sent SIGKILL to the worker (pid {pid}).")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        found, marker = subscriber.result(timeout=120)
        ended_after = time.monotonic() - killed_at
        scenario.saw(f"The job ended {ended_after:.1f} s later with `{found[-1]['type']}`: "
                     f"{found[-1].get('message', '')!r}.")
        assert found[-1]["type"] == "error"
        assert marker.startswith("[ERROR]")
        # Sent at once, this infer may reach the dead worker first. The queen then waits for
        # the hive to restart that worker, so the infer neither fails nor starts a second one.
        _, after_marker = cluster.run(SHORT)
        after_pids = worker_pids(cluster.root)
        scenario.saw(f"An infer sent right after that ended with {after_marker}; worker "
                     f"processes now: {len(after_pids)} (the hive's restart of the killed one).")
        assert after_marker == "[DONE]"
        assert len(after_pids) == 1
        assert after_pids != [pid]
    finally:
        cluster.stop()
    assert worker_pids(cluster.root) == []


def test_hive_sigkill_mid_job(tmp_path: Path, scenario: Scenario) -> None:
    """SIGKILL a hive mid-job"""
    cluster = start_cluster_with_hive_args(tmp_path / "c", "--worker-orphan-timeout", "5")
    try:
        cluster.run(SHORT)
        job_id = cluster.submit(LONG)
        subscriber = subscribe(cluster, job_id)
        tokens_flow(cluster, job_id)
        hive = cluster.processes[1]
        scenario.did("Started a hive whose workers exit 5 s after losing it, started a "
                     "3000-token infer and sent SIGKILL to the hive after the first tokens.")
        killed_at = time.monotonic()
        os.kill(hive.pid, signal.SIGKILL)
        hive.wait(timeout=10)
        found, _ = subscriber.result(timeout=120)
        scenario.saw(f"The job ended {time.monotonic() - killed_at:.0f} s after the kill with "
                     f"`{found[-1]['type']}`: {found[-1].get('message', '')!r}.")
        assert found[-1]["type"] in ("done", "error")
        if found[-1]["type"] == "error":
            assert cluster.hives()[0]["hive_id"] in found[-1]["message"]
        wait_until(lambda: hive_state(cluster) == "offline", 30, "the hive to go offline")
        offline_after = time.monotonic() - killed_at
        wait_until(lambda: worker_pids(cluster.root) == [], 30, "the orphaned worker to exit")
        scenario.saw(f"The queen showed the hive offline {offline_after:.0f} s after the kill "
                     "(offline means no heartbeat for over 10 s) and the orphaned worker exited "
                     "by itself; no worker process was left.")
    finally:
        cluster.stop()


def test_queen_sigkill_mid_job(tmp_path: Path, scenario: Scenario) -> None:
    """SIGKILL the queen mid-job and restart it"""
    cluster = start_cluster(tmp_path / "c")
    try:
        cluster.run(SHORT)
        job_id = cluster.submit(LONG)
        subscriber = subscribe(cluster, job_id)
        tokens_flow(cluster, job_id)
        [worker] = worker_pids(cluster.root)
        queen = cluster.processes[0]
        scenario.did("Started a 3000-token infer, sent SIGKILL to the queen after the first "
                     "tokens, then started the queen again on the same port and data dir.")
        with httpx.Client(timeout=httpx.Timeout(10, read=60)) as client, client.stream(
                "GET", f"{cluster.queen_url}/v1/jobs/{job_id}/stream") as open_stream:
            os.kill(queen.pid, signal.SIGKILL)
            with pytest.raises(httpx.TransportError):
                for _ in open_stream.iter_lines():
                    pass
        queen.wait(timeout=10)
        with pytest.raises(httpx.TransportError):
            subscriber.result(timeout=60)
        cluster.restart_queen()
        wait_until(lambda: any(h["state"] == "online" for h in cluster.hives()), 20,
                   "the hive to re-register")
        summary = httpx.get(f"{cluster.queen_url}/v1/jobs/{job_id}", timeout=10).json()
        scenario.saw(f"The open stream broke with a transport error; after the restart the "
                     f"job reads `{summary['state']}`: {summary['error']!r}.")
        assert summary["state"] == "failed"
        assert "restarted" in summary["error"]
        _, marker = cluster.run(SHORT)
        assert marker == "[DONE]"
        assert worker_pids(cluster.root) == [worker]
        scenario.saw("The hive re-registered, the next infer ran on the same worker process, "
                     "and no second worker was started.")
    finally:
        cluster.stop()


def test_hive_sigstop_15_seconds(tmp_path: Path, scenario: Scenario) -> None:
    """SIGSTOP a hive for 15 s, then SIGCONT"""
    cluster = start_cluster(tmp_path / "c")
    try:
        _, marker = cluster.run(SHORT)
        assert marker == "[DONE]"
        job_id = cluster.submit(LONG)
        subscriber = subscribe(cluster, job_id)
        tokens_flow(cluster, job_id)
        hive = psutil.Process(cluster.processes[1].pid)
        scenario.did("Started a 3000-token infer, sent SIGSTOP to the hive (not its worker) "
                     "for 15 s, then SIGCONT.")
        hive.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            wait_until(lambda: hive_state(cluster) == "offline", 20, "the hive to go offline")
            found, _ = subscriber.result(timeout=120)
            time.sleep(max(0.0, 15 - (time.monotonic() - stopped_at)))
        finally:
            hive.send_signal(signal.SIGCONT)
        scenario.saw(f"The queen marked the hive offline; the running job ended with "
                     f"`{found[-1]['type']}`: {found[-1].get('message', '')!r}.")
        assert found[-1]["type"] in ("done", "error")
        if found[-1]["type"] == "error":
            assert "offline" in found[-1]["message"]
        wait_until(lambda: hive_state(cluster) == "online", 10, "the hive to come back")
        _, after = cluster.run(SHORT)
        scenario.saw(f"After SIGCONT the hive was online again within 10 s and the next "
                     f"infer ended with {after}; worker processes: "
                     f"{len(worker_pids(cluster.root))}.")
        assert after == "[DONE]"
        assert len(worker_pids(cluster.root)) == 1
    finally:
        cluster.stop()
    assert worker_pids(cluster.root) == []
