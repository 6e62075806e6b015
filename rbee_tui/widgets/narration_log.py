"""A narration log that renders in the current mode, batches writes and pauses following."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import RichLog

from rbee_tui.live.narration import FEED_CAPACITY, NarrationFilter, plain_line, render_line


class NarrationLog(RichLog):
    """Narration lines, one per event, re-rendered when the mode changes.

    Following (auto-scroll) pauses when the user scrolls up and resumes at the bottom;
    while paused, `pending` counts the lines that arrived.
    """

    class FollowChanged(Message):
        """Posted when following pauses or resumes, or the count of unseen lines changes."""

        def __init__(self, following: bool, pending: int) -> None:
            self.following = following
            self.pending = pending
            super().__init__()

    mode: reactive[str] = reactive("human")
    following: reactive[bool] = reactive(True)
    pending: reactive[int] = reactive(0)

    def __init__(self, *, capacity: int = FEED_CAPACITY, id: str | None = None) -> None:
        super().__init__(max_lines=capacity, wrap=False, markup=False, highlight=False,
                         auto_scroll=True, id=id)
        self.shown: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.narration_filter = NarrationFilter()
        self.selected: int | None = None

    def add_events(self, batch: Iterable[dict[str, Any]]) -> None:
        """Write a batch of events as one write, so a burst costs one render pass."""
        accepted = [event for event in batch if self.narration_filter.matches(event)]
        if not accepted:
            return
        self.shown.extend(accepted)
        self.write(self._joined(accepted), scroll_end=self.following)
        if not self.following:
            self.pending += len(accepted)

    def show(self, events_: Iterable[dict[str, Any]], narration_filter: NarrationFilter) -> None:
        """Replace the content with `events_` that pass `narration_filter`."""
        self.narration_filter = narration_filter
        self.shown.clear()
        self.clear()
        self.add_events(events_)

    def _joined(self, batch: list[dict[str, Any]]) -> Text:
        return Text("\n").join(render_line(event, self.mode) for event in batch)

    def watch_mode(self) -> None:
        """Re-render every kept line in the new mode, keeping the scroll position."""
        kept = list(self.shown)
        scroll_y = self.scroll_y
        self.clear()
        if kept:
            self.write(self._joined(kept), scroll_end=self.following)
        if not self.following:
            self.call_after_refresh(self.scroll_to, y=scroll_y, animate=False)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        at_end = new >= self.max_scroll_y
        if at_end and not self.following:
            self.resume_following()
        elif new < old and not at_end and self.following:
            self.following = False
            self.auto_scroll = False

    def resume_following(self) -> None:
        self.following = True
        self.auto_scroll = True
        self.pending = 0
        self.scroll_end(animate=False)

    def watch_following(self) -> None:
        self.post_message(self.FollowChanged(self.following, self.pending))

    def watch_pending(self) -> None:
        self.post_message(self.FollowChanged(self.following, self.pending))

    def line_text(self, index: int | None) -> str | None:
        """Return the plain text of shown line `index`, or None when there is none."""
        if index is None or not 0 <= index < len(self.shown):
            return None
        return plain_line(self.shown[index], self.mode)

    def bottom_visible_index(self) -> int | None:
        """Return the index of the last line in view, the one `copy` takes by default."""
        if not self.shown:
            return None
        last = int(self.scroll_y) + self.scrollable_content_region.height - 1
        return min(last, len(self.shown) - 1)

    def on_click(self, event: events.Click) -> None:
        self.selected = int(self.scroll_y) + event.y
