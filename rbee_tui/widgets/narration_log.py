"""A narration log that renders lines on demand in the current mode and pauses following."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from rbee_tui.live.narration import FEED_CAPACITY, NarrationFilter, plain_line, render_line

# Rendered lines kept for redraws; the cache is dropped when it grows past this or the mode
# changes, so it never holds more than about two screens' worth in steady state.
STRIP_CACHE_SIZE = 1024


class NarrationLog(ScrollView, can_focus=True):
    """Narration lines, one per event, rendered only when they scroll into view.

    Ingesting a batch only appends events, so its cost does not depend on rendering, and a
    mode change redraws just the visible lines. Following (auto-scroll) pauses when the user
    scrolls up and resumes at the bottom; while paused, `pending` counts the lines that arrived.
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
        super().__init__(id=id)
        self.shown: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.narration_filter = NarrationFilter()
        self.selected: int | None = None
        # Events ever appended, so a cache key stays valid when old lines drop off the front.
        self._appended = 0
        self._widest = 0
        self._strips: dict[int, Strip] = {}

    def add_events(self, batch: Iterable[dict[str, Any]]) -> None:
        """Append the events that pass the filter and move the view to the end when following."""
        accepted = [event for event in batch if self.narration_filter.matches(event)]
        if not accepted:
            return
        capacity = self.shown.maxlen or len(accepted)
        dropped = max(len(self.shown) + len(accepted) - capacity, 0)
        self.shown.extend(accepted)
        self._appended += len(accepted)
        self._resize()
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            if dropped:
                self.scroll_to(y=max(self.scroll_y - dropped, 0), animate=False, immediate=True)
            self.pending += len(accepted)
        self.refresh()

    def show(self, events_: Iterable[dict[str, Any]], narration_filter: NarrationFilter) -> None:
        """Replace the content with `events_` that pass `narration_filter`."""
        self.narration_filter = narration_filter
        self.clear()
        self.add_events(events_)

    def clear(self) -> None:
        self.shown.clear()
        self._strips.clear()
        self._widest = 0
        self._resize()
        self.refresh()

    def _resize(self) -> None:
        self.virtual_size = Size(max(self._widest, self.scrollable_content_region.width),
                                 len(self.shown))

    def render_line(self, y: int) -> Strip:
        """Render row `y` of the view: the kept event at the scroll offset plus `y`."""
        width = self.scrollable_content_region.width
        style = self.rich_style
        index = int(self.scroll_y) + y
        if not 0 <= index < len(self.shown):
            return Strip.blank(width, style)
        strip = self._strip(index, style)
        scroll_x = int(self.scroll_x)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def _strip(self, index: int, style: Style) -> Strip:
        key = self._appended - len(self.shown) + index
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) >= STRIP_CACHE_SIZE:
                self._strips.clear()
            text = render_line(self.shown[index], self.mode)
            text.no_wrap = True
            segments = list(text.render(self.app.console, end=""))
            strip = self._strips[key] = Strip(Segment.apply_style(segments, style))
            if strip.cell_length > self._widest:
                self._widest = strip.cell_length
                self._resize()
        return strip

    def rendered_text(self, index: int) -> str:
        """Return the text of kept line `index` as drawn on screen, styles removed."""
        return "".join(segment.text for segment in self._strip(index, self.rich_style))

    def watch_mode(self) -> None:
        """Redraw in the new mode; only lines in view are rendered again."""
        self._strips.clear()
        self.refresh()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        at_end = new >= self.max_scroll_y
        if at_end and not self.following:
            self.resume_following()
        elif new < old and not at_end and self.following:
            self.following = False

    def resume_following(self) -> None:
        self.following = True
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
