"""Relay capacity: synthetic tokens streamed directly and through the queen."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    Process,
    StreamTiming,
    free_port,
    isolated_env,
    median,
    percentile,
    python_module,
    timed_stream,
    wait_http,
)

MODEL = "synthetic-bench"
CONCURRENCY = (1, 16, 64, 256)
TOKENS_PER_STREAM = 100
INTERVAL_MS = 10.0


@dataclass
class RelayRun:
    tokens_per_second: float
    gap_p50_ms: float
    gap_p99_ms: float


class FakeHive:
    """Posts heartbeats that advertise `workers` entries, all served by the synthetic source."""

    def __init__(self, queen_url: str, worker_url: str, workers: int) -> None:
        self.url = f"{queen_url}/v1/hive-heartbeat"
        self.payload: dict[str, Any] = {
            "hive_id": "bench-hive", "url": "http://127.0.0.1:9", "version": "bench",
            "devices": {"ram": {"total_bytes": 16 * 10**9, "available_bytes": 16 * 10**9}},
            "models": [{"id": MODEL, "state": "available", "size": 1}],
            "workers": [{"worker_id": f"synthetic-{i}", "model": MODEL, "url": worker_url,
                         "state": "ready", "port": 0, "pid": 0} for i in range(workers)],
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                client.post(self.url, json=self.payload).raise_for_status()
                self._stop.wait(1.0)

    def __enter__(self) -> FakeHive:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def _run_streams(url: str, streams: int) -> RelayRun:
    limits = httpx.Limits(max_connections=streams + 8, max_keepalive_connections=streams + 8)
    body = {"model": MODEL, "prompt": "x", "max_tokens": TOKENS_PER_STREAM}
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        timings: list[StreamTiming] = await asyncio.gather(
            *(timed_stream(client, url, body) for _ in range(streams)))
        elapsed = time.perf_counter() - started
    tokens = sum(len(timing.token_times) for timing in timings)
    gaps = [gap for timing in timings for gap in timing.gaps()]
    return RelayRun(tokens / elapsed, percentile(gaps, 0.5) * 1000,
                    percentile(gaps, 0.99) * 1000)


def run(workdir: Path, repeats: int) -> list[dict[str, Any]]:
    """Return one row per concurrency: direct and relayed rates and the added latency."""
    queen_port, source_port = free_port(), free_port()
    queen_url = f"http://127.0.0.1:{queen_port}"
    source_url = f"http://127.0.0.1:{source_port}"
    env = isolated_env(workdir / "relay")
    rows = []
    with Process(python_module("bench.synthetic_worker", "--port", str(source_port),
                               "--interval-ms", str(INTERVAL_MS)), env,
                 workdir / "relay" / "source.log") as source, \
         Process(python_module("rbee_daemons.queen", "--port", str(queen_port),
                               "--queue-limit", "1000"), env,
                 workdir / "relay" / "queen.log") as queen:
        wait_http(f"{source_url}/health", process=source)
        wait_http(f"{queen_url}/health", process=queen)
        with FakeHive(queen_url, source_url, max(CONCURRENCY)):
            time.sleep(1.5)
            for streams in CONCURRENCY:
                direct = [asyncio.run(_run_streams(f"{source_url}/v1/completions", streams))
                          for _ in range(repeats)]
                relayed = [asyncio.run(_run_streams(f"{queen_url}/v1/completions", streams))
                           for _ in range(repeats)]
                rows.append(_row(streams, direct, relayed))
    return rows


def _row(streams: int, direct: list[RelayRun], relayed: list[RelayRun]) -> dict[str, Any]:
    direct_rate = median([run.tokens_per_second for run in direct])
    relayed_rate = median([run.tokens_per_second for run in relayed])
    return {
        "streams": streams,
        "direct_tps": direct_rate,
        "relayed_tps": relayed_rate,
        "relayed_tps_all": [run.tokens_per_second for run in relayed],
        "ratio": relayed_rate / direct_rate,
        "added_p50_ms": median([r.gap_p50_ms for r in relayed]) - median(
            [d.gap_p50_ms for d in direct]),
        "added_p99_ms": median([r.gap_p99_ms for r in relayed]) - median(
            [d.gap_p99_ms for d in direct]),
    }


if __name__ == "__main__":
    import sys
    import tempfile

    for row in run(Path(tempfile.mkdtemp()), int(sys.argv[1]) if len(sys.argv) > 1 else 1):
        print(row)
