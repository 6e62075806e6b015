"""Stack overhead on the real model, and worker cold start against a bare load."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    Process,
    StreamTiming,
    free_port,
    isolated_env,
    median,
    python_module,
    spread,
    timed_stream,
    wait_http,
)
from rbee_daemons.hive import default_model

PROMPT = "Write a short story about a bee who learns to fly:"
MAX_TOKENS = 128
THREADS = 2
MODEL = "gemma-3-270m"


def prepare_model(workdir: Path) -> Path:
    target = workdir / "model" / default_model.FILE_NAME
    if not target.is_file():
        default_model.assemble(target)
    return target


def in_process(model_path: Path, repeats: int) -> tuple[list[StreamTiming], list[float]]:
    """(a) llama-cpp-python in this process; also returns the bare load times."""
    from llama_cpp import Llama

    loads = []
    for _ in range(repeats):
        started = time.perf_counter()
        llama = Llama(model_path=str(model_path), n_ctx=4096, n_threads=THREADS, verbose=False)
        loads.append(time.perf_counter() - started)
        del llama
    llama = Llama(model_path=str(model_path), n_ctx=4096, n_threads=THREADS, verbose=False)
    timings = []
    for _ in range(repeats + 1):
        timing = StreamTiming(time.perf_counter())
        for chunk in llama.create_completion(PROMPT, max_tokens=MAX_TOKENS, temperature=0,
                                             stream=True):
            if chunk["choices"][0]["text"]:
                timing.token_times.append(time.perf_counter())
        timings.append(timing)
    return timings[1:], loads


def over_http(url: str, repeats: int) -> list[StreamTiming]:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}

    async def measure() -> list[StreamTiming]:
        async with httpx.AsyncClient(timeout=300) as client:
            await timed_stream(client, url, body)  # warm-up
            return [await timed_stream(client, url, body) for _ in range(repeats)]

    return asyncio.run(measure())


def through_cli(queen_url: str, env: dict[str, str], repeats: int) -> list[StreamTiming]:
    """(d) `rbee --no-tui infer`: time to first byte and byte arrival on stdout."""
    timings = []
    command = [sys.executable, "-m", "rbee_tui", "--no-tui", "--quiet", "--queen-url",
               queen_url, "infer", "--max-tokens", str(MAX_TOKENS), "--temperature", "0",
               PROMPT]
    for _ in range(repeats):
        timing = StreamTiming(time.perf_counter())
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert process.stdout is not None
        while chunk := os.read(process.stdout.fileno(), 4096):
            if chunk.strip():
                timing.token_times.append(time.perf_counter())
        process.wait()
        timings.append(timing)
    return timings


def worker_cold_start(hive_url: str, repeats: int) -> list[float]:
    """Seconds from a `worker_spawn` request to the hive's answer that the worker is ready."""
    seconds = []
    with httpx.Client(timeout=300) as client:
        for _ in range(repeats):
            started = time.perf_counter()
            job = client.post(f"{hive_url}/v1/jobs",
                              json={"operation": "worker_spawn", "model": MODEL}).json()
            worker = _result_of(client, f"{hive_url}/v1/jobs/{job['job_id']}/stream")
            seconds.append(time.perf_counter() - started)
            stop = client.post(f"{hive_url}/v1/jobs",
                               json={"operation": "worker_stop", "id": worker["worker_id"]})
            _result_of(client, f"{hive_url}/v1/jobs/{stop.json()['job_id']}/stream")
    return seconds


def _result_of(client: httpx.Client, stream_url: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with client.stream("GET", stream_url) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                if event["type"] == "data":
                    result = event["data"]
                if event["type"] == "error":
                    raise RuntimeError(event["message"])
    return result


def summarize(name: str, timings: list[StreamTiming]) -> dict[str, Any]:
    ttfts = [t.ttft * 1000 for t in timings]
    rates = [t.decode_rate for t in timings]
    return {"path": name, "ttft_ms": median(ttfts), "ttft_spread": spread(ttfts),
            "decode_tps": median(rates), "decode_spread": spread(rates)}


def run(workdir: Path, repeats: int) -> dict[str, Any]:
    model_path = prepare_model(workdir)
    direct, loads = in_process(model_path, repeats)
    rows = [summarize("(a) llama-cpp-python in-process", direct)]
    env = isolated_env(workdir / "stack", RBEE_WORKER_THREADS=str(THREADS))
    worker_port, queen_port, hive_port = free_port(), free_port(), free_port()
    queen_url = f"http://127.0.0.1:{queen_port}"
    hive_url = f"http://127.0.0.1:{hive_port}"
    logs = workdir / "stack"
    with Process(python_module("rbee_daemons.worker", "--model-path", str(model_path),
                               "--model-id", MODEL, "--worker-id", "bench-worker", "--port",
                               str(worker_port), "--threads", str(THREADS)), env,
                 logs / "worker.log") as worker:
        wait_http(f"http://127.0.0.1:{worker_port}/health", process=worker)
        rows.append(summarize("(b) worker HTTP API",
                              over_http(f"http://127.0.0.1:{worker_port}/v1/completions",
                                        repeats)))
    with Process(python_module("rbee_daemons.queen", "--port", str(queen_port)), env,
                 logs / "queen.log") as queen, \
         Process(python_module("rbee_daemons.hive", "--port", str(hive_port), "--queen-url",
                               queen_url), env, logs / "hive.log") as hive:
        wait_http(f"{queen_url}/health", process=queen)
        wait_http(f"{hive_url}/health", process=hive)
        cold = worker_cold_start(hive_url, repeats)
        time.sleep(2)
        rows.append(summarize("(c) queen /v1/completions",
                              over_http(f"{queen_url}/v1/completions", repeats)))
        rows.append(summarize("(d) rbee --no-tui infer", through_cli(queen_url, env, repeats)))
    return {"rows": rows, "bare_load_s": loads, "cold_start_s": cold}
