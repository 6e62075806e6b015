"""Chat prompts: OpenAI messages rendered with the model's chat template.

A GGUF that carries `tokenizer.chat_template` is rendered with that Jinja template through
llama-cpp-python's formatter. A model without one (the bundled Gemma 3 270M base model has
none) gets Gemma's turn format, which Gemma-family tokenizers know as special tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GEMMA_END_OF_TURN = "<end_of_turn>"


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class ChatPrompt:
    text: str
    stop: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChatTemplate:
    """The model's Jinja template and special tokens; `template` is None when it has none."""

    template: str | None
    bos_token: str = ""
    eos_token: str = ""

    def render(self, messages: list[ChatMessage]) -> ChatPrompt:
        if self.template is None:
            return gemma_prompt(messages)
        return self._render_jinja(messages)

    def _render_jinja(self, messages: list[ChatMessage]) -> ChatPrompt:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(
            template=self.template or "", eos_token=self.eos_token, bos_token=self.bos_token
        )
        payload: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        response = formatter(messages=payload)
        text = response.prompt
        # The tokenizer adds BOS itself; a template that writes it too would double it.
        if self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token):]
        stop = response.stop if isinstance(response.stop, list) else [response.stop or ""]
        return ChatPrompt(text, [s for s in stop if s])


def gemma_prompt(messages: list[ChatMessage]) -> ChatPrompt:
    """Render messages as Gemma turns; system text is prefixed to the first user turn."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns = []
    for message in (m for m in messages if m.role != "system"):
        role = "model" if message.role == "assistant" else "user"
        content = message.content
        if role == "user" and system:
            content, system = f"{system}\n\n{content}", ""
        turns.append(f"<start_of_turn>{role}\n{content}{GEMMA_END_OF_TURN}\n")
    if system:
        turns.append(f"<start_of_turn>user\n{system}{GEMMA_END_OF_TURN}\n")
    turns.append("<start_of_turn>model\n")
    return ChatPrompt("".join(turns), [GEMMA_END_OF_TURN])
