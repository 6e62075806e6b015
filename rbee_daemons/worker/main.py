"""Entry point of `llm-worker-rbee`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from rbee_daemons import events, narration
from rbee_daemons.daemon import check_bind, setup_logging
from rbee_daemons.errors import RbeeError
from rbee_daemons.narration import narrate
from rbee_daemons.worker.app import Worker
from rbee_daemons.worker.engine import LlamaEngine

logger = logging.getLogger("rbee_daemons.worker")

EXIT_LOAD_FAILED = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="llm-worker-rbee", description="Serve one GGUF model over HTTP (started by a hive)."
    )
    parser.add_argument("--model-path", required=True, type=Path, help="GGUF file to load.")
    parser.add_argument("--model-id", required=True, help="Model id reported to clients.")
    parser.add_argument("--worker-id", required=True, help="Id the hive gave this worker.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to bind (default: %(default)s)."
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port to bind.")
    parser.add_argument("--ctx-size", type=int, default=4096, help="Context size in tokens.")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for generation (default: all)."
    )
    parser.add_argument(
        "--max-queue", type=int, default=8,
        help="Requests that may wait behind the running one before new ones get 429.",
    )
    return parser.parse_args(argv)


def print_narration(job_id: str, event: events.Event) -> None:
    """Write narration as JSON lines on stdout, where the hive reads the worker's start-up."""
    print(json.dumps(event, ensure_ascii=False), flush=True)


async def load_model(worker: Worker, server: uvicorn.Server) -> None:
    model_name = worker.model_id
    narrate(
        "worker_load",
        f"Loading {model_name} from {worker.engine.model_path}.",
        cute=f"🐝 Waking up and loading {model_name}...",
        story=f'"Let me read {model_name} first," said the worker, opening the book.',
        model=model_name,
    )
    started = time.perf_counter()
    try:
        await asyncio.to_thread(worker.engine.load)
    except RbeeError as exc:
        worker.load_error = exc.message
        narrate(
            "worker_load_failed",
            f"Failed to load {model_name}: {exc.message}",
            cute=f"😵 Oh no, {model_name} would not load!",
            story=f'"I cannot read this," sighed the worker. "{exc.message}"',
            level="error",
            model=model_name,
        )
        server.should_exit = True
        return
    seconds = time.perf_counter() - started
    narrate(
        "worker_ready",
        f"Loaded {model_name} in {seconds:.2f} s; ready on port {server.config.port}.",
        cute=f"🍯 {model_name} is loaded and warm, buzzing on port {server.config.port}!",
        story='"Loaded and warm," said the worker. "Send me your prompts."',
        model=model_name,
        load_seconds=round(seconds, 3),
        port=server.config.port,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    narration.set_actor("llm-worker-rbee")
    setup_logging(f"worker-{args.worker_id}", to_stderr=True)
    narration.add_listener(print_narration)
    try:
        check_bind("llm-worker-rbee", args.host, token=None)
    except RbeeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    engine = LlamaEngine(args.model_path, n_ctx=args.ctx_size, n_threads=args.threads)
    worker = Worker(engine, worker_id=args.worker_id, model_id=args.model_id,
                    max_queue=args.max_queue)
    server: uvicorn.Server

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(load_model(worker, server))
        yield
        task.cancel()
        worker.executor.shutdown(wait=False, cancel_futures=True)

    app = worker.app()
    app.router.lifespan_context = lifespan
    config = uvicorn.Config(app, host=args.host, port=args.port, log_config=None,
                            access_log=False, lifespan="on", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    server.run()
    if worker.load_error:
        return EXIT_LOAD_FAILED
    if not server.started:
        return 1
    return 0
