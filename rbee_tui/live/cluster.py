"""The cluster as the heartbeat stream describes it: hives, workers and models by id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClusterState:
    """Hives, workers and models, updated one heartbeat-stream event at a time."""

    hives: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Workers keyed by (hive id, worker id): worker ids are unique only within a hive.
    workers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one event; return True when what the views show has changed."""
        kind = event.get("type")
        if kind == "snapshot":
            self._load_snapshot(event)
        elif kind in ("hive_joined", "hive_updated"):
            hive = dict(event["hive"])
            self.hives[str(hive["hive_id"])] = hive
        elif kind == "hive_state":
            self._set_hive_state(str(event["hive_id"]), str(event["state"]))
        elif kind == "worker_changed":
            worker = {**event["worker"], "hive_id": event["hive_id"]}
            self.workers[(str(event["hive_id"]), str(worker["worker_id"]))] = worker
        elif kind == "worker_removed":
            self.workers.pop((str(event["hive_id"]), str(event["worker_id"])), None)
        elif kind == "models_changed":
            self.set_models(str(event["hive_id"]), list(event["models"]))
        elif kind == "summary":
            self.summary = dict(event)
        else:
            return False
        return True

    def _load_snapshot(self, event: dict[str, Any]) -> None:
        self.hives = {str(hive["hive_id"]): dict(hive) for hive in event.get("hives", [])}
        self.workers = {
            (str(w["hive_id"]), str(w["worker_id"])): dict(w) for w in event.get("workers", [])
        }
        self.models = {
            (str(m["hive_id"]), str(m["id"])): dict(m) for m in event.get("models", [])
        }

    def _set_hive_state(self, hive_id: str, state: str) -> None:
        hive = self.hives.get(hive_id)
        if hive is not None:
            hive["state"] = state

    def set_models(self, hive_id: str, models: list[dict[str, Any]]) -> None:
        """Replace one hive's models with the result of a `model_list` job."""
        self.models = {key: value for key, value in self.models.items() if key[0] != hive_id}
        for model in models:
            self.models[(hive_id, str(model["id"]))] = {**model, "hive_id": hive_id}

    def set_model(self, hive_id: str, model: dict[str, Any]) -> None:
        """Add or replace one model from a `model_get` or `model_download` result."""
        self.models[(hive_id, str(model["id"]))] = {**model, "hive_id": hive_id}

    def model_ids(self) -> list[str]:
        """Return the ids of models some hive has available, sorted and without duplicates."""
        return sorted({model_id for (_, model_id), model in self.models.items()
                       if model.get("state", "available") == "available"})

    def worker_count(self, hive_id: str) -> int:
        return sum(1 for key in self.workers if key[0] == hive_id)
