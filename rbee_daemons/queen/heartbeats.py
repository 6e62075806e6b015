"""The aggregate heartbeat stream for UIs: a snapshot, then changes, and a periodic summary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from rbee_daemons import sse
from rbee_daemons.events import utc_timestamp
from rbee_daemons.queen.registry import Heartbeat, HiveRecord, HiveRegistry, public_worker

logger = logging.getLogger(__name__)

SUMMARY_INTERVAL_SECONDS = 2.5
# A UI that falls this far behind is disconnected; it reconnects and gets a fresh snapshot.
SUBSCRIBER_BACKLOG = 5000


class HeartbeatHub:
    """Turns heartbeats and hive state changes into events for every subscriber."""

    def __init__(self, registry: HiveRegistry) -> None:
        self.registry = registry
        self.subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.hive_states: dict[str, str] = {}
        self.worker_views: dict[str, dict[str, dict[str, Any]]] = {}
        self.model_views: dict[str, list[dict[str, Any]]] = {}
        self._seq = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "snapshot",
            "hives": [hive.describe() for hive in self.registry.hives.values()],
            "workers": self.registry.workers(),
            "models": self.registry.models(),
        }

    def summary(self) -> dict[str, Any]:
        states = [hive.state() for hive in self.registry.hives.values()]
        return {
            "type": "summary",
            "hives_total": len(states),
            "hives_online": states.count("online"),
            "hives_degraded": states.count("degraded"),
            "hives_offline": states.count("offline"),
            "workers": sum(len(h.heartbeat.workers) for h in self.registry.hives.values()),
        }

    def heartbeat_received(self, heartbeat: Heartbeat, joined: bool) -> None:
        hive = self.registry.hives[heartbeat.hive_id]
        if not self.subscribers:
            # Nothing to tell; keep the views current so the first subscriber sees changes only.
            self._remember(hive)
            return
        if joined:
            self.publish({"type": "hive_joined", "hive": hive.describe()})
        else:
            self.publish({"type": "hive_updated", "hive": hive.describe()})
        self._check_state(hive)
        self._publish_worker_changes(hive)
        self._publish_model_changes(hive)

    def check_states(self) -> list[HiveRecord]:
        """Publish state changes judged by the clock; return hives that just went offline."""
        now = time.monotonic()
        went_offline = []
        for hive in self.registry.hives.values():
            if self._check_state(hive, now) == "offline":
                went_offline.append(hive)
        return went_offline

    def _check_state(self, hive: HiveRecord, now: float | None = None) -> str | None:
        state = hive.state(now)
        previous = self.hive_states.get(hive.hive_id)
        self.hive_states[hive.hive_id] = state
        if previous is None or previous == state:
            return None
        self.publish({"type": "hive_state", "hive_id": hive.hive_id, "state": state,
                      "previous": previous})
        return state

    def _remember(self, hive: HiveRecord) -> None:
        self.hive_states.setdefault(hive.hive_id, hive.state())
        self.worker_views[hive.hive_id] = {
            str(w.get("worker_id")): public_worker(w) for w in hive.heartbeat.workers
        }
        self.model_views[hive.hive_id] = list(hive.heartbeat.models)

    def _publish_worker_changes(self, hive: HiveRecord) -> None:
        before = self.worker_views.get(hive.hive_id, {})
        after = {str(w.get("worker_id")): public_worker(w) for w in hive.heartbeat.workers}
        for worker_id, view in after.items():
            if before.get(worker_id) != view:
                self.publish({"type": "worker_changed", "hive_id": hive.hive_id,
                              "worker": view})
        for worker_id in before.keys() - after.keys():
            self.publish({"type": "worker_removed", "hive_id": hive.hive_id,
                          "worker_id": worker_id})
        self.worker_views[hive.hive_id] = after

    def _publish_model_changes(self, hive: HiveRecord) -> None:
        models = list(hive.heartbeat.models)
        if self.model_views.get(hive.hive_id) != models:
            self.publish({"type": "models_changed", "hive_id": hive.hive_id, "models": models})
        self.model_views[hive.hive_id] = models

    def publish(self, event: dict[str, Any]) -> None:
        self._seq += 1
        stamped = {"seq": self._seq, "ts": utc_timestamp(), **event}
        for queue in list(self.subscribers):
            if queue.qsize() >= SUBSCRIBER_BACKLOG:
                logger.warning("Dropping a heartbeat-stream subscriber that fell behind")
                self.subscribers.discard(queue)
                queue.put_nowait(None)
                continue
            queue.put_nowait(stamped)

    async def stream(self) -> AsyncIterator[str]:
        """SSE body: snapshot first, then changes, and a summary every 2.5 s."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.subscribers.add(queue)
        for hive in self.registry.hives.values():
            self._remember(hive)
        try:
            yield self._frame(self.snapshot())
            next_summary = time.monotonic() + SUMMARY_INTERVAL_SECONDS
            while True:
                timeout = max(next_summary - time.monotonic(), 0.0)
                with contextlib.suppress(TimeoutError):
                    event = await asyncio.wait_for(queue.get(), timeout)
                    if event is None:
                        return
                    yield sse.frame(sse.dumps(event), event_id=event["seq"])
                    continue
                yield self._frame(self.summary())
                next_summary = time.monotonic() + SUMMARY_INTERVAL_SECONDS
        finally:
            self.subscribers.discard(queue)

    def _frame(self, event: dict[str, Any]) -> str:
        self._seq += 1
        stamped = {"seq": self._seq, "ts": utc_timestamp(), **event}
        return sse.frame(sse.dumps(stamped), event_id=self._seq)
