"""Unit tests of the TUI's data layer: narration filters, preferences, state and formatting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rbee_tui.live import format as fmt
from rbee_tui.live.cluster import ClusterState
from rbee_tui.live.narration import NarrationFeed, NarrationFilter, plain_line
from rbee_tui.live.prefs import Preferences, next_mode
from rbee_tui.live.queen import BACKOFF_MAX_SECONDS, backoff_delay
from rbee_tui.views.models import progress_cell
from rbee_tui.views.resources import REASON_WIDTH, _reason_cell

EVENT = {"type": "narration", "job_id": "job-abc", "actor": "rbee-hive", "level": "warn",
         "action": "disk_low", "human": "Disk is low\x1b[31m.", "cute": "🐝 tiny disk",
         "story": '"Full," said the hive.', "ts": "2026-01-02T10:00:00.000Z"}


def test_filter_parses_terms() -> None:
    parsed = NarrationFilter.parse("level:warn job:job-a hive")
    assert parsed == NarrationFilter(actor="hive", level="warn", job_id="job-a")
    assert parsed.matches(EVENT)
    assert not NarrationFilter(level="error").matches(EVENT)
    assert not NarrationFilter(job_id="job-x").matches(EVENT)


def test_feed_is_bounded() -> None:
    feed = NarrationFeed(capacity=3)
    feed.extend({**EVENT, "seq": n} for n in range(10))
    assert [event["seq"] for event in feed.events] == [7, 8, 9]


def test_line_escapes_control_characters() -> None:
    line = plain_line(EVENT, "human")
    assert "\x1b" not in line
    assert "\\x1b[31m" in line
    assert "tiny disk" in plain_line(EVENT, "cute")


def test_preferences_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "tui.json"
    Preferences(mode="story", theme="nord", view="jobs").save(path)
    assert Preferences.load(path) == Preferences(mode="story", theme="nord", view="jobs")
    path.write_text("{not json", encoding="utf-8")
    assert Preferences.load(path) == Preferences()


def test_mode_cycles() -> None:
    assert [next_mode("human"), next_mode("cute"), next_mode("story")] == \
        ["cute", "story", "human"]


def test_cluster_applies_events() -> None:
    state = ClusterState()
    state.apply({"type": "snapshot", "hives": [{"hive_id": "h1", "state": "online"}],
                 "workers": [], "models": []})
    state.apply({"type": "worker_changed", "hive_id": "h1",
                 "worker": {"worker_id": "w1", "model": "m"}})
    state.apply({"type": "hive_state", "hive_id": "h1", "state": "offline"})
    assert state.hives["h1"]["state"] == "offline"
    assert state.worker_count("h1") == 1
    state.apply({"type": "worker_removed", "hive_id": "h1", "worker_id": "w1"})
    assert state.worker_count("h1") == 0
    assert not state.apply({"type": "unknown"})


def test_progress_cell_reaches_full() -> None:
    cell = progress_cell({"bytes_done": 100, "bytes_total": 100,
                          "rate_bytes_per_second": 2048, "eta_seconds": 0})
    assert "100.0%" in cell
    assert "2.0 KiB/s" in cell
    assert "ETA" not in cell
    assert progress_cell({"bytes_total": 5}) == "-"


def test_progress_cell_reads_hive_fields() -> None:
    fields = {"model": "tiny", "bytes_done": 1_000_000, "bytes_total": 4_000_000,
              "percent": 25.0, "rate_bytes_per_second": 500_000, "eta_seconds": 6.0}
    cell = progress_cell(fields)
    assert " 25.0%" in cell
    assert "488.3 KiB/s" in cell
    assert "ETA 6.0s" in cell
    unknown_size = progress_cell({**fields, "bytes_total": None, "percent": None})
    assert unknown_size.startswith("976.6 KiB")
    assert "%" not in unknown_size


def test_reason_cell_shortens_first_line() -> None:
    assert _reason_cell(None) == "-"
    assert _reason_cell("exited with code 1\ntraceback") == "exited with code 1"
    long_reason = _reason_cell("x" * 200)
    assert len(long_reason) == REASON_WIDTH
    assert long_reason.endswith("…")


def test_cluster_keeps_downloaded_model() -> None:
    state = ClusterState()
    state.set_model("h1", {"id": "tiny", "state": "available", "architecture": "llama"})
    assert state.models[("h1", "tiny")]["hive_id"] == "h1"
    assert state.model_ids() == ["tiny"]


def test_format_helpers() -> None:
    assert fmt.size(253 * 2**20) == "253.0 MiB"
    assert fmt.bar(0.5, 4) == "██░░"
    assert backoff_delay(1) < backoff_delay(3) <= BACKOFF_MAX_SECONDS
    assert backoff_delay(100) == BACKOFF_MAX_SECONDS


def test_cli_path_does_not_import_textual() -> None:
    code = ("import sys, rbee_tui.main, rbee_tui.cli.main; "
            "sys.exit(1 if 'textual' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


async def test_read_only_disables_actions() -> None:
    from rbee_tui.app import RbeeApp
    from rbee_tui.views.resources import HivesView

    app = RbeeApp("http://127.0.0.1:9", read_only=True, start_daemons=False,
                  preferences=Preferences())
    async with app.run_test(size=(80, 24)):
        view = app.query_one(HivesView)
        assert view.check_action("start_hive", ()) is None
        assert view.check_action("hive_status", ()) is True
        assert "read-only" in app.sub_title
        assert not app.connected


def test_cluster_state_applies_model_changes() -> None:
    from rbee_tui.live.cluster import ClusterState

    state = ClusterState()
    state.apply({"type": "snapshot", "hives": [], "workers": [],
                 "models": [{"hive_id": "h1", "id": "old", "state": "available"}]})

    changed = state.apply({"type": "models_changed", "hive_id": "h1",
                           "models": [{"id": "new", "state": "available"}]})

    assert changed
    assert list(state.models) == [("h1", "new")]
