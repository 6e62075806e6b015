"""Fixtures for the TUI's pilot tests: a real queen and hive, and isolated XDG dirs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster, start_cluster

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
