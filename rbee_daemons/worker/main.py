"""Entry point of `llm-worker-rbee`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from rbee_daemons import events, narration
from rbee_daemons.auth import BearerAuthMiddleware
from rbee_daemons.daemon import check_bind, setup_logging
from rbee_daemons.errors import RbeeError
from rbee_daemons.narration import narrate
from rbee_daemons.redact import register_secret
from rbee_daemons.worker.app import Worker
from rbee_daemons.worker.engine import LlamaEngine
from rbee_daemons.worker.watchdog import watch_hive

logger = logging.getLogger("rbee_daemons.worker")

# The hive passes a network-mode worker its bearer token here; argv would show it in `ps`.
TOKEN_ENV = "RBEE_WORKER_TOKEN"

EXIT_USAGE = 2
EXIT_LOAD_FAILED = 3
# The port was taken between the hive's probe and this bind; the hive retries another port.
EXIT_PORT_IN_USE = 4
EXIT_ORPHANED = 5


def default_threads() -> int:
    """Threads for llama.cpp: $RBEE_WORKER_THREADS, else every core.

    llama-cpp-python's own default is half the cores, which leaves a 2-core machine at
    one thread for a single stream.
    """
    configured = os.environ.get("RBEE_WORKER_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return os.cpu_count() or 1


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
        "--threads", type=int, default=default_threads(),
        help="CPU threads for generation (default: $RBEE_WORKER_THREADS, else every core; "
        "%(default)s here).",
    )
    parser.add_argument(
        "--max-queue", type=int, default=8,
        help="Requests that may wait behind the running one before new ones get 429.",
    )
    parser.add_argument("--hive-url", default=None,
                        help="The hive to watch; without it the worker never exits by itself.")
    parser.add_argument("--hive-id", default=None, help="Id the hive's /health must report.")
    parser.add_argument(
        "--orphan-timeout", type=float, default=60.0,
        help="Seconds without an answer from the hive before the worker exits "
        "(default: %(default)s).",
    )
    return parser.parse_args(argv)


def print_narration(job_id: str, event: events.Event) -> None:
    """Write narration as JSON lines on stdout, where the hive reads the worker's start-up."""
    print(json.dumps(event, ensure_ascii=False), flush=True)


async def load_model(worker: Worker, server: uvicorn.Server, port: int) -> None:
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
        f"Loaded {model_name} in {seconds:.2f} s; ready on port {port}.",
        cute=f"🍯 {model_name} is loaded and warm, buzzing on port {port}!",
        story='"Loaded and warm," said the worker. "Send me your prompts."',
        model=model_name,
        load_seconds=round(seconds, 3),
        port=port,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen before loading the model, so a lost port race fails in milliseconds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    narration.set_actor("llm-worker-rbee")
    setup_logging(f"worker-{args.worker_id}", to_stderr=True)
    narration.add_listener(print_narration)
    token = os.environ.pop(TOKEN_ENV, None) or None
    register_secret(token)
    try:
        check_bind("llm-worker-rbee", args.host, token=token)
        listener = bind_socket(args.host, args.port)
    except RbeeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_PORT_IN_USE
    engine = LlamaEngine(args.model_path, n_ctx=args.ctx_size, n_threads=args.threads)
    worker = Worker(engine, worker_id=args.worker_id, model_id=args.model_id,
                    max_queue=args.max_queue)
    return run(worker, args, listener, token)


def run(worker: Worker, args: argparse.Namespace, listener: socket.socket,
        token: str | None) -> int:
    server: uvicorn.Server
    orphaned = False

    def exit_orphaned() -> None:
        nonlocal orphaned
        orphaned = True
        server.should_exit = True

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(load_model(worker, server, args.port))]
        if args.hive_url and args.hive_id:
            tasks.append(asyncio.create_task(
                watch_hive(args.hive_url, args.hive_id, args.orphan_timeout, exit_orphaned)))
        yield
        for task in tasks:
            task.cancel()
        worker.executor.shutdown(wait=False, cancel_futures=True)

    starlette_app = worker.app(token_required=bool(token))
    starlette_app.router.lifespan_context = lifespan
    app: ASGIApp = BearerAuthMiddleware(starlette_app, token) if token else starlette_app
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    server.run(sockets=[listener])
    if worker.load_error:
        return EXIT_LOAD_FAILED
    if orphaned:
        return EXIT_ORPHANED
    return 0 if server.started else 1
