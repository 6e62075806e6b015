"""The narration feed: a bounded store of narration events, filters, and line rendering."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from rbee_tui.cli.render import local_time, sanitize

# The feed keeps this many events; older ones are dropped, so memory stays bounded.
FEED_CAPACITY = 5000
LEVEL_STYLES = {"error": "bold red", "warn": "yellow", "debug": "dim"}


@dataclass(frozen=True)
class NarrationFilter:
    """Criteria for the events a narration view shows. Empty fields match every event."""

    actor: str = ""
    level: str = ""
    job_id: str = ""

    def matches(self, event: dict[str, Any]) -> bool:
        if self.actor and self.actor not in str(event.get("actor", "")):
            return False
        if self.level and str(event.get("level", "info")) != self.level:
            return False
        return not (self.job_id and not str(event.get("job_id", "")).startswith(self.job_id))

    @classmethod
    def parse(cls, text: str) -> NarrationFilter:
        """Parse `actor:X level:Y job:Z` terms; a bare word filters by actor."""
        values = {"actor": "", "level": "", "job": ""}
        for term in text.split():
            key, sep, value = term.partition(":")
            if sep and key in values:
                values[key] = value
            else:
                values["actor"] = term
        return cls(values["actor"], values["level"], values["job"])

    def describe(self) -> str:
        terms = [f"{name}:{value}" for name, value in
                 (("actor", self.actor), ("level", self.level), ("job", self.job_id)) if value]
        return " ".join(terms) or "everything"


class NarrationFeed:
    """The last FEED_CAPACITY narration events from every job the TUI follows."""

    def __init__(self, capacity: int = FEED_CAPACITY) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=capacity)

    def extend(self, events: Iterable[dict[str, Any]]) -> None:
        self.events.extend(events)

    def matching(self, narration_filter: NarrationFilter) -> Iterator[dict[str, Any]]:
        return (event for event in self.events if narration_filter.matches(event))


def render_line(event: dict[str, Any], mode: str) -> Text:
    """Render `HH:MM:SS actor action text` with the text in `mode`, control characters escaped.

    Errors are red and warnings yellow; Textual drops the colours under NO_COLOR.
    """
    body = event.get(mode) or event.get("human") or ""
    actor = sanitize(str(event.get("actor", "?")), keep_newlines=False)
    action = sanitize(str(event.get("action", "?")), keep_newlines=False)
    line = Text(no_wrap=False)
    line.append(f"{local_time(event.get('ts'))} {actor:<14} {action:<24} ", style="dim")
    line.append(sanitize(str(body), keep_newlines=False),
                style=LEVEL_STYLES.get(str(event.get("level")), ""))
    return line


def plain_line(event: dict[str, Any], mode: str) -> str:
    """Render a line as `render_line` does, without styles, for copying to the clipboard."""
    return render_line(event, mode).plain
