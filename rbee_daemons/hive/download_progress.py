"""Progress of a download: `progress` events twice a second, narration every ten seconds."""

from __future__ import annotations

import time
from typing import Any

from rbee_daemons import events
from rbee_daemons.narration import emit, narrate

PROGRESS_INTERVAL_SECONDS = 0.5
NARRATION_INTERVAL_SECONDS = 10.0


def _megabytes(count: int | None) -> str:
    return "?" if count is None else f"{count / 1e6:.1f} MB"


class Progress:
    """Rate and ETA of one download run, measured from the bytes this run received."""

    def __init__(self, model_id: str, total: int | None, start_bytes: int) -> None:
        self.model_id = model_id
        self.total = total
        self.start_bytes = start_bytes
        self.started = time.monotonic()
        self.last_event = 0.0
        self.last_narration = self.started
        self._narrate_start()

    def _narrate_start(self) -> None:
        resumed = f", resuming at {_megabytes(self.start_bytes)}" if self.start_bytes else ""
        narrate(
            "hive_model_download_start",
            f"Downloading {self.model_id} ({_megabytes(self.total)}{resumed}).",
            cute=f"🐝 Flying off to fetch {self.model_id}!",
            story=f'"Bring {self.model_id} home," said the hive, and the foragers took off.',
            model=self.model_id, bytes_total=self.total, bytes_done=self.start_bytes,
        )

    def fields(self, done: int) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (done - self.start_bytes) / elapsed
        eta = None
        if self.total is not None and rate > 0:
            eta = round(max(self.total - done, 0) / rate, 1)
        percent = round(100 * done / self.total, 1) if self.total else None
        return {"model": self.model_id, "bytes_done": done, "bytes_total": self.total,
                "percent": percent, "rate_bytes_per_second": round(rate), "eta_seconds": eta}

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last_event < PROGRESS_INTERVAL_SECONDS:
            return
        self.last_event = now
        fields = self.fields(done)
        emit(events.PROGRESS, action="hive_model_download_progress", fields=fields)
        if now - self.last_narration >= NARRATION_INTERVAL_SECONDS:
            self.last_narration = now
            self._narrate_progress(fields)

    def _narrate_progress(self, fields: dict[str, Any]) -> None:
        percent = fields["percent"]
        share = f"{percent}%" if percent is not None else _megabytes(fields["bytes_done"])
        rate = fields["rate_bytes_per_second"]
        narrate(
            "hive_model_download_progress",
            f"Downloading {self.model_id}: {share} ({_megabytes(rate)}/s, ETA "
            f"{fields['eta_seconds'] or '?'} s).",
            cute=f"🐝 {share} of {self.model_id} is in the hive already!",
            story=f'"How far along?" asked the queen. "{share}," buzzed the hive.',
            **fields,
        )

    def finished(self, done: int) -> None:
        fields = self.fields(done)
        emit(events.PROGRESS, action="hive_model_download_progress", fields=fields)
        narrate(
            "hive_model_download_verify",
            f"Received {_megabytes(done)} of {self.model_id}; verifying size and sha256.",
            cute=f"🔍 Counting every byte of {self.model_id}...",
            story='"Is it all there?" asked the queen. "Checking," said the hive.',
            **fields,
        )


def narrate_retry(model_id: str, reason: str, delay: float, done: int) -> None:
    narrate(
        "hive_model_download_retry",
        f"Downloading {model_id} was interrupted ({reason}); resuming from "
        f"{_megabytes(done)} in {delay:.1f} s.",
        cute=f"🌧️ A gust knocked {model_id} loose; the bees try again in {delay:.0f} s.",
        story=f'"The line went dead," said the hive. "I will pick up {model_id} where I left off."',
        level="warn", model=model_id, reason=reason, retry_in_seconds=delay, bytes_done=done,
    )
