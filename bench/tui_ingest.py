"""TUI ingest: how many narration events per second the narration view absorbs, and how fast
a key takes effect meanwhile.

The real app runs headless with no daemons. Events go where the live layer puts the job
streams' narration (`pending_narration`), and the app's own once-per-frame flush writes them
into the narration view. A key press goes through the driver as a terminal's would.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from textual import events

from rbee_tui.app import RbeeApp
from rbee_tui.live.narration import FEED_CAPACITY
from rbee_tui.live.prefs import Preferences
from rbee_tui.widgets.narration_log import NarrationLog

SECONDS_PER_RUN = 4.0
KEY_INTERVAL_SECONDS = 0.05
# A key whose effect takes longer than this counts as this long, so one stall cannot hang a run.
KEY_TIMEOUT_SECONDS = 2.0
# The producer stops adding while this many events wait for the next frame, so the measured
# rate is what the view absorbs, not what a loop can append to a deque.
BACKLOG_LIMIT = 2000
CHUNK = 100
TERMINAL_SIZE = (120, 40)
DISTINCT_EVENTS = 1000


def sample_events() -> list[dict[str, Any]]:
    """Build narration events shaped like the hive's download narration, all three texts set."""
    return [{
        "seq": n, "job_id": f"job-{n % 7:04d}", "ts": "2026-01-02T10:00:00.000Z",
        "type": "narration", "actor": "rbee-hive", "action": "hive_model_download_progress",
        "level": "warn" if n % 50 == 0 else "info",
        "human": f"Downloading gemma-3-270m: {n % 100}% ({n} MB of 253 MB, 41 MB/s).",
        "cute": f"🐝 {n % 100}% of gemma-3-270m is in the hive already!",
        "story": f'"How far along?" asked the queen. "{n % 100}%," buzzed the hive.',
    } for n in range(DISTINCT_EVENTS)]


class IngestApp(RbeeApp):
    """The real app without queen connections; it records when each mode change is drawn."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", start_daemons=False,
                         preferences=Preferences(view="narration"))
        self.absorbed = 0
        self.mode_drawn = asyncio.Event()

    def start_live_data(self) -> None:
        self.set_interval(1 / 30, self.flush_frame, name="frame-flush")

    def flush_frame(self) -> None:
        self.absorbed += len(self.pending_narration)
        super().flush_frame()

    def set_mode(self, mode: str, save: bool = True) -> None:
        super().set_mode(mode, save=False)
        self.call_after_refresh(self.mode_drawn.set)


async def produce(app: IngestApp, stop: asyncio.Event) -> None:
    templates = sample_events()
    index = 0
    while not stop.is_set():
        if len(app.pending_narration) < BACKLOG_LIMIT:
            app.pending_narration.extend(templates[index:index + CHUNK])
            index = (index + CHUNK) % DISTINCT_EVENTS
        await asyncio.sleep(0)


async def press_keys(app: IngestApp, stop: asyncio.Event) -> list[float]:
    """Press `m` every KEY_INTERVAL_SECONDS; return each press's time until its frame is drawn."""
    driver = app._driver
    assert driver is not None
    latencies = []
    next_press = time.perf_counter()
    while not stop.is_set():
        app.mode_drawn.clear()
        pressed = time.perf_counter()
        driver.send_message(events.Key("m", "m"))
        try:
            await asyncio.wait_for(app.mode_drawn.wait(), KEY_TIMEOUT_SECONDS)
        except TimeoutError:
            pass
        latencies.append(time.perf_counter() - pressed)
        next_press += KEY_INTERVAL_SECONDS
        await asyncio.sleep(max(next_press - time.perf_counter(), 0))
    return latencies


async def measure_once() -> dict[str, Any]:
    app = IngestApp()
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await pilot.pause()
        stop = asyncio.Event()
        started_absorbed = app.absorbed
        started = time.perf_counter()
        producer = asyncio.create_task(produce(app, stop))
        keys = asyncio.create_task(press_keys(app, stop))
        await asyncio.sleep(SECONDS_PER_RUN)
        stop.set()
        elapsed = time.perf_counter() - started
        absorbed = app.absorbed - started_absorbed
        latencies = await keys
        await producer
        log = app.query_one("#narration-log", NarrationLog)
        kept = max(len(log.shown), len(app.feed.events), len(log._strips))
    return {"events_per_second": absorbed / elapsed, "latencies_ms": [s * 1000 for s in latencies],
            "lines_kept": kept}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def run(workdir: Path, repeats: int) -> dict[str, Any]:
    # Preferences and state go to a scratch dir, never to the user's config.
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        os.environ[f"XDG_{name}_HOME"] = str(workdir / "tui" / name.lower())
    runs = [asyncio.run(measure_once()) for _ in range(repeats)]
    rates = [run["events_per_second"] for run in runs]
    p50s = [percentile(run["latencies_ms"], 0.50) for run in runs]
    p99s = [percentile(run["latencies_ms"], 0.99) for run in runs]
    kept = max(run["lines_kept"] for run in runs)
    return {
        "events_per_second": statistics.median(rates),
        "key_p50_ms": statistics.median(p50s),
        "key_p99_ms": statistics.median(p99s),
        "lines_kept": kept,
        "lines_cap": FEED_CAPACITY,
        "runs": [{"events_per_second": rate, "key_p50_ms": p50, "key_p99_ms": p99}
                 for rate, p50, p99 in zip(rates, p50s, p99s, strict=True)],
    }
