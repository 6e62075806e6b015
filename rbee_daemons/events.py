"""The job event schema: one JSON object per SSE `data:` line.

Every event has `seq`, `job_id`, `ts` and `type`. The other keys depend on the type:

- `narration`: `actor`, `action`, `level`, `human`, `cute`, `story`, `fields`
- `token`: `text`, `index`
- `data`: `data` (a structured result)
- `progress`: `actor`, `action`, `fields` (bytes done and total for downloads)
- terminal, exactly one per job: `done` (optional `data`), `error` (`message`, `code`),
  `cancelled` (optional `message`)
"""

from __future__ import annotations

import time
from typing import Any, Final

NARRATION: Final = "narration"
TOKEN: Final = "token"
DATA: Final = "data"
PROGRESS: Final = "progress"
DONE: Final = "done"
ERROR: Final = "error"
CANCELLED: Final = "cancelled"

EVENT_TYPES: Final = frozenset({NARRATION, TOKEN, DATA, PROGRESS, DONE, ERROR, CANCELLED})
TERMINAL_TYPES: Final = frozenset({DONE, ERROR, CANCELLED})
LEVELS: Final = ("debug", "info", "warn", "error")

# Markers sent after the terminal event so that a plain `curl -N` shows how a stream ended.
END_MARKERS: Final = {DONE: "[DONE]", ERROR: "[ERROR]", CANCELLED: "[CANCELLED]"}

Event = dict[str, Any]


_second_cache: tuple[int, str] = (-1, "")


def utc_timestamp() -> str:
    """Return the current time as ISO 8601 in UTC with milliseconds, e.g. `...T19:00:00.123Z`."""
    global _second_cache
    now = time.time()
    second = int(now)
    # Every token event is stamped; formatting the date once per second keeps that cheap.
    if _second_cache[0] != second:
        _second_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_cache[1]}.{int((now - second) * 1000):03d}Z"


def is_terminal(event: Event) -> bool:
    return event.get("type") in TERMINAL_TYPES


def end_marker(event: Event) -> str:
    """Return the `data:` payload that closes a stream after the terminal `event`."""
    marker = END_MARKERS[event["type"]]
    if event["type"] == ERROR:
        return f"{marker} {event.get('message', '')}".rstrip()
    return marker
