"""Jobs: every operation runs as a job with a sequence-numbered event log.

A job starts at submission. Each event it emits is appended to its log with the next `seq`,
so a client that connects late or reconnects with `Last-Event-ID` sees every event exactly
once and in order. Finished jobs are kept up to a count and an age.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rbee_daemons import events
from rbee_daemons.errors import NotFoundError, RbeeError
from rbee_daemons.events import Event
from rbee_daemons.jobstore import SqliteJobStore
from rbee_daemons.narration import job_context
from rbee_daemons.redact import redact_text, redact_value

logger = logging.getLogger(__name__)

Handler = Callable[[], Awaitable[Any]]

SHUTDOWN_MESSAGE = "The daemon is shutting down."
# A subscriber that reconnects within this time keeps a cancel-on-disconnect job alive.
DISCONNECT_GRACE_SECONDS = 0.5


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


def new_job_id() -> str:
    return f"job-{uuid.uuid4()}"


@dataclass
class Job:
    """One operation's record and event log."""

    job_id: str
    operation: str
    payload: dict[str, Any]
    cancel_on_disconnect: bool = False
    state: JobState = JobState.QUEUED
    created_at: str = field(default_factory=events.utc_timestamp)
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    events: list[Event] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    subscribers: int = 0
    finished_monotonic: float | None = None
    store: SqliteJobStore | None = None
    # Jobs restored from the store load their events on first access.
    stored_event_count: int | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _cancel_message: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def emit(self, event: Event) -> Event:
        """Append `event` to the log with the next sequence number and wake subscribers."""
        if self.events and events.is_terminal(self.events[-1]):
            logger.warning("Dropped %s event for finished job %s", event.get("type"), self.job_id)
            return event
        stored = {
            "seq": len(self.events) + 1,
            "job_id": self.job_id,
            "ts": events.utc_timestamp(),
            **{k: v for k, v in event.items() if k not in ("seq", "job_id", "ts")},
        }
        self.events.append(stored)
        if self.store is not None:
            self.store.append_event(stored)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return stored

    async def follow(
        self, after_seq: int = 0, ping_interval: float = 15.0
    ) -> AsyncIterator[Event | None]:
        """Yield events with `seq > after_seq` until the terminal one.

        Yields `None` when nothing happened for `ping_interval` seconds, so the caller can
        keep an idle connection alive.
        """
        next_index = max(after_seq, 0)
        while True:
            while next_index < len(self.events):
                event = self.events[next_index]
                next_index += 1
                yield event
                if events.is_terminal(event):
                    return
            if self.events and events.is_terminal(self.events[-1]):
                # The client already has everything, terminal event included.
                return
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=ping_interval)
            except TimeoutError:
                yield None

    def cancel(self, message: str = "Cancelled by request.") -> bool:
        """Request cancellation; return False when the job had already finished."""
        if self.finished:
            return False
        if self._cancel_message is None:
            self._cancel_message = message
        if self.task is not None and not self.task.done():
            self.task.cancel()
        return True

    @property
    def cancelled_by_shutdown(self) -> bool:
        return self._cancel_message == SHUTDOWN_MESSAGE

    def summary(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "operation": self.operation,
            "state": self.state.value,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "events": len(self.events) if self.stored_event_count is None
            else self.stored_event_count,
        }

    def persist(self) -> None:
        if self.store is not None:
            self.store.save_job(self.summary(), self.payload)


class JobRegistry:
    """Registry of jobs, with bounded retention of finished ones.

    With a store, every job and event is also written to SQLite, and the jobs of an earlier
    run are restored at start-up. Jobs that were still running are marked failed.
    """

    def __init__(
        self,
        max_finished: int = 500,
        max_age_seconds: float = 3600.0,
        store: SqliteJobStore | None = None,
    ) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self.max_finished = max_finished
        self.max_age_seconds = max_age_seconds
        self.store = store
        if store is not None:
            self._restore(store)

    def _restore(self, store: SqliteJobStore) -> None:
        for record in store.load_jobs(self.max_finished):
            job = Job(
                job_id=record["job_id"],
                operation=record["operation"],
                payload=record["payload"],
                state=JobState(record["state"]),
                created_at=record["created_at"],
                started_at=record["started_at"],
                finished_at=record["finished_at"],
                error=record["error"],
                store=store,
                stored_event_count=record["event_count"],
                finished_monotonic=_monotonic_of(record["finished_at"]),
            )
            self._jobs[job.job_id] = job
            if not job.finished:
                self._load_events(job)
                self._fail(job, "The queen restarted while this job was running.",
                           "queen_restarted")

    def _load_events(self, job: Job) -> None:
        if job.stored_event_count is not None and job.store is not None:
            job.events = job.store.load_events(job.job_id)
            job.stored_event_count = None

    def submit(
        self,
        operation: str,
        payload: dict[str, Any],
        handler: Handler,
        *,
        cancel_on_disconnect: bool = False,
        persist: bool = True,
    ) -> Job:
        """Create a job and start running `handler` inside its narration context.

        With `persist` false the job stays out of the store, so a restart does not restore it.
        """
        self._prune()
        job = Job(
            job_id=new_job_id(),
            operation=operation,
            payload=redact_value(payload),
            cancel_on_disconnect=cancel_on_disconnect,
            store=self.store if persist else None,
        )
        self._jobs[job.job_id] = job
        job.persist()
        job.task = asyncio.create_task(self._run(job, handler), name=job.job_id)
        job.task.add_done_callback(lambda task: self._finish_if_never_started(job, task))
        return job

    def _finish_if_never_started(self, job: Job, task: asyncio.Task[None]) -> None:
        # A task cancelled before its first step never runs _run, so it records nothing.
        if task.cancelled() and not job.finished:
            message = job._cancel_message or "Cancelled."
            self._finish(job, JobState.CANCELLED, {"type": events.CANCELLED, "message": message})

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"Job {job_id!r} was not found; list jobs with GET /v1/jobs.")
        self._load_events(job)
        return job

    def list(self) -> list[Job]:
        return list(reversed(self._jobs.values()))

    async def cancel_all(self) -> None:
        """Cancel every unfinished job and wait (up to 5 s) for them to record it."""
        tasks = []
        for job in self._jobs.values():
            if job.cancel(SHUTDOWN_MESSAGE) and job.task is not None:
                tasks.append(job.task)
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def shutdown(self) -> None:
        """Cancel every unfinished job, then close the store."""
        await self.cancel_all()
        if self.store is not None:
            store, self.store = self.store, None
            await asyncio.to_thread(store.close)

    def subscriber_joined(self, job: Job) -> None:
        job.subscribers += 1

    def subscriber_left(self, job: Job) -> None:
        job.subscribers -= 1
        if job.cancel_on_disconnect and job.subscribers == 0 and not job.finished:
            asyncio.get_running_loop().call_later(
                DISCONNECT_GRACE_SECONDS, self._cancel_if_abandoned, job
            )

    def _cancel_if_abandoned(self, job: Job) -> None:
        if job.subscribers == 0 and not job.finished:
            logger.info("Cancelling %s: its last subscriber disconnected", job.job_id)
            job.cancel("Cancelled because the client disconnected.")

    async def _run(self, job: Job, handler: Handler) -> None:
        with job_context(job):
            job.state = JobState.RUNNING
            job.started_at = events.utc_timestamp()
            job.persist()
            try:
                result = await handler()
            except asyncio.CancelledError:
                message = job._cancel_message or "Cancelled."
                cancelled = {"type": events.CANCELLED, "message": message}
                self._finish(job, JobState.CANCELLED, cancelled)
            except RbeeError as exc:
                # Jobs without a subscriber, such as a download resumed at start-up, would
                # otherwise fail without a trace in the daemon's log.
                logger.warning("Job %s (%s) failed: %s", job.job_id, job.operation,
                               redact_text(exc.message))
                self._fail(job, exc.message, exc.code)
            except Exception as exc:
                logger.exception("Job %s (%s) failed unexpectedly", job.job_id, job.operation)
                self._fail(job, f"Internal error in {job.operation}: {exc}", "internal_error")
            else:
                if result is not None:
                    job.emit({"type": events.DATA, "data": result})
                self._finish(job, JobState.COMPLETED, {"type": events.DONE})

    def _fail(self, job: Job, message: str, code: str) -> None:
        message = redact_text(message)
        job.error = message
        self._finish(job, JobState.FAILED, {"type": events.ERROR, "message": message, "code": code})

    def _finish(self, job: Job, state: JobState, terminal: Event) -> None:
        job.emit(terminal)
        job.state = state
        job.finished_at = events.utc_timestamp()
        job.finished_monotonic = time.monotonic()
        job.persist()

    def _prune(self) -> None:
        now = time.monotonic()
        finished = [job for job in self._jobs.values() if job.finished]
        excess = len(finished) - self.max_finished
        removed = []
        for job in finished:
            too_old = now - (job.finished_monotonic or now) > self.max_age_seconds
            if excess > 0 or too_old:
                del self._jobs[job.job_id]
                removed.append(job.job_id)
                excess -= 1
        if self.store is not None:
            self.store.delete_jobs(removed)


def _monotonic_of(timestamp: str | None) -> float:
    """Map a stored UTC timestamp onto this process's monotonic clock, for retention by age."""
    if timestamp is None:
        return time.monotonic()
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.monotonic()
    return time.monotonic() - max(time.time() - then, 0.0)
