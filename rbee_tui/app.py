"""The rbee keeper TUI: k9s-style views of hives, workers, models and jobs, chat and narration."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header

from rbee_tui.live.prefs import VIEWS, Preferences, next_mode
from rbee_tui.live_app import LiveApp
from rbee_tui.screens.help import HelpScreen
from rbee_tui.screens.modals import ConfirmScreen, TextPromptScreen
from rbee_tui.views.base import TableView, View
from rbee_tui.views.chat import ChatView
from rbee_tui.views.jobs import JobsView
from rbee_tui.views.models import ModelsView
from rbee_tui.views.narration import NarrationView
from rbee_tui.views.resources import HivesView, WorkersView
from rbee_tui.widgets.narration_log import NarrationLog

VIEW_CLASSES: tuple[type[View], ...] = (HivesView, WorkersView, ModelsView, JobsView, ChatView,
                                        NarrationView)


class RbeeApp(LiveApp):
    """The keeper's terminal app; `rbee` with no arguments runs it."""

    TITLE = "rbee"
    # Absolute, because Textual resolves a relative path from the subclass's module.
    CSS_PATH = Path(__file__).with_name("app.tcss")
    BINDINGS: ClassVar = [
        # Digits stay out of the footer so the view's own keys fit at 80 columns; `?` lists them.
        *(Binding(str(n), f"show_view('{cls.key}')", cls.title, id=f"view.{cls.key}",
                  show=False)
          for n, cls in enumerate(VIEW_CLASSES, start=1)),
        Binding("m", "cycle_mode", "Mode", id="app.mode"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, queen_url: str, *, read_only: bool = False, start_daemons: bool = True,
                 preferences: Preferences | None = None) -> None:
        super().__init__(queen_url, read_only=read_only, start_daemons=start_daemons)
        self.preferences = preferences or Preferences.load()
        # Theme changes before on_mount come from start-up, not the user: do not save them.
        self.preferences_ready = False

    def compose(self) -> ComposeResult:
        yield Header()
        with ContentSwitcher(initial=self.preferences.view):
            for cls in VIEW_CLASSES:
                yield cls(id=cls.key)
        yield Footer()

    def on_mount(self) -> None:
        if self.preferences.theme in self.available_themes:
            self.theme = self.preferences.theme
        self.preferences_ready = True
        self.set_mode(self.preferences.mode, save=False)
        self.update_subtitle()
        self.action_show_view(self.preferences.view)
        self.start_live_data()

    def view(self, key: str) -> View:
        return self.query_one(f"#{key}", View)

    # Header, mode and preferences.
    def watch_connected(self) -> None:
        self.update_subtitle()

    def update_subtitle(self) -> None:
        state = "connected" if self.connected else "disconnected"
        flags = " · read-only" if self.read_only else ""
        self.sub_title = f"{self.queen_url} · {state} · {self.preferences.mode}{flags}"

    def set_mode(self, mode: str, save: bool = True) -> None:
        self.preferences.mode = mode
        for log in self.query(NarrationLog):
            log.mode = mode
        self.update_subtitle()
        if save:
            self.preferences.save()

    def action_cycle_mode(self) -> None:
        # The header's subtitle names the mode; a toast per key press cost a redraw of its own
        # while narration floods in (bench/tui_ingest.py).
        self.set_mode(next_mode(self.preferences.mode))

    def watch_theme(self, theme: str) -> None:
        if self.preferences_ready and theme != self.preferences.theme:
            self.preferences.theme = theme
            self.preferences.save()

    def action_show_view(self, key: str) -> None:
        if key not in VIEWS:
            return
        self.query_one(ContentSwitcher).current = key
        view = self.view(key)
        view.focus_main()
        if isinstance(view, TableView):
            view.refresh_rows()
        if key != self.preferences.view:
            self.preferences.view = key
            self.preferences.save()

    # Hooks from LiveApp. They use query(), not query_one(), because workers may still call
    # them while the app shuts down and its widgets are gone.
    def narration_arrived(self, batch: list[dict[str, Any]]) -> None:
        for log in self.query("#narration-log").results(NarrationLog):
            log.add_events(batch)

    def state_changed(self) -> None:
        for view in self.query(TableView):
            view.refresh_rows()
        for chat in self.query(ChatView):
            chat.set_models(self.cluster.model_ids())

    def tokens_arrived(self, text: str, count: int) -> None:
        for chat in self.query(ChatView):
            chat.add_tokens(text, count)

    def chat_finished(self, outcome: str) -> None:
        for chat in self.query(ChatView):
            chat.finish(outcome)
            rate = chat.tokens_per_second()
            if rate is not None:
                self.token_rates[chat.selected_model()] = rate
                self.state_dirty = True

    def job_replayed(self, job_id: str, batch: list[dict[str, Any]]) -> None:
        for jobs in self.query(JobsView):
            jobs.add_replayed(job_id, batch)

    # Dialogs, clipboard, help and the command palette.
    def confirm(self, question: str, on_yes: Callable[[], Any], yes_label: str = "Yes") -> None:
        def answered(answer: bool | None) -> None:
            if answer:
                on_yes()

        self.push_screen(ConfirmScreen(question, yes_label), answered)

    def ask(self, question: str, on_answer: Callable[[str | None], Any], value: str = "",
            placeholder: str = "") -> None:
        self.push_screen(TextPromptScreen(question, value, placeholder), on_answer)

    def copy_text(self, text: str) -> None:
        """Copy `text` with OSC 52, which works over SSH when the terminal allows it."""
        self.copy_to_clipboard(text)
        self.notify(f"Copied {len(text)} characters.")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_rows()))

    def key_rows(self) -> list[tuple[str, str]]:
        rows = [(binding.key, binding.description) for binding in self.BINDINGS
                if isinstance(binding, Binding)]
        for cls in VIEW_CLASSES:
            rows += [(binding.key, f"{cls.title}: {binding.description}")
                     for binding in cls.BINDINGS if isinstance(binding, Binding)]
        return rows

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for cls in VIEW_CLASSES:
            yield SystemCommand(f"Show {cls.title}", f"Switch to the {cls.title} view",
                                lambda key=cls.key: self.action_show_view(key))
        yield SystemCommand("Cycle narration mode", "human → cute → story",
                            self.action_cycle_mode)
        for cls in VIEW_CLASSES:
            for binding in cls.BINDINGS:
                if isinstance(binding, Binding):
                    yield SystemCommand(f"{cls.title}: {binding.description}",
                                        f"Key {binding.key} in the {cls.title} view",
                                        self._palette_action(cls.key, binding.action))

    def _palette_action(self, key: str, action: str) -> Callable[[], Any]:
        async def run() -> None:
            self.action_show_view(key)
            await self.view(key).run_action(action)

        return run
