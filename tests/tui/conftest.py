"""Fixtures for the TUI's pilot tests: a real queen and hive, and isolated XDG dirs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster, start_cluster
from tests.hive.fake_hub import FakeHub, _handler

XDG_NAMES = ("CONFIG", "DATA", "STATE", "CACHE")


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this process's XDG dirs at `tmp_path`, so preferences never touch the user's."""
    for name in XDG_NAMES:
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / "keeper" / name.lower()))
    monkeypatch.delenv("RBEE_TOKEN", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def tui_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("tui-cluster"))
    try:
        yield running
    finally:
        running.stop()


async def wait_for(condition: Callable[[], object], what: str, limit_seconds: float = 60.0) -> None:
    """Wait until `condition()` is true, polling the event loop; fail naming `what`."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {limit_seconds:.0f} s waiting for {what}")


@contextmanager
def slow_hub(chunk_bytes: int, pause_seconds: float) -> Iterator[FakeHub]:
    """Run a FakeHub that sends each body in `chunk_bytes` pieces with a pause after each.

    A download then lasts long enough for the hive to report progress in between, which it
    does at most twice a second.
    """
    hub = FakeHub()

    class SlowHandler(_handler(hub)):  # type: ignore[misc, valid-type]
        def _write(self, body: bytes) -> None:
            for start in range(0, len(body), chunk_bytes):
                try:
                    self.wfile.write(body[start:start + chunk_bytes])
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                time.sleep(pause_seconds)

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    hub.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="slow-hub", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
