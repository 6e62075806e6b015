"""The queen's hive registry, fed by heartbeats and judged by the queen's own clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rbee_daemons.hive.heartbeat import HEARTBEAT_INTERVAL_SECONDS

# Freshness in heartbeat intervals: online under 3, degraded up to 10, offline beyond.
ONLINE_INTERVALS = 3
DEGRADED_INTERVALS = 10


IdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
UrlStr = Annotated[str, Field(pattern=r"^https?://[^\s/]+$", max_length=300)]


class WorkerEntry(BaseModel):
    """The keys of a heartbeat's worker entry that the queen relies on; others are kept."""

    model_config = ConfigDict(extra="allow")

    worker_id: IdStr
    model: IdStr
    url: UrlStr
    state: Literal["starting", "ready", "busy", "stopping", "failed"]
    token: Annotated[str, Field(max_length=512)] | None = None


class ModelSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: IdStr
    state: Literal["downloading", "available", "failed"]
    size: Annotated[int, Field(ge=0)] | None = None


class Heartbeat(BaseModel):
    """The payload a hive posts every second; its last one has `state: stopping`."""

    model_config = ConfigDict(extra="ignore")

    hive_id: IdStr
    url: UrlStr
    version: Annotated[str, Field(max_length=64)] = "unknown"
    state: Literal["running", "stopping"] = "running"
    devices: dict[str, Any] = Field(default_factory=dict)
    models: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    workers: list[dict[str, Any]] = Field(default_factory=list, max_length=1_000)

    @field_validator("workers", mode="before")
    @classmethod
    def _check_workers(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [WorkerEntry.model_validate(item).model_dump() for item in value]

    @field_validator("models", mode="before")
    @classmethod
    def _check_models(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [ModelSummary.model_validate(item).model_dump() for item in value]


@dataclass
class HiveRecord:
    heartbeat: Heartbeat
    last_seen: float = field(default_factory=time.monotonic)
    first_seen: float = field(default_factory=time.monotonic)

    @property
    def hive_id(self) -> str:
        return self.heartbeat.hive_id

    @property
    def url(self) -> str:
        return self.heartbeat.url

    def age(self, now: float | None = None) -> float:
        return (now if now is not None else time.monotonic()) - self.last_seen

    def state(self, now: float | None = None) -> str:
        age = self.age(now)
        if age < ONLINE_INTERVALS * HEARTBEAT_INTERVAL_SECONDS:
            return "online"
        if age <= DEGRADED_INTERVALS * HEARTBEAT_INTERVAL_SECONDS:
            return "degraded"
        return "offline"

    def has_model(self, model_id: str) -> dict[str, Any] | None:
        for model in self.heartbeat.models:
            if model.get("id") == model_id and model.get("state") == "available":
                return model
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "hive_id": self.hive_id,
            "url": self.url,
            "state": self.state(),
            "heartbeat_age_seconds": round(self.age(), 3),
            "version": self.heartbeat.version,
            "devices": self.heartbeat.devices,
            "workers": len(self.heartbeat.workers),
            "models": len(self.heartbeat.models),
        }


class HiveRegistry:
    def __init__(self) -> None:
        self.hives: dict[str, HiveRecord] = {}

    def record(self, heartbeat: Heartbeat) -> bool:
        """Store a heartbeat; return True when the hive is new to this queen."""
        existing = self.hives.get(heartbeat.hive_id)
        if existing is None:
            existing = self.hives[heartbeat.hive_id] = HiveRecord(heartbeat)
            joined = True
        else:
            existing.heartbeat = heartbeat
            existing.last_seen = time.monotonic()
            joined = False
        if heartbeat.state == "stopping":
            # A hive that sent its stopping heartbeat is offline now, not after ten intervals.
            existing.last_seen = time.monotonic() - (DEGRADED_INTERVALS + 1) * (
                HEARTBEAT_INTERVAL_SECONDS)
        return joined

    def get(self, hive_id: str) -> HiveRecord | None:
        return self.hives.get(hive_id)

    def online(self) -> list[HiveRecord]:
        now = time.monotonic()
        return [hive for hive in self.hives.values() if hive.state(now) == "online"]

    def add_worker(self, hive_id: str, worker: dict[str, Any]) -> None:
        """Record a worker the queen just started, before the hive's next heartbeat lists it."""
        hive = self.hives.get(hive_id)
        if hive is None:
            return
        others = [w for w in hive.heartbeat.workers if w.get("worker_id") != worker["worker_id"]]
        hive.heartbeat.workers = [*others, worker]

    def mark_worker_starting(self, hive_id: str, worker_id: str) -> None:
        """Record a worker as `starting` until its hive's next heartbeat reports its state.

        The hive restarts a worker that crashed, so the scheduler waits for that worker
        instead of starting a second one for the same model.
        """
        hive = self.hives.get(hive_id)
        if hive is None:
            return
        hive.heartbeat.workers = [
            {**w, "state": "starting"} if w.get("worker_id") == worker_id else w
            for w in hive.heartbeat.workers
        ]

    def workers(self) -> list[dict[str, Any]]:
        """Return every known worker without its token, tagged with its hive and its state."""
        now = time.monotonic()
        listed = []
        for hive in self.hives.values():
            hive_state = hive.state(now)
            for worker in hive.heartbeat.workers:
                listed.append({**public_worker(worker), "hive_id": hive.hive_id,
                               "hive_state": hive_state})
        return listed

    def models(self) -> list[dict[str, Any]]:
        listed = []
        for hive in self.hives.values():
            for model in hive.heartbeat.models:
                listed.append({**model, "hive_id": hive.hive_id})
        return listed


def public_worker(worker: dict[str, Any]) -> dict[str, Any]:
    """Return a worker's heartbeat entry without its bearer token, to show to clients."""
    return {key: value for key, value in worker.items() if key != "token"}
