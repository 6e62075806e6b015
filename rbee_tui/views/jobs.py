"""The jobs view: recent jobs with state and duration, the selected job's narration, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from rbee_tui.live import format as fmt
from rbee_tui.live.narration import NarrationFilter
from rbee_tui.views.base import TableView
from rbee_tui.widgets.narration_log import NarrationLog

ACTIVE_STATES = ("queued", "running")


def job_duration(job: dict[str, Any]) -> str:
    """Seconds from start to finish, or to now while the job runs."""
    start = _parse(job.get("started_at") or job.get("created_at"))
    if start is None:
        return "-"
    end = _parse(job.get("finished_at")) or datetime.now(start.tzinfo)
    return fmt.duration((end - start).total_seconds())


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class JobsView(TableView):
    """Recent jobs at the queen; the log below shows the selected job's narration."""

    key = "jobs"
    title = "Jobs"
    COLUMNS = ("JOB", "OPERATION", "STATE", "DURATION", "ERROR")
    MUTATING = frozenset({"cancel_job"})
    BINDINGS: ClassVar = [
        Binding("c", "cancel_job", "Cancel", id="jobs.cancel"),
        Binding("enter", "show_job", "Narration", id="jobs.show", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield NarrationLog(capacity=2000, id="job-narration")

    def refresh_rows(self) -> None:
        rows = [(str(job["job_id"]), (
            str(job["job_id"])[:12], job.get("operation", "-"), job.get("state", "-"),
            job_duration(job), str(job.get("error") or "")[:60]))
            for job in self.rbee.jobs]
        self.fill(rows)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_job(str(event.row_key.value))

    def show_job(self, job_id: str) -> None:
        log = self.query_one("#job-narration", NarrationLog)
        if log.narration_filter.job_id == job_id:
            return
        log.show([], NarrationFilter(job_id=job_id))
        self.rbee.replay_job(job_id)

    def add_replayed(self, job_id: str, batch: list[dict[str, Any]]) -> None:
        """Append narration read back from job `job_id` if that job is still selected."""
        log = self.query_one("#job-narration", NarrationLog)
        if log.narration_filter.job_id == job_id:
            log.add_events(batch)

    def action_show_job(self) -> None:
        if (job_id := self.selected_key()) is not None:
            self.show_job(job_id)

    def action_cancel_job(self) -> None:
        job_id = self.selected_key()
        if job_id is None:
            return
        self.rbee.confirm(f"Cancel job {job_id}?", lambda: self.rbee.cancel_job(job_id),
                          "Cancel job")
