"""Server-sent events framing for job streams."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.responses import StreamingResponse

from rbee_daemons import events

# Headers every SSE response carries, so proxies such as nginx do not buffer the stream.
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}
PING = ": ping\n\n"
# SSE ends a line at CRLF, a lone CR or a lone LF; nothing else splits a line.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def frame(data: str, *, event_id: int | None = None, event: str | None = None) -> str:
    """Frame one SSE message; multi-line `data` becomes several `data:` lines."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return "\n".join(lines) + "\n\n"


def frame_event(event: events.Event) -> str:
    """Frame a job event with its sequence number as the SSE id."""
    return frame(dumps(event), event_id=event["seq"])


def frame_end(event: events.Event) -> str:
    """Frame the end marker (`[DONE]`, `[ERROR] ...`, `[CANCELLED]`) for a terminal event."""
    return frame(_LINE_BREAK.sub(" ", events.end_marker(event)))


def parse_last_event_id(value: str | None) -> int:
    """Return the sequence number from a `Last-Event-ID` value; 0 when absent or invalid."""
    if value is None:
        return 0
    try:
        return max(int(value.strip()), 0)
    except ValueError:
        return 0


@dataclass
class Message:
    """One server-sent event as a client sees it."""

    data: str
    event: str | None = None
    id: str | None = None


class MessageDecoder:
    """Turn SSE lines (terminators removed) into messages.

    The queen's token relay reads worker streams with aiohttp, which has no SSE parser; this
    covers the parts of the format the workers use: `data`, `event`, `id` and comments.
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, line: str) -> Message | None:
        """Consume one line; return a message when a blank line completes one."""
        if not line:
            if not self._data:
                self._event = None
                return None
            message = Message("\n".join(self._data), self._event, self._id)
            self._data, self._event = [], None
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


def event_stream_response(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)
