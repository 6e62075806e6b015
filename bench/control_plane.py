"""Control plane at scale: simulated hives posting heartbeats to one queen."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil

from bench.common import Process, free_port, isolated_env, percentile, python_module, wait_http

HIVE_COUNTS = (100, 1000)
WORKERS_PER_HIVE = 4
MEASURE_SECONDS = 10.0
SAMPLES = 50


def heartbeat(index: int) -> dict[str, Any]:
    hive_id = f"sim-hive-{index:04d}"
    return {
        "hive_id": hive_id, "url": f"http://127.0.0.1:{20000 + index}", "version": "bench",
        "devices": {"cpu": {"cores": 8, "load_1m": 0.5},
                    "ram": {"total_bytes": 32 * 10**9, "available_bytes": 16 * 10**9},
                    "gpus": []},
        "models": [{"id": f"model-{index % 10}", "state": "available", "size": 10**9}],
        "workers": [{"worker_id": f"{hive_id}-w{n}", "model": f"model-{index % 10}",
                     "url": f"http://127.0.0.1:{30000 + n}", "state": "ready", "port": 30000 + n,
                     "pid": 1000 + n, "in_flight": 0} for n in range(WORKERS_PER_HIVE)],
    }


async def _send_heartbeats(url: str, hives: int, stop: asyncio.Event, sent: list[int]) -> None:
    """Each simulated hive posts once a second, spread evenly over the second.

    The generator uses aiohttp with bodies serialised once: with httpx it could not reach
    1,000 posts a second on this machine's 2 cores beside the queen.
    """
    bodies = [json.dumps(heartbeat(index)).encode() for index in range(hives)]
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(body: bytes) -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

        while not stop.is_set():
            tick = time.perf_counter()
            for start in range(0, hives, 50):
                batch = bodies[start:start + 50]
                await asyncio.gather(*(post(body) for body in batch))
                sent[0] += len(batch)
                await asyncio.sleep(max(0.0, (start + 50) / hives - (time.perf_counter() - tick)))
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))


async def _latencies(queen_url: str) -> dict[str, list[float]]:
    models: list[float] = []
    status: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(SAMPLES):
            started = time.perf_counter()
            (await client.get(f"{queen_url}/v1/models")).raise_for_status()
            models.append(time.perf_counter() - started)
            started = time.perf_counter()
            job = (await client.post(f"{queen_url}/v1/jobs", json={"operation": "status"})).json()
            async with client.stream("GET", f"{queen_url}{job['sse_url']}") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: [DONE]"):
                        break
            status.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)
    return {"models": models, "status": status}


async def _measure(queen_url: str, pid: int, hives: int) -> dict[str, Any]:
    stop = asyncio.Event()
    sent = [0]
    sender = asyncio.create_task(
        _send_heartbeats(f"{queen_url}/v1/hive-heartbeat", hives, stop, sent))
    await asyncio.sleep(3)  # every hive registered
    process = psutil.Process(pid)
    before = process.cpu_times()
    sent_before = sent[0]
    started = time.perf_counter()
    latencies = await _latencies(queen_url)
    remaining = MEASURE_SECONDS - (time.perf_counter() - started)
    await asyncio.sleep(max(remaining, 0.0))
    after = process.cpu_times()
    elapsed = time.perf_counter() - started
    stop.set()
    await sender
    cpu = (after.user + after.system - before.user - before.system) / elapsed
    return {"hives": hives, "queen_cpu_cores": cpu,
            "heartbeats_per_second": (sent[0] - sent_before) / elapsed,
            "models_p95_ms": percentile(latencies["models"], 0.95) * 1000,
            "status_p95_ms": percentile(latencies["status"], 0.95) * 1000}


def run(workdir: Path, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for hives in HIVE_COUNTS:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with Process(python_module("rbee_daemons.queen", "--port", str(port)),
                     isolated_env(workdir / f"control-{hives}"),
                     workdir / f"control-{hives}" / "queen.log") as queen:
            wait_http(f"{url}/health", process=queen)
            rows.append(asyncio.run(_measure(url, queen.pid, hives)))
    return rows
