"""The TUI's live side: the heartbeat stream, job polling and streams, and job operations.

`RbeeApp` builds on this class; it is split out so each file stays about one concern.
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from textual import work
from textual.app import App
from textual.message import Message
from textual.reactive import reactive

from rbee_daemons.daemon import is_loopback
from rbee_daemons.errors import RbeeError
from rbee_tui.cli import cluster as cli_cluster
from rbee_tui.cli.keeper import Keeper
from rbee_tui.live import hive_control
from rbee_tui.live.cluster import ClusterState
from rbee_tui.live.narration import NarrationFeed
from rbee_tui.live.queen import CONNECTED, DISCONNECTED, AsyncQueen

JOBS_POLL_SECONDS = 2.0
# At most this many jobs that others started are followed at once for the narration feed.
MAX_FOLLOWED_JOBS = 32


class QueenConnected(Message):
    """The heartbeat stream is up and its snapshot applied."""


class QueenDisconnected(Message):
    """The heartbeat stream dropped; the app keeps retrying with backoff."""

    def __init__(self, error: str) -> None:
        self.error = error
        super().__init__()


class JobFinished(Message):
    """A job the TUI followed reached its terminal event."""

    def __init__(self, job_id: str, event: dict[str, Any]) -> None:
        self.job_id = job_id
        self.event = event
        super().__init__()


class LiveApp(App[None]):
    """Keeps the cluster state, job list and narration feed current from the queen."""

    connected: reactive[bool] = reactive(False)

    def __init__(self, queen_url: str, *, read_only: bool = False,
                 start_daemons: bool = True) -> None:
        super().__init__()
        self.queen_url = queen_url.rstrip("/")
        self.read_only = read_only
        self.start_daemons = start_daemons
        self.queen = AsyncQueen(self.queen_url, token=cli_cluster.current_token())
        self.cluster = ClusterState()
        self.feed = NarrationFeed()
        self.jobs: list[dict[str, Any]] = []
        self.downloads: dict[str, dict[str, Any]] = {}
        self.token_rates: dict[str, float] = {}
        self.followed: set[str] = set()
        self.hive_aliases: dict[str, str] = {}
        self.configured_hosts: dict[str, Any] = {}
        self.chat_job_id: str | None = None
        self.finished_jobs: dict[str, dict[str, Any]] = {}
        # The hive each submitted job was sent to, for progress events that do not name it.
        self.job_hives: dict[str, str] = {}
        # Events wait here until the next frame's flush: one batched write per frame.
        self.pending_narration: deque[dict[str, Any]] = deque()
        self.state_dirty = True

    # Hooks the UI class fills in.
    def narration_arrived(self, batch: list[dict[str, Any]]) -> None:
        """Show a batch of narration events."""

    def state_changed(self) -> None:
        """Redraw the views from the cluster state, job list and downloads."""

    def tokens_arrived(self, text: str, count: int) -> None:
        """Show generated tokens of the chat job."""

    def chat_finished(self, outcome: str) -> None:
        """Show how the chat job ended."""

    def confirm(self, question: str, on_yes: Callable[[], Any], yes_label: str = "Yes") -> None:
        on_yes()

    # Connection and streams.
    def start_live_data(self) -> None:
        self.refresh_configuration()
        self.set_interval(1 / 30, self.flush_frame, name="frame-flush")
        self.set_interval(JOBS_POLL_SECONDS, self.poll_jobs, name="jobs-poll")
        self.check_queen()

    async def on_unmount(self) -> None:
        """Stop the streams before closing their HTTP client, so no socket is left open."""
        self.workers.cancel_all()
        await self.queen.aclose()

    @work(group="connect", exclusive=True)
    async def check_queen(self) -> None:
        """Offer to start the local queen and hive when nothing responds at the queen URL."""
        if await self.queen.is_healthy():
            self.follow_heartbeats()
            return
        host = urlsplit(self.queen_url).hostname or ""
        if self.start_daemons and is_loopback(host) and not self.read_only:
            self.confirm(f"Nothing responds at {self.queen_url}. Start the local queen and "
                         "hive on this machine?", self.start_local_cluster, "Start")
        else:
            self.notify(f"Nothing responds at {self.queen_url}; retrying in the background.",
                        severity="warning")
        self.follow_heartbeats()

    @work(group="daemons", thread=True, exclusive=True)
    def start_local_cluster(self) -> None:
        args = argparse.Namespace(queen_url=self.queen_url, quiet=True, json=False,
                                  narration="human")
        try:
            Keeper(args).ensure_queen()
        except RbeeError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=10)
            return
        self.queen.set_token(cli_cluster.current_token())
        self.call_from_thread(self.notify, "Started the local queen and hive.")
        self.call_from_thread(self.refresh_configuration)

    @work(group="heartbeats", exclusive=True)
    async def follow_heartbeats(self) -> None:
        async for event in self.queen.heartbeat_events():
            kind = event.get("type")
            if kind == CONNECTED:
                self.post_message(QueenConnected())
            elif kind == DISCONNECTED:
                self.post_message(QueenDisconnected(str(event.get("error"))))
            elif self.cluster.apply(event):
                self.state_dirty = True

    def on_queen_connected(self, message: QueenConnected) -> None:
        self.connected = True
        self.refresh_configuration()
        self.poll_jobs()

    def on_queen_disconnected(self, message: QueenDisconnected) -> None:
        if self.connected:
            self.notify(f"Lost the queen at {self.queen_url}: {message.error}; reconnecting.",
                        severity="warning")
        self.connected = False

    def refresh_configuration(self) -> None:
        """Reload hives.conf and the alias map. An invalid hives.conf shows as a notification."""
        try:
            self.configured_hosts = dict(hive_control.configured_hosts())
            self.hive_aliases = hive_control.aliases_by_hive_id()
        except RbeeError as exc:
            self.notify(str(exc), severity="error")
        self.state_dirty = True

    def flush_frame(self) -> None:
        """Write the narration that arrived since the last frame and redraw changed views."""
        if self.pending_narration:
            batch = list(self.pending_narration)
            self.pending_narration.clear()
            self.feed.extend(batch)
            self.narration_arrived(batch)
        if self.state_dirty:
            self.state_dirty = False
            self.state_changed()

    @work(group="jobs-poll", exclusive=True)
    async def poll_jobs(self) -> None:
        """Refresh the job list and follow running jobs so their narration reaches the feed."""
        if not self.connected:
            return
        try:
            self.jobs = await self.queen.jobs()
        except RbeeError:
            return
        self.state_dirty = True
        for job in self.jobs:
            job_id = str(job["job_id"])
            active = job.get("state") in ("queued", "running")
            if active and job_id not in self.followed and len(self.followed) < MAX_FOLLOWED_JOBS:
                self.follow_job(job_id)

    @work(group="job-streams")
    async def follow_job(self, job_id: str) -> None:
        """Stream one job's events into the feed until it ends."""
        self.followed.add(job_id)
        try:
            async for event in self.queen.job_events(job_id):
                self.handle_job_event(job_id, event)
        except RbeeError as exc:
            self.notify(f"Could not follow job {job_id}: {exc}", severity="error")
        finally:
            self.followed.discard(job_id)

    def handle_job_event(self, job_id: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "narration":
            self.pending_narration.append(event)
        elif kind == "progress":
            self._record_progress(job_id, event)
        elif kind == "token" and job_id == self.chat_job_id:
            self.tokens_arrived(str(event.get("text", "")), 1)
        elif kind == "data":
            self._apply_result(event.get("data"))
        elif kind in ("done", "error", "cancelled"):
            self.post_message(JobFinished(job_id, event))

    def _record_progress(self, job_id: str, event: dict[str, Any]) -> None:
        """Keep the latest download progress per model id; the hive sends it twice a second."""
        fields = dict(event.get("fields") or {})
        model = str(fields.get("model") or fields.get("id") or job_id)
        known = self.downloads.get(model, {})
        hive_id = fields.get("hive_id") or known.get("hive_id") or self.job_hives.get(job_id)
        self.downloads[model] = {**known, **fields, "hive_id": hive_id}
        self.state_dirty = True

    def _apply_result(self, data: Any) -> None:
        """Apply a job's `data` result: a hive's model list or one model's catalog entry."""
        if not isinstance(data, dict) or not data.get("hive_id"):
            return
        hive_id = str(data["hive_id"])
        if isinstance(data.get("models"), list):
            self.cluster.set_models(hive_id, data["models"])
        elif isinstance(data.get("id"), str) and "source" in data:
            self.cluster.set_model(hive_id, data)
        elif data.get("state") == "deleted" and isinstance(data.get("id"), str):
            self.cluster.models.pop((hive_id, data["id"]), None)
            self.downloads.pop(data["id"], None)
        else:
            return
        self.state_dirty = True

    def on_job_finished(self, message: JobFinished) -> None:
        event = message.event
        self.finished_jobs[message.job_id] = event
        kind = str(event.get("type"))
        if message.job_id == self.chat_job_id:
            self.chat_finished({"done": "done"}.get(kind, f"{kind}: {event.get('message')}"))
            self.chat_job_id = None
        elif kind == "error":
            self.notify(f"Job {message.job_id} failed: {event.get('message')}",
                        severity="error", timeout=8)
        self.poll_jobs()

    # Operations the views start.
    def default_hive(self) -> dict[str, str]:
        """Return `{"hive_id": ...}` when exactly one hive is online, else an empty dict."""
        online = [hive_id for hive_id, hive in self.cluster.hives.items()
                  if hive.get("state") == "online"]
        return {"hive_id": online[0]} if len(online) == 1 else {}

    def run_operation(self, operation: dict[str, Any]) -> None:
        if self.read_only:
            self.notify("Read-only mode: actions are disabled.", severity="warning")
            return
        self.submit_and_follow(operation)

    @work(group="operations")
    async def submit_and_follow(self, operation: dict[str, Any]) -> str | None:
        """Submit a job and follow it. A rejected job shows as an error notification."""
        try:
            job_id = await self.queen.submit(operation)
        except RbeeError as exc:
            self.notify(f"{operation['operation']} was rejected: {exc}", severity="error",
                        timeout=8)
            return None
        self.notify(f"Started {operation['operation']} as job {job_id}.")
        if operation.get("hive_id"):
            self.job_hives[job_id] = str(operation["hive_id"])
        self.follow_job(job_id)
        return job_id

    def download_model(self, ref: str) -> None:
        self.run_operation({"operation": "model_download", "model": ref, **self.default_hive()})

    @work(group="operations")
    async def restart_worker(self, worker: dict[str, Any]) -> None:
        """Stop a worker, then spawn one for the same model on the same hive."""
        hive_id = str(worker["hive_id"])
        try:
            job_id = await self.queen.submit({"operation": "worker_stop", "hive_id": hive_id,
                                              "id": str(worker["worker_id"])})
            async for _ in self.queen.job_events(job_id):
                pass
            self.run_operation({"operation": "worker_spawn", "hive_id": hive_id,
                                "model": str(worker.get("model"))})
        except RbeeError as exc:
            self.notify(f"Restarting worker {worker['worker_id']} failed: {exc}",
                        severity="error")

    @work(group="chat", exclusive=True)
    async def start_infer(self, model: str, prompt: str | None, max_tokens: int,
                          messages: list[dict[str, str]] | None = None) -> None:
        """Submit an infer job: a completion of `prompt`, or a reply to `messages`."""
        operation: dict[str, Any] = {"operation": "infer", "model": model,
                                     "max_tokens": max_tokens}
        if messages is not None:
            operation["messages"] = messages
        else:
            operation["prompt"] = prompt
        try:
            self.chat_job_id = await self.queen.submit(operation)
        except RbeeError as exc:
            self.chat_finished(f"rejected: {exc}")
            return
        self.follow_job(self.chat_job_id)

    def stop_infer(self) -> None:
        if self.chat_job_id is not None:
            self.cancel_job(self.chat_job_id)

    @work(group="operations")
    async def cancel_job(self, job_id: str) -> None:
        try:
            state = await self.queen.cancel(job_id)
        except RbeeError as exc:
            self.notify(f"Could not cancel job {job_id}: {exc}", severity="error")
            return
        self.notify(f"Cancelled job {job_id} ({state}).")

    @work(group="job-replay", exclusive=True)
    async def replay_job(self, job_id: str) -> None:
        """Read a job's narration from its first event and hand it to `job_replayed`."""
        batch: list[dict[str, Any]] = []
        try:
            async for event in self.queen.job_events(job_id):
                if event.get("type") == "narration":
                    batch.append(event)
                    if len(batch) % 64 == 0:
                        self.job_replayed(job_id, batch)
                        batch = []
        except RbeeError as exc:
            self.notify(f"Could not read job {job_id}: {exc}", severity="error")
        self.job_replayed(job_id, batch)

    def job_replayed(self, job_id: str, batch: list[dict[str, Any]]) -> None:
        """Show narration read back from a job's log."""

    @work(group="hive-actions", thread=True)
    def run_hive_action(self, action: str, alias: str) -> None:
        """Run a blocking hive action (start, stop, install, status) off the event loop."""
        if self.read_only and action != "status":
            self.call_from_thread(self.notify, "Read-only mode: actions are disabled.")
            return
        functions: dict[str, Callable[[], str]] = {
            "start": lambda: hive_control.start(alias, self.queen_url),
            "stop": lambda: hive_control.stop(alias, self.queen_url),
            "install": lambda: hive_control.install(alias),
            "status": lambda: hive_control.status(alias, self.queen_url),
        }
        try:
            text = functions[action]()
        except RbeeError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=10)
            return
        self.call_from_thread(self.notify, text)
        self.call_from_thread(self.refresh_configuration)
