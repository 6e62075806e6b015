"""Narration: short user-facing sentences about what is happening, in three voices.

Call `narrate(action, human, cute=..., story=..., **fields)` anywhere. The actor is the
program that called `set_actor()` at start-up. The job comes from a `contextvars` context
that the job runner enters, so code deep inside a job needs no job id parameter. Every event
is also written to the daemon's log, so narration without a job is not lost. The client picks
which of the three texts to show; daemons never format for a mode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from rbee_daemons import events
from rbee_daemons.redact import redact_text, redact_value

logger = logging.getLogger("rbee.narration")

CUTE_MAX_CHARS = 150
STORY_MAX_CHARS = 200


class EventSink(Protocol):
    """The destination of the current job's events: the job's event log."""

    @property
    def job_id(self) -> str: ...

    def emit(self, event: events.Event) -> events.Event: ...


_actor = "rbee"
_listeners: list[Callable[[str, events.Event], None]] = []
_current_sink: ContextVar[EventSink | None] = ContextVar("rbee_current_job", default=None)


def set_actor(actor: str) -> None:
    """Name the program that emits narration from this process (`queen-rbee`, ...)."""
    global _actor
    _actor = actor


def add_listener(listener: Callable[[str, events.Event], None]) -> None:
    """Call `listener(job_id, event)` for every narration event this process emits."""
    _listeners.append(listener)


def get_actor() -> str:
    return _actor


def current_sink() -> EventSink | None:
    """Return the job whose context the caller runs in, if any."""
    return _current_sink.get()


def current_job_id() -> str | None:
    sink = _current_sink.get()
    return sink.job_id if sink is not None else None


@contextmanager
def job_context(sink: EventSink) -> Iterator[None]:
    """Send narration and events emitted inside this block to `sink`."""
    token = _current_sink.set(sink)
    try:
        yield
    finally:
        _current_sink.reset(token)


def narrate(
    action: str,
    human: str,
    *,
    cute: str,
    story: str,
    level: str = "info",
    **fields: Any,
) -> events.Event:
    """Emit a narration event with all three texts to the current job and the log.

    `human` is plain and precise, `cute` is playful with bee emoji (at most 150 chars),
    `story` is a line of dialogue in the third person (at most 200 chars). Secrets are
    redacted before the event is stored or logged.
    """
    if level not in events.LEVELS:
        raise ValueError(f"narration level {level!r} is not one of {events.LEVELS}")
    event: events.Event = {
        "type": events.NARRATION,
        "actor": _actor,
        "action": action,
        "level": level,
        "human": redact_text(human),
        "cute": redact_text(cute)[:CUTE_MAX_CHARS],
        "story": redact_text(story)[:STORY_MAX_CHARS],
        "fields": redact_value(fields),
    }
    return _dispatch(event)


def emit(event_type: str, **payload: Any) -> events.Event:
    """Emit a non-narration event (`token`, `data`, `progress`) to the current job."""
    if event_type == events.NARRATION:
        raise ValueError("emit() does not take narration events; call narrate() instead")
    if event_type not in events.EVENT_TYPES:
        raise ValueError(f"{event_type!r} is not an event type; use one of {events.EVENT_TYPES}")
    # Tokens are the model's output for the client that requested it, not narration, and
    # they are the relay's hot path. Every other event is redacted like narration.
    if event_type == events.TOKEN:
        event: events.Event = {"type": event_type, **payload}
    else:
        event = {"type": event_type, **redact_value(payload)}
    if event_type == events.PROGRESS:
        event.setdefault("actor", _actor)
    sink = _current_sink.get()
    if sink is None:
        return event
    return sink.emit(event)


def relay(event: events.Event) -> events.Event:
    """Re-emit an event that came from another program (a hive or worker) unchanged.

    Only `seq`, `job_id` and `ts` are replaced, so the event fits the current job's log; the
    actor and texts stay as the other program wrote them.
    """
    copied = {k: v for k, v in event.items() if k not in ("seq", "job_id", "ts")}
    if copied.get("type") == events.NARRATION:
        return _dispatch(copied)
    sink = _current_sink.get()
    return sink.emit(copied) if sink is not None else copied


def _dispatch(event: events.Event) -> events.Event:
    sink = _current_sink.get()
    job_id = sink.job_id if sink is not None else "-"
    log_level = {"debug": logging.DEBUG, "warn": logging.WARNING, "error": logging.ERROR}
    logger.log(
        log_level.get(event["level"], logging.INFO),
        "%s %s %s %s",
        job_id,
        event.get("actor", _actor),
        event["action"],
        event["human"],
    )
    for listener in _listeners:
        listener(job_id, event)
    if sink is None:
        return event
    return sink.emit(event)
