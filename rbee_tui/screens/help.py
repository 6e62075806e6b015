"""The help screen: every key of the app and of the current view."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = (
    "rbee keeper: your machines as one private LLM cloud.\n"
    "Digits 1-6 switch views, Ctrl+P opens the command palette with every action by name, "
    "m cycles the narration mode (human, cute, story), q quits.\n"
)


class HelpScreen(ModalScreen[None]):
    """Lists the keys; any of Escape, q or ? closes it."""

    BINDINGS: ClassVar = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        width = max((len(key) for key, _ in self.rows), default=4)
        lines = [f"{key:<{width}}  {description}" for key, description in self.rows]
        with VerticalScroll(classes="dialog help"):
            yield Static(INTRO + "\n" + "\n".join(lines), markup=False)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
