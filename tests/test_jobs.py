"""Unit tests of JobRegistry and Job: event log, follow, cancel, errors and retention."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rbee_daemons import events, jobs, narration
from rbee_daemons.errors import ModelError, NotFoundError
from rbee_daemons.jobs import Job, JobRegistry, JobState

TOKEN_COUNT = 4


async def emit_tokens() -> dict[str, Any]:
    for index in range(TOKEN_COUNT):
        narration.emit(events.TOKEN, text=f"t{index}", index=index)
    return {"tokens": TOKEN_COUNT}


async def return_nothing() -> None:
    return None


async def wait_for_job(job: Job) -> None:
    """Wait until the job's task is done, without raising if the task itself was cancelled."""
    assert job.task is not None
    await asyncio.wait([job.task])


async def run_to_end(registry: JobRegistry, handler: Any) -> Job:
    job = registry.submit("status", {}, handler)
    await wait_for_job(job)
    return job


async def collect(job: Job, after_seq: int = 0) -> list[events.Event]:
    collected = []
    async for event in job.follow(after_seq, ping_interval=60):
        assert event is not None
        collected.append(event)
    return collected


def types_of(log: list[events.Event]) -> list[str]:
    return [event["type"] for event in log]


async def test_job_id_format(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, return_nothing)

    assert job.job_id.startswith("job-")
    assert len(job.job_id) == len("job-") + 36


async def test_job_seq_starts_at_one(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    assert job.events[0]["seq"] == 1


async def test_job_seq_increases_by_one(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    assert [event["seq"] for event in job.events] == list(range(1, len(job.events) + 1))


async def test_job_events_carry_job_id_and_ts(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    assert {event["job_id"] for event in job.events} == {job.job_id}
    assert all(event["ts"].endswith("Z") for event in job.events)


async def test_job_completed_state_and_times(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    assert job.state is JobState.COMPLETED
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.error is None


async def test_job_result_is_data_before_done(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    assert types_of(job.events[-2:]) == [events.DATA, events.DONE]
    assert job.events[-2]["data"] == {"tokens": TOKEN_COUNT}


async def test_job_none_result_emits_no_data(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, return_nothing)

    assert types_of(job.events) == [events.DONE]


async def test_job_follow_replays_after_seq(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    replayed = await collect(job, after_seq=2)

    assert [event["seq"] for event in replayed] == list(range(3, len(job.events) + 1))
    assert replayed == job.events[2:]


async def test_job_follow_from_zero_replays_all(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    assert await collect(job) == job.events


async def test_job_follow_negative_seq_replays_all(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    assert await collect(job, after_seq=-5) == job.events


async def test_job_follow_finished_from_last_seq(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    assert await collect(job, after_seq=len(job.events)) == []


async def test_job_follow_finished_beyond_last_seq(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    assert await collect(job, after_seq=len(job.events) + 100) == []


async def test_job_follow_live_sees_each_event_once(job_registry: JobRegistry) -> None:
    release = asyncio.Event()

    async def emit_after_release() -> str:
        narration.emit(events.TOKEN, text="before", index=0)
        await release.wait()
        narration.emit(events.TOKEN, text="after", index=1)
        return "result"

    job = job_registry.submit("status", {}, emit_after_release)
    stream = job.follow(0, ping_interval=60)
    # The first event arrives while the handler still waits, so the rest is followed live.
    followed = [await anext(stream)]
    release.set()
    followed.extend([event async for event in stream])

    assert followed == job.events
    assert types_of(followed) == [events.TOKEN, events.TOKEN, events.DATA, events.DONE]


async def test_job_follow_stops_after_terminal(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)

    followed = await collect(job)

    assert events.is_terminal(followed[-1])
    assert sum(events.is_terminal(event) for event in followed) == 1


async def test_job_follow_yields_none_when_idle(job_registry: JobRegistry) -> None:
    release = asyncio.Event()
    job = job_registry.submit("status", {}, release.wait)
    stream = job.follow(0, ping_interval=0.01)

    first = await anext(stream)
    await stream.aclose()
    release.set()

    assert first is None


async def test_job_cancel_running_ends_cancelled(job_registry: JobRegistry) -> None:
    started = asyncio.Event()

    async def wait_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    job = job_registry.submit("status", {}, wait_forever)
    await started.wait()

    assert job.cancel() is True
    await wait_for_job(job)

    assert job.state is JobState.CANCELLED
    assert job.events[-1]["type"] == events.CANCELLED
    assert job.events[-1]["message"] == "Cancelled by request."
    assert job.finished_at is not None


async def test_job_cancel_keeps_first_message(job_registry: JobRegistry) -> None:
    started = asyncio.Event()

    async def wait_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    job = job_registry.submit("status", {}, wait_forever)
    await started.wait()
    job.cancel("First reason.")
    job.cancel("Second reason.")
    await wait_for_job(job)

    assert job.events[-1]["message"] == "First reason."


async def test_job_cancel_before_start_ends_cancelled(job_registry: JobRegistry) -> None:
    job = job_registry.submit("status", {}, return_nothing)
    job.cancel()
    await wait_for_job(job)

    assert job.state is JobState.CANCELLED
    assert types_of(job.events) == [events.CANCELLED]


async def test_job_cancel_finished_returns_false(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)
    log_before = list(job.events)

    assert job.cancel() is False
    assert job.state is JobState.COMPLETED
    assert job.events == log_before


async def test_job_rbee_error_ends_with_error(job_registry: JobRegistry) -> None:
    async def fail() -> None:
        raise ModelError("Model 'nope' is not in the catalog.", code="model_missing")

    job = await run_to_end(job_registry, fail)
    terminal = job.events[-1]

    assert terminal["type"] == events.ERROR
    assert terminal["message"] == "Model 'nope' is not in the catalog."
    assert terminal["code"] == "model_missing"
    assert job.state is JobState.FAILED
    assert job.error == "Model 'nope' is not in the catalog."


async def test_job_rbee_error_default_code(job_registry: JobRegistry) -> None:
    async def fail() -> None:
        raise NotFoundError("Worker 'w1' was not found.")

    job = await run_to_end(job_registry, fail)

    assert job.events[-1]["code"] == "not_found"


async def test_job_unexpected_error_is_internal(job_registry: JobRegistry) -> None:
    async def crash() -> None:
        raise KeyError("missing-key")

    job = await run_to_end(job_registry, crash)
    terminal = job.events[-1]

    assert terminal["type"] == events.ERROR
    assert terminal["message"].startswith("Internal error in status: ")
    assert "missing-key" in terminal["message"]
    assert terminal["code"] == "internal_error"
    assert job.state is JobState.FAILED


async def test_job_error_message_is_redacted(job_registry: JobRegistry) -> None:
    token = "hf_" + "A1b2C3d4E5f6G7h8I9j0K1"

    async def fail() -> None:
        raise ModelError(f"Download failed with token {token}.")

    job = await run_to_end(job_registry, fail)

    assert token not in job.events[-1]["message"]
    assert token not in (job.error or "")


async def test_job_payload_is_redacted(job_registry: JobRegistry) -> None:
    token = "hf_" + "Z9y8X7w6V5u4T3s2R1q0P9"

    job = job_registry.submit("status", {"note": f"use {token}"}, return_nothing)
    await wait_for_job(job)

    assert token not in job.payload["note"]


async def test_job_emit_after_terminal_is_dropped(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)
    log_length = len(job.events)

    job.emit({"type": events.TOKEN, "text": "late", "index": 99})

    assert len(job.events) == log_length
    assert job.events[-1]["type"] == events.DONE


async def test_job_narrate_lands_in_job_log(
    job_registry: JobRegistry, narration_actor: str
) -> None:
    async def narrate_once() -> None:
        narration.narrate(
            "test_step",
            "The test step is running.",
            cute="🐝 Buzzing through the test step!",
            story='"Is the step running?" asked the test. "It is," said the job.',
        )

    job = await run_to_end(job_registry, narrate_once)
    first = job.events[0]

    assert first["type"] == events.NARRATION
    assert first["job_id"] == job.job_id
    assert first["seq"] == 1
    assert first["actor"] == narration_actor


async def test_job_narration_stays_in_own_job(
    job_registry: JobRegistry, narration_actor: str
) -> None:
    both_started = asyncio.Barrier(2)

    def make_handler(name: str) -> Any:
        async def handler() -> None:
            await both_started.wait()
            narration.narrate(
                "test_step",
                f"Job {name} is running.",
                cute=f"🐝 Job {name} is buzzing!",
                story=f'"Which job is this?" asked the test. "{name}," said the job.',
            )

        return handler

    first = job_registry.submit("status", {}, make_handler("first"))
    second = job_registry.submit("status", {}, make_handler("second"))
    await wait_for_job(first)
    await wait_for_job(second)

    assert [e["human"] for e in first.events if e["type"] == events.NARRATION] == [
        "Job first is running."
    ]
    assert [e["human"] for e in second.events if e["type"] == events.NARRATION] == [
        "Job second is running."
    ]


async def test_job_context_is_reset_after_job(job_registry: JobRegistry) -> None:
    await run_to_end(job_registry, emit_tokens)

    assert narration.current_job_id() is None


async def test_registry_get_unknown_raises(job_registry: JobRegistry) -> None:
    with pytest.raises(NotFoundError, match="job-unknown"):
        job_registry.get("job-unknown")


async def test_registry_list_newest_first(job_registry: JobRegistry) -> None:
    older = await run_to_end(job_registry, return_nothing)
    newer = await run_to_end(job_registry, return_nothing)

    assert [job.job_id for job in job_registry.list()] == [newer.job_id, older.job_id]


async def test_registry_prunes_beyond_max_finished() -> None:
    registry = JobRegistry(max_finished=2)
    finished = [await run_to_end(registry, return_nothing) for _ in range(3)]

    latest = await run_to_end(registry, return_nothing)
    kept_ids = {job.job_id for job in registry.list()}

    assert finished[0].job_id not in kept_ids
    assert kept_ids == {finished[1].job_id, finished[2].job_id, latest.job_id}
    await registry.shutdown()


async def test_registry_pruned_job_not_found() -> None:
    registry = JobRegistry(max_finished=1)
    oldest = await run_to_end(registry, return_nothing)
    await run_to_end(registry, return_nothing)
    await run_to_end(registry, return_nothing)

    with pytest.raises(NotFoundError):
        registry.get(oldest.job_id)
    await registry.shutdown()


async def test_registry_keeps_running_jobs_when_pruning() -> None:
    registry = JobRegistry(max_finished=0)
    release = asyncio.Event()
    running = registry.submit("status", {}, release.wait)
    await asyncio.sleep(0)

    await run_to_end(registry, return_nothing)
    await run_to_end(registry, return_nothing)

    assert registry.get(running.job_id) is running
    release.set()
    await registry.shutdown()


async def test_registry_prunes_by_age() -> None:
    registry = JobRegistry(max_age_seconds=60)
    old = await run_to_end(registry, return_nothing)
    recent = await run_to_end(registry, return_nothing)
    assert old.finished_monotonic is not None
    old.finished_monotonic -= 3600

    await run_to_end(registry, return_nothing)
    kept_ids = {job.job_id for job in registry.list()}

    assert old.job_id not in kept_ids
    assert recent.job_id in kept_ids
    await registry.shutdown()


async def test_registry_shutdown_cancels_running(job_registry: JobRegistry) -> None:
    started = asyncio.Event()

    async def wait_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    job = job_registry.submit("status", {}, wait_forever)
    await started.wait()
    await job_registry.shutdown()

    assert job.state is JobState.CANCELLED
    assert job.events[-1]["message"] == "The daemon is shutting down."


async def start_abandonable_job(registry: JobRegistry) -> tuple[Job, asyncio.Event]:
    release = asyncio.Event()
    started = asyncio.Event()

    async def wait_for_release() -> None:
        started.set()
        await release.wait()

    job = registry.submit("infer", {}, wait_for_release, cancel_on_disconnect=True)
    await started.wait()
    return job, release


async def settle_loop() -> None:
    """Let callbacks scheduled with a zero delay run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_disconnect_last_subscriber_cancels(
    job_registry: JobRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "DISCONNECT_GRACE_SECONDS", 0)
    job, _ = await start_abandonable_job(job_registry)

    job_registry.subscriber_joined(job)
    job_registry.subscriber_left(job)
    await wait_for_job(job)

    assert job.state is JobState.CANCELLED
    assert job.events[-1]["type"] == events.CANCELLED
    assert job.events[-1]["message"] == "Cancelled because the client disconnected."


async def test_disconnect_other_subscriber_keeps_job(
    job_registry: JobRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "DISCONNECT_GRACE_SECONDS", 0)
    job, release = await start_abandonable_job(job_registry)

    job_registry.subscriber_joined(job)
    job_registry.subscriber_joined(job)
    job_registry.subscriber_left(job)
    await settle_loop()
    release.set()
    await wait_for_job(job)

    assert job.state is JobState.COMPLETED


async def test_disconnect_rejoin_in_grace_keeps_job(
    job_registry: JobRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "DISCONNECT_GRACE_SECONDS", 0)
    job, release = await start_abandonable_job(job_registry)

    job_registry.subscriber_joined(job)
    job_registry.subscriber_left(job)
    job_registry.subscriber_joined(job)
    await settle_loop()
    release.set()
    await wait_for_job(job)

    assert job.state is JobState.COMPLETED


async def test_disconnect_ignored_without_flag(
    job_registry: JobRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "DISCONNECT_GRACE_SECONDS", 0)
    release = asyncio.Event()
    job = job_registry.submit("model_download", {}, release.wait)
    await asyncio.sleep(0)

    job_registry.subscriber_joined(job)
    job_registry.subscriber_left(job)
    await settle_loop()
    release.set()
    await wait_for_job(job)

    assert job.state is JobState.COMPLETED


async def test_job_summary_fields(job_registry: JobRegistry) -> None:
    job = await run_to_end(job_registry, emit_tokens)
    summary = job.summary()

    assert summary["job_id"] == job.job_id
    assert summary["operation"] == "status"
    assert summary["state"] == "completed"
    assert summary["events"] == len(job.events)
