"""The chat view: pick a model, send a prompt, watch tokens stream in with TTFT and rate."""

from __future__ import annotations

import time
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Select, Static

from rbee_daemons.operations import DEFAULT_MODEL_ID
from rbee_tui.cli.render import sanitize
from rbee_tui.views.base import View

MAX_TOKENS = 256


class ChatView(View):
    """A completion or chat playground; Escape cancels the generation on the server.

    In completion mode (the default, which suits base models) each prompt is completed on its
    own. In chat mode the conversation so far is sent as messages, and the worker applies the
    model's chat template.
    """

    key = "chat"
    title = "Chat"
    MUTATING = frozenset({"send"})
    BINDINGS: ClassVar = [
        Binding("escape", "stop", "Stop generation", id="chat.stop", priority=True),
        Binding("ctrl+y", "copy_output", "Copy output", id="chat.copy"),
        Binding("ctrl+t", "toggle_chat", "Chat/completion", id="chat.toggle"),
        Binding("ctrl+l", "clear_history", "Clear", id="chat.clear"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.generated = ""
        self.transcript = ""
        self.token_count = 0
        self.submitted_at = 0.0
        self.first_token_at: float | None = None
        self.chat_mode = False
        self.history: list[dict[str, str]] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-controls"):
            yield Select([(DEFAULT_MODEL_ID, DEFAULT_MODEL_ID)], value=DEFAULT_MODEL_ID,
                         allow_blank=False, id="chat-model")
            yield Label("", id="chat-stats")
        with VerticalScroll(id="chat-output-box"):
            yield Static("", id="chat-output", markup=False)
        yield Input(placeholder="Type a prompt and press Enter; Esc stops", id="chat-prompt")

    def focus_main(self) -> None:
        self.query_one("#chat-prompt", Input).focus()

    def set_models(self, model_ids: list[str]) -> None:
        """Offer `model_ids` in the model picker, keeping the current choice."""
        select: Select[str] = self.query_one("#chat-model", Select)
        current = select.value
        choices = sorted(set(model_ids) | {DEFAULT_MODEL_ID})
        if [str(option) for option in choices] == getattr(self, "_choices", None):
            return
        self._choices = list(choices)
        select.set_options([(model_id, model_id) for model_id in choices])
        if isinstance(current, str) and current in choices:
            select.value = current

    def selected_model(self) -> str:
        return str(self.query_one("#chat-model", Select).value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        prompt = event.value
        if not prompt.strip():
            return
        if self.rbee.read_only:
            self.notify("Read-only mode: the chat cannot send prompts.", severity="warning")
            return
        model = self.selected_model()
        self.generated = ""
        self.token_count = 0
        self.first_token_at = None
        self.submitted_at = time.monotonic()
        if self.chat_mode:
            event.input.value = ""
            self.history.append({"role": "user", "content": prompt})
            self._show_text(f"{self.transcript}> {prompt}\n\n")
            self.rbee.start_infer(model, None, MAX_TOKENS, messages=list(self.history))
        else:
            self._show_text(f"> {prompt}\n\n")
            self.rbee.start_infer(model, prompt, MAX_TOKENS)

    def add_tokens(self, text: str, count: int) -> None:
        """Append `count` generated tokens whose text is `text`."""
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.token_count += count
        self.generated += text
        self._show_text(self.transcript + sanitize(text))
        self._show_stats()

    def finish(self, outcome: str) -> None:
        if self.chat_mode and self.history and self.history[-1]["role"] == "user":
            if outcome == "done":
                self.history.append({"role": "assistant", "content": self.generated})
                self._show_text(self.transcript + "\n\n")
            else:
                # The reply did not complete; drop the question so history stays in turns.
                self.history.pop()
        self._show_stats(outcome)

    def action_toggle_chat(self) -> None:
        self.chat_mode = not self.chat_mode
        self.action_clear_history()
        mode = "chat (messages, the model's chat template)" if self.chat_mode else "completion"
        self.notify(f"Chat pane: {mode}.")

    def action_clear_history(self) -> None:
        self.history = []
        self.generated = ""
        self._show_text("")

    def _show_text(self, text: str) -> None:
        self.transcript = text
        self.query_one("#chat-output", Static).update(text)
        self.query_one("#chat-output-box", VerticalScroll).scroll_end(animate=False)

    def _show_stats(self, outcome: str = "") -> None:
        parts = []
        if self.first_token_at is not None:
            parts.append(f"TTFT {self.first_token_at - self.submitted_at:.2f}s")
            elapsed = time.monotonic() - self.first_token_at
            if elapsed > 0 and self.token_count > 1:
                parts.append(f"{(self.token_count - 1) / elapsed:.1f} tok/s")
        parts.append(f"{self.token_count} tokens")
        if outcome:
            parts.append(outcome)
        self.query_one("#chat-stats", Label).update(" · ".join(parts))

    def action_stop(self) -> None:
        self.rbee.stop_infer()

    def action_copy_output(self) -> None:
        if self.generated:
            self.rbee.copy_text(self.generated)

    def tokens_per_second(self) -> float | None:
        """Return tokens per second after the first token, or None with fewer than two tokens."""
        if self.first_token_at is None or self.token_count < 2:
            return None
        elapsed = time.monotonic() - self.first_token_at
        return (self.token_count - 1) / elapsed if elapsed > 0 else None
