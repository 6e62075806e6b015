"""The two OpenAI response shapes the worker streams: text completions and chat completions."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ResponseShape:
    """The object names and choice layout of one endpoint's responses."""

    id_prefix: str
    chunk_object: str
    full_object: str
    chat: bool

    def new_id(self) -> str:
        return f"{self.id_prefix}{uuid.uuid4().hex[:24]}"

    def base(self, completion_id: str, model: str, *, full: bool = False) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": self.full_object if full else self.chunk_object,
            "created": int(time.time()),
            "model": model,
        }

    def opening_choice(self) -> dict[str, Any] | None:
        """Return the choice of the first chat chunk, which only announces the assistant role."""
        if not self.chat:
            return None
        return {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                "finish_reason": None}

    def choice(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        if self.chat:
            delta = {"content": text} if text else {}
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}

    def full_choice(self, text: str, finish_reason: str) -> dict[str, Any]:
        if self.chat:
            return {"index": 0, "message": {"role": "assistant", "content": text},
                    "logprobs": None, "finish_reason": finish_reason}
        return self.choice(text, finish_reason)


TEXT = ResponseShape("cmpl-", "text_completion", "text_completion", chat=False)
CHAT = ResponseShape("chatcmpl-", "chat.completion.chunk", "chat.completion", chat=True)
