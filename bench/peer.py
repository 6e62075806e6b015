"""The peer on the same library: llama-cpp-python's own OpenAI server against rbee's queen."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    Process,
    free_port,
    isolated_env,
    median,
    python_module,
    spread,
    timed_stream,
    wait_http,
)
from bench.stack import MAX_TOKENS, MODEL, PROMPT, THREADS, prepare_model

CONCURRENT_STREAMS = 4


async def _aggregate(url: str, streams: int) -> float:
    """Tokens per second over all streams, from the first request to the last token."""
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}
    async with httpx.AsyncClient(timeout=600) as client:
        started = time.perf_counter()
        timings = await asyncio.gather(*(timed_stream(client, url, body) for _ in range(streams)))
    tokens = sum(len(timing.token_times) for timing in timings)
    return tokens / (time.perf_counter() - started)


def _measure(url: str, repeats: int) -> dict[str, Any]:
    asyncio.run(_aggregate(url, 1))  # warm-up
    single = [asyncio.run(_aggregate(url, 1)) for _ in range(repeats)]
    concurrent = [asyncio.run(_aggregate(url, CONCURRENT_STREAMS)) for _ in range(repeats)]
    return {"single_tps": median(single), "single_spread": spread(single),
            "concurrent_tps": median(concurrent), "concurrent_spread": spread(concurrent)}


def run(workdir: Path, repeats: int) -> dict[str, Any]:
    model_path = prepare_model(workdir)
    env = isolated_env(workdir / "peer", RBEE_WORKER_THREADS=str(THREADS))
    port = free_port()
    with Process(python_module("llama_cpp.server", "--model", str(model_path), "--model_alias",
                               MODEL, "--n_threads", str(THREADS), "--n_ctx", "4096",
                               "--host", "127.0.0.1", "--port", str(port)), env,
                 workdir / "peer" / "llama_cpp_server.log") as server:
        wait_http(f"http://127.0.0.1:{port}/v1/models", process=server)
        peer = _measure(f"http://127.0.0.1:{port}/v1/completions", repeats)
    queen_port, hive_port = free_port(), free_port()
    queen_url = f"http://127.0.0.1:{queen_port}"
    with Process(python_module("rbee_daemons.queen", "--port", str(queen_port)), env,
                 workdir / "peer" / "queen.log") as queen, \
         Process(python_module("rbee_daemons.hive", "--port", str(hive_port), "--queen-url",
                               queen_url), env, workdir / "peer" / "hive.log") as hive:
        wait_http(f"{queen_url}/health", process=queen)
        wait_http(f"http://127.0.0.1:{hive_port}/health", process=hive)
        time.sleep(2)
        rbee = _measure(f"{queen_url}/v1/completions", repeats)
    return {"llama_cpp_server": peer, "rbee_queen": rbee}
