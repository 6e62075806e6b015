"""Download progress on stderr: a `rich` bar with rate and ETA on a terminal, else plain lines."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rbee_tui.cli.render import sanitize

# Field names a `progress` event may use for bytes done and total; the first match wins.
# NOTE: the hive's download events are not final yet, so several spellings are accepted.
DONE_KEYS = ("bytes_done", "done_bytes", "downloaded_bytes", "done", "bytes")
TOTAL_KEYS = ("bytes_total", "total_bytes", "total", "size")
# Plain-line mode prints at most one line per interval, so logs stay short.
PLAIN_INTERVAL_SECONDS = 2.0


def _first_number(fields: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = fields.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def progress_fields(event: dict[str, Any]) -> dict[str, Any]:
    fields = event.get("fields")
    merged = dict(fields) if isinstance(fields, dict) else {}
    merged.update({key: value for key, value in event.items() if key not in merged})
    return merged


class ProgressView:
    """Shows `progress` events of one job; call close() when the job ends."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_plain = 0.0

    def update(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        fields = progress_fields(event)
        done = _first_number(fields, DONE_KEYS) or 0.0
        total = _first_number(fields, TOTAL_KEYS)
        label = sanitize(str(fields.get("model") or fields.get("action") or "progress"),
                         keep_newlines=False)
        if self.tty:
            self._update_bar(label, done, total)
        else:
            self._print_line(label, done, total, fields)

    def _update_bar(self, label: str, done: float, total: float | None) -> None:
        # rich comes with Textual but is imported here only, so the CLI stays free of Textual.
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        if self._bar is None:
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(),
                console=Console(file=self.stream), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(escape(label), total=total)
        self._bar.update(self._task, completed=done, total=total)

    def _print_line(self, label: str, done: float, total: float | None,
                    fields: dict[str, Any]) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - self._last_plain < PLAIN_INTERVAL_SECONDS and not finished:
            return
        self._last_plain = now
        share = f" ({100 * done / total:.1f}%)" if total else ""
        of_total = f" of {total / 1e6:.1f} MB" if total else ""
        rate = fields.get("rate_bytes_per_second") or fields.get("rate")
        eta = fields.get("eta_seconds") or fields.get("eta")
        extra = f", {float(rate) / 1e6:.1f} MB/s" if isinstance(rate, int | float) else ""
        extra += f", ETA {float(eta):.0f} s" if isinstance(eta, int | float) else ""
        print(f"{label}: {done / 1e6:.1f} MB{of_total}{share}{extra}", file=self.stream,
              flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
