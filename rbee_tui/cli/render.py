"""Rendering narration for a terminal: `HH:MM:SS actor  action  text` in the chosen mode."""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any, TextIO

MODES = ("human", "cute", "story")

_RED = "\x1b[31m"
_YELLOW = "\x1b[33m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"

# C0 and C1 control characters other than tab and newline, including ESC, which starts
# terminal escape sequences. Text from daemons and models must not drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def sanitize(text: str, *, keep_newlines: bool = True) -> str:
    """Replace control characters with visible escapes such as `\\x1b`."""
    cleaned = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
    if not keep_newlines:
        cleaned = cleaned.replace("\n", " ")
    return cleaned


def shares_terminal(out: TextIO, err: TextIO) -> bool:
    """Check whether `out` and `err` are the same terminal device."""
    try:
        return (out.isatty() and err.isatty()
                and os.path.samestat(os.fstat(out.fileno()), os.fstat(err.fileno())))
    except (OSError, ValueError, AttributeError):
        return False


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def local_time(timestamp: str | None) -> str:
    if not timestamp:
        return datetime.now().strftime("%H:%M:%S")
    try:
        parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "--:--:--"
    return parsed.astimezone().strftime("%H:%M:%S")


def narration_line(event: dict[str, Any], mode: str, *, color: bool) -> str:
    """Format one narration event as a single terminal line."""
    text = event.get(mode) or event.get("human") or ""
    actor = sanitize(str(event.get("actor", "?")), keep_newlines=False)
    action = sanitize(str(event.get("action", "?")), keep_newlines=False)
    body = sanitize(str(text), keep_newlines=False)
    stamp = local_time(event.get("ts"))
    if not color:
        return f"{stamp} {actor:<15} {action:<22} {body}"
    level = event.get("level")
    prefix = {"error": _RED, "warn": _YELLOW}.get(str(level), "")
    return (
        f"{_DIM}{stamp} {actor:<15} {action:<22}{_RESET} "
        f"{prefix}{body}{_RESET if prefix else ''}"
    )
