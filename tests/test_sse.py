"""Unit tests of SSE framing, end markers and Last-Event-ID parsing."""

from __future__ import annotations

import httpx
import pytest
from httpx_sse import EventSource

from rbee_daemons import events, sse
from tests.helpers import parse_sse_body


def decode_with_httpx_sse(body: str) -> list[tuple[str, str]]:
    """Decode `body` with httpx_sse and return (id, data) per message."""
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body.encode()
    )
    return [(message.id, message.data) for message in EventSource(response).iter_sse()]


def test_frame_data_only() -> None:
    assert sse.frame("hello") == "data: hello\n\n"


def test_frame_with_id_and_event() -> None:
    assert sse.frame("x", event_id=7, event="narration") == "id: 7\nevent: narration\ndata: x\n\n"


def test_frame_id_zero_is_kept() -> None:
    assert sse.frame("x", event_id=0).startswith("id: 0\n")


def test_frame_multi_line_data() -> None:
    assert sse.frame("one\ntwo\nthree") == "data: one\ndata: two\ndata: three\n\n"


def test_frame_multi_line_round_trip() -> None:
    assert decode_with_httpx_sse(sse.frame("one\ntwo", event_id=3)) == [("3", "one\ntwo")]


def test_frame_empty_data() -> None:
    assert sse.frame("") == "data: \n\n"


def test_frame_lone_cr_keeps_text() -> None:
    messages, _ = parse_sse_body(sse.frame("first\rsecond"))

    assert "second" in messages[0].data


def test_frame_event_uses_seq_as_id() -> None:
    event = {"seq": 12, "job_id": "job-x", "type": events.DONE}

    assert decode_with_httpx_sse(sse.frame_event(event)) == [("12", sse.dumps(event))]


def test_dumps_keeps_unicode_and_is_compact() -> None:
    assert sse.dumps({"cute": "🐝", "n": 1}) == '{"cute":"🐝","n":1}'


def test_frame_end_done() -> None:
    assert sse.frame_end({"type": events.DONE}) == "data: [DONE]\n\n"


def test_frame_end_cancelled() -> None:
    assert sse.frame_end({"type": events.CANCELLED, "message": "x"}) == "data: [CANCELLED]\n\n"


def test_frame_end_error_with_message() -> None:
    end = sse.frame_end({"type": events.ERROR, "message": "Model not found.", "code": "x"})

    assert end == "data: [ERROR] Model not found.\n\n"


def test_frame_end_error_multi_line_message() -> None:
    end = sse.frame_end({"type": events.ERROR, "message": "line one\nline two"})

    assert end == "data: [ERROR] line one line two\n\n"


def test_frame_end_error_without_message() -> None:
    assert sse.frame_end({"type": events.ERROR}) == "data: [ERROR]\n\n"


def test_frame_end_has_no_id() -> None:
    messages, _ = parse_sse_body(sse.frame_end({"type": events.DONE}))

    assert messages[0].id is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0),
        ("", 0),
        ("garbage", 0),
        ("1.5", 0),
        ("-3", 0),
        ("0", 0),
        ("7", 7),
        (" 42 ", 42),
        ("9" * 5000, 0),
    ],
)
def test_parse_last_event_id(value: str | None, expected: int) -> None:
    assert sse.parse_last_event_id(value) == expected


def test_sse_headers_disable_buffering() -> None:
    assert sse.SSE_HEADERS["X-Accel-Buffering"] == "no"
    assert sse.SSE_HEADERS["Cache-Control"] == "no-cache"


def test_ping_is_comment() -> None:
    messages, comments = parse_sse_body(sse.PING)

    assert messages == []
    assert comments == 1
