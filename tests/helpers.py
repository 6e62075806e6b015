"""Test helpers: run an ASGI app under a real uvicorn server, and parse SSE bodies by hand."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

LOOPBACK = "127.0.0.1"


@contextmanager
def serve_app_in_thread(app: Any, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port and yield its base URL.

    The server runs with its own event loop in a daemon thread. The port is bound here
    before uvicorn starts, so no other process can take it between picking and binding.
    On exit the server is asked to stop and the thread is joined.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [listener]},
        name=f"uvicorn-test-{port}",
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn exited before it started serving on port {port}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {port} in {startup_timeout} s")
            time.sleep(0.01)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@dataclass
class SseMessage:
    """One dispatched SSE message: its `id:`, `event:` and joined `data:` lines."""

    id: str | None
    event: str | None
    data: str


def parse_sse_body(body: str) -> tuple[list[SseMessage], int]:
    """Split a complete SSE body into messages and count its `:` comment lines.

    Unlike a browser's EventSource, a message without an `id:` line gets `id=None` here
    instead of inheriting the previous id, so tests can check which frames carry an id.
    Lines end in LF, CR or CRLF, as the SSE format allows.
    """
    messages: list[SseMessage] = []
    comments = 0
    event_id: str | None = None
    event_name: str | None = None
    data_lines: list[str] = []
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data_lines:
                messages.append(SseMessage(event_id, event_name, "\n".join(data_lines)))
            event_id, event_name, data_lines = None, None, []
            continue
        if line.startswith(":"):
            comments += 1
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event_name = value
        elif name == "data":
            data_lines.append(value)
    return messages, comments
