"""Unit tests of narrate(), emit(), relay() and the redaction of secrets."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from rbee_daemons import events, narration
from rbee_daemons.jobs import JobRegistry
from rbee_daemons.redact import redact_text, redact_value, register_secret

CUTE = "🐝 The test bee is buzzing along!"
STORY = '"Is the test running?" asked the queen. "It is," replied the hive.'


def narrate_test(human: str = "The test step is running.", **options: Any) -> events.Event:
    return narration.narrate("test_step", human, cute=CUTE, story=STORY, **options)


async def run_in_job(registry: JobRegistry, handler: Any) -> list[events.Event]:
    job = registry.submit("status", {}, handler)
    assert job.task is not None
    await job.task
    return job.events


def test_narrate_requires_cute() -> None:
    with pytest.raises(TypeError, match="cute"):
        narration.narrate("test_step", "The step runs.", story=STORY)  # type: ignore[call-arg]


def test_narrate_requires_story() -> None:
    with pytest.raises(TypeError, match="story"):
        narration.narrate("test_step", "The step runs.", cute=CUTE)  # type: ignore[call-arg]


def test_narrate_rejects_cute_as_positional() -> None:
    with pytest.raises(TypeError):
        narration.narrate("test_step", "The step runs.", CUTE, STORY)  # type: ignore[misc]


def test_narrate_event_fields(narration_actor: str) -> None:
    event = narrate_test(model="gemma-3-270m", percent=37.5)

    assert event["type"] == events.NARRATION
    assert event["actor"] == narration_actor
    assert event["action"] == "test_step"
    assert event["level"] == "info"
    assert event["human"] == "The test step is running."
    assert event["cute"] == CUTE
    assert event["story"] == STORY
    assert event["fields"] == {"model": "gemma-3-270m", "percent": 37.5}


@pytest.mark.parametrize("level", events.LEVELS)
def test_narrate_accepts_level(narration_actor: str, level: str) -> None:
    assert narrate_test(level=level)["level"] == level


@pytest.mark.parametrize("level", ["warning", "INFO", "fatal", ""])
def test_narrate_invalid_level_raises(narration_actor: str, level: str) -> None:
    with pytest.raises(ValueError, match="level"):
        narrate_test(level=level)


def test_narrate_truncates_cute_and_story(narration_actor: str) -> None:
    event = narration.narrate("test_step", "The step runs.", cute="🐝" * 400, story="s" * 400)

    assert len(event["cute"]) == narration.CUTE_MAX_CHARS
    assert len(event["story"]) == narration.STORY_MAX_CHARS


def test_narrate_outside_job_not_stored(narration_actor: str) -> None:
    event = narrate_test()

    assert "seq" not in event
    assert "job_id" not in event


def test_narrate_calls_listener(narration_actor: str) -> None:
    received: list[tuple[str, events.Event]] = []
    narration.add_listener(lambda job_id, event: received.append((job_id, event)))

    narrate_test()

    assert len(received) == 1
    assert received[0][0] == "-"
    assert received[0][1]["human"] == "The test step is running."


async def test_narrate_in_job_gets_seq_and_job_id(
    job_registry: JobRegistry, narration_actor: str
) -> None:
    async def narrate_twice() -> None:
        narrate_test("First step.")
        narrate_test("Second step.")

    log = await run_in_job(job_registry, narrate_twice)

    assert [event["seq"] for event in log[:2]] == [1, 2]
    assert [event["human"] for event in log[:2]] == ["First step.", "Second step."]
    assert log[0]["job_id"] == log[1]["job_id"]


async def test_narrate_listener_gets_job_id(
    job_registry: JobRegistry, narration_actor: str
) -> None:
    received: list[str] = []
    narration.add_listener(lambda job_id, event: received.append(job_id))

    async def narrate_once() -> None:
        narrate_test()

    log = await run_in_job(job_registry, narrate_once)

    assert received == [log[0]["job_id"]]


def test_narrate_redacts_bearer_in_human(narration_actor: str) -> None:
    event = narrate_test("Sent Authorization: Bearer abcDEF123456789xyz to the hive.")

    assert "abcDEF123456789xyz" not in event["human"]
    assert "Bearer [REDACTED]" in event["human"]


def test_narrate_redacts_cute_and_story(narration_actor: str) -> None:
    token = "hf_" + "Qw3rTy7uIoP1aSdFgHjK9l"
    event = narration.narrate(
        "test_step", "The step runs.", cute=f"🐝 token {token}", story=f'"{token}," said the hive.'
    )

    assert token not in event["cute"]
    assert token not in event["story"]


def test_narrate_redacts_fields(narration_actor: str) -> None:
    event = narrate_test(url="https://user:s3cretpass@mirror.example/models", nested={"a": ["x"]})

    assert "s3cretpass" not in event["fields"]["url"]
    assert event["fields"]["url"] == "https://user:[REDACTED]@mirror.example/models"
    assert event["fields"]["nested"] == {"a": ["x"]}


def test_narrate_redacts_registered_secret(narration_actor: str) -> None:
    secret = f"plain-{uuid.uuid4().hex}"
    register_secret(secret)

    event = narrate_test(f"Token {secret} was loaded.", token=secret)

    assert secret not in event["human"]
    assert event["fields"]["token"] == "[REDACTED]"


def test_emit_rejects_narration_type() -> None:
    with pytest.raises(ValueError, match="narrate"):
        narration.emit(events.NARRATION, human="x")


def test_emit_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="bogus"):
        narration.emit("bogus")


def test_emit_progress_gets_actor(narration_actor: str) -> None:
    event = narration.emit(events.PROGRESS, action="model_download_progress", done=1, total=2)

    assert event["actor"] == narration_actor


async def test_relay_keeps_actor_and_texts(
    job_registry: JobRegistry, narration_actor: str
) -> None:
    foreign = {
        "seq": 41,
        "job_id": "job-from-the-hive",
        "ts": "2026-01-01T00:00:00.000Z",
        "type": events.NARRATION,
        "actor": "rbee-hive",
        "action": "model_download_progress",
        "level": "info",
        "human": "Downloading gemma-3-270m: 37.5%.",
        "cute": "🐝 Carrying the model home!",
        "story": '"Nearly there," said the hive.',
        "fields": {"percent": 37.5},
    }

    async def relay_after_narration() -> None:
        narrate_test()
        narration.relay(foreign)

    log = await run_in_job(job_registry, relay_after_narration)
    relayed = log[1]

    assert relayed["seq"] == 2
    assert relayed["job_id"] == log[0]["job_id"]
    assert relayed["ts"] != foreign["ts"]
    assert relayed["actor"] == "rbee-hive"
    for key in ("action", "level", "human", "cute", "story", "fields"):
        assert relayed[key] == foreign[key], key


async def test_relay_token_takes_job_seq(job_registry: JobRegistry) -> None:
    foreign = {"seq": 9, "job_id": "job-from-the-worker", "ts": "x", "type": "token",
               "text": "Hello", "index": 8}

    async def relay_token() -> None:
        narration.relay(foreign)

    log = await run_in_job(job_registry, relay_token)

    assert log[0]["seq"] == 1
    assert log[0]["text"] == "Hello"
    assert log[0]["index"] == 8


def test_redact_bearer_token() -> None:
    text = redact_text("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig")

    assert text == "Authorization: Bearer [REDACTED]"


def test_redact_bearer_case_insensitive() -> None:
    assert "tok3nvalue99" not in redact_text("authorization: bearer tok3nvalue99")


def test_redact_hf_token() -> None:
    text = redact_text("HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123 set")

    assert text == "HF_TOKEN=[REDACTED] set"


def test_redact_url_password() -> None:
    text = redact_text("clone https://alice:hunter2@git.example/repo.git now")

    assert text == "clone https://alice:[REDACTED]@git.example/repo.git now"


def test_redact_url_without_password_unchanged() -> None:
    text = "fetch https://alice@git.example/repo.git and http://127.0.0.1:7833/v1"

    assert redact_text(text) == text


def test_redact_pem_private_key() -> None:
    key = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "b3BlbnNzaC1rZXk\nAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----"
    )
    text = redact_text(f"key:\n{key}\ndone")

    assert "b3BlbnNzaC1rZXk" not in text
    assert text == "key:\n[REDACTED PRIVATE KEY]\ndone"


def test_redact_registered_secret() -> None:
    secret = f"custom-{uuid.uuid4().hex}"
    register_secret(secret)

    assert redact_text(f"a {secret} b") == "a [REDACTED] b"


def test_redact_ignores_short_registered_value() -> None:
    register_secret("abc")

    assert redact_text("abc") == "abc"


def test_redact_ignores_none_registration() -> None:
    register_secret(None)

    assert redact_text("nothing to hide") == "nothing to hide"


def test_redact_plain_text_unchanged() -> None:
    text = "Downloading gemma-3-270m: 37.5% (95 MB of 253 MB)."

    assert redact_text(text) == text


def test_redact_value_recurses() -> None:
    token = "hf_" + "N0tARealTokenButLongEnough"
    value = {"outer": [token, {"inner": (token, 7)}], "count": 3, "flag": None}

    redacted = redact_value(value)

    assert redacted == {
        "outer": ["[REDACTED]", {"inner": ["[REDACTED]", 7]}],
        "count": 3,
        "flag": None,
    }
