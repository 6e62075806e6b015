"""The narration view: a live feed of every followed job's events, with filter and follow."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Label

from rbee_tui.live.narration import NarrationFilter
from rbee_tui.views.base import View
from rbee_tui.widgets.narration_log import NarrationLog


class NarrationView(View):
    """All narration, newest at the bottom; scrolling up pauses following."""

    key = "narration"
    title = "Narration"
    BINDINGS: ClassVar = [
        Binding("slash", "edit_filter", "Filter", id="narration.filter"),
        Binding("f,end", "follow", "Follow", id="narration.follow"),
        Binding("y", "copy_line", "Copy line", id="narration.copy"),
    ]

    def compose(self) -> ComposeResult:
        yield Label(self._status(True, 0), id="narration-status", classes="view-title")
        yield Input(placeholder="actor:NAME level:warn job:ID, Enter applies, empty clears",
                    id="narration-filter")
        yield NarrationLog(id="narration-log")

    @property
    def log_widget(self) -> NarrationLog:
        return self.query_one("#narration-log", NarrationLog)

    def focus_main(self) -> None:
        self.log_widget.focus()

    def _status(self, following: bool, pending: int) -> str:
        logs = self.query(NarrationLog)
        shown = logs.first().narration_filter.describe() if logs else "everything"
        state = "following" if following else f"paused, {pending} new lines (f follows)"
        return f"Narration: {shown}; {state}"

    def on_narration_log_follow_changed(self, event: NarrationLog.FollowChanged) -> None:
        self.query_one("#narration-status", Label).update(
            self._status(event.following, event.pending))

    def action_edit_filter(self) -> None:
        field = self.query_one("#narration-filter", Input)
        field.display = True
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.input.display = bool(event.value.strip())
        narration_filter = NarrationFilter.parse(event.value)
        self.log_widget.show(self.rbee.feed.matching(narration_filter), narration_filter)
        self.log_widget.resume_following()
        self.focus_main()

    def action_follow(self) -> None:
        self.log_widget.resume_following()

    def action_copy_line(self) -> None:
        log = self.log_widget
        index = log.selected if log.selected is not None else log.bottom_visible_index()
        text = log.line_text(index)
        if text is not None:
            self.rbee.copy_text(text)
