"""Snapshot tests of the main views at 80x24, fed fixed data instead of a live queen."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from rbee_tui.app import RbeeApp
from rbee_tui.live.prefs import Preferences

SNAPSHOT_SIZE = (80, 24)
HIVE_ID = "hive-0123456789ab"
SNAPSHOT: dict[str, Any] = {
    "type": "snapshot",
    "hives": [{"hive_id": HIVE_ID, "url": "http://127.0.0.1:7835", "state": "online",
               "heartbeat_age_seconds": 0.4, "version": "0.1.0", "workers": 1, "models": 1,
               "devices": {"cpu": {"cores": 8, "load_1m": 2.0},
                           "ram": {"total_bytes": 16 * 2**30, "available_bytes": 10 * 2**30},
                           "gpus": []}}],
    "workers": [{"worker_id": "worker-1", "hive_id": HIVE_ID, "model": "gemma-3-270m",
                 "state": "ready", "in_flight": 0, "rss_bytes": 400 * 2**20, "restarts": 0,
                 "reason": None},
                {"worker_id": "worker-2", "hive_id": HIVE_ID, "model": "tiny",
                 "state": "failed", "in_flight": 0, "rss_bytes": None, "restarts": 3,
                 "reason": "exited with code 1 during start-up"}],
    "models": [{"id": "gemma-3-270m", "hive_id": HIVE_ID, "name": "gemma-3-270m-Q4_K_M.gguf",
                "size": 253 * 2**20, "state": "available", "source": "bundled",
                "architecture": "gemma3", "quantization": "Q4_K_M", "context_length": 32768,
                "parameter_count": 268_098_176}],
}
NARRATION = [
    {"seq": 1, "job_id": "job-1", "ts": "2026-01-02T10:00:00.000Z", "type": "narration",
     "actor": "queen-rbee", "action": "queen_check", "level": "info",
     "human": "The queen is healthy.", "cute": "🐝 The queen feels buzzing!",
     "story": '"All is well," said the queen.'},
    {"seq": 2, "job_id": "job-1", "ts": "2026-01-02T10:00:01.000Z", "type": "narration",
     "actor": "rbee-hive", "action": "worker_crashed", "level": "error",
     "human": "Worker worker-1 crashed.", "cute": "🐝 Oh no, a worker bee tumbled!",
     "story": '"Worker one is down," reported the hive.'},
]


class FixedDataApp(RbeeApp):
    """The app with its live data replaced by the fixed snapshot and narration above."""

    def start_live_data(self) -> None:
        self.cluster.apply(SNAPSHOT)
        self.hive_aliases = {HIVE_ID: "localhost"}
        self.connected = True
        self.pending_narration.extend(NARRATION)
        self.flush_frame()


@pytest.fixture(autouse=True)
def utc_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Show narration timestamps in UTC so the snapshots do not depend on the machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def fixed_app(view: str) -> FixedDataApp:
    prefs = Preferences(mode="human", theme="textual-dark", view=view)
    return FixedDataApp("http://127.0.0.1:7833", start_daemons=False, preferences=prefs)


@pytest.mark.parametrize("view", ["hives", "workers", "models", "narration"])
def test_view_snapshot_80x24(snap_compare: Any, view: str) -> None:
    assert snap_compare(fixed_app(view), terminal_size=SNAPSHOT_SIZE)


def test_story_mode_snapshot_80x24(snap_compare: Any) -> None:
    assert snap_compare(fixed_app("narration"), terminal_size=SNAPSHOT_SIZE, press=["m", "m"])
