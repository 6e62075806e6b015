"""The worker's hive watchdog: a worker whose hive is gone for too long exits by itself.

The hive is checked through its public `/health`; a response only counts when it names the
hive id that started this worker, so another program on the same port does not keep an
orphan alive. A restarted hive that adopts the worker responds again in time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from rbee_daemons.narration import narrate

logger = logging.getLogger(__name__)


async def hive_is_alive(client: httpx.AsyncClient, hive_url: str, hive_id: str) -> bool:
    try:
        response = await client.get(f"{hive_url.rstrip('/')}/health", timeout=2.0)
        return response.status_code == 200 and response.json().get("hive_id") == hive_id
    except (httpx.HTTPError, ValueError):
        return False


async def watch_hive(hive_url: str, hive_id: str, orphan_seconds: float,
                     on_orphaned: Callable[[], None]) -> None:
    """Call `on_orphaned()` once the hive has not responded for `orphan_seconds`."""
    interval = min(2.0, max(orphan_seconds / 4, 0.2))
    last_seen = time.monotonic()
    async with httpx.AsyncClient() as client:
        while True:
            await asyncio.sleep(interval)
            if await hive_is_alive(client, hive_url, hive_id):
                last_seen = time.monotonic()
                continue
            gone_for = time.monotonic() - last_seen
            if gone_for >= orphan_seconds:
                _narrate_orphaned(hive_id, hive_url, gone_for)
                on_orphaned()
                return


def _narrate_orphaned(hive_id: str, hive_url: str, gone_for: float) -> None:
    narrate(
        "worker_orphaned",
        f"Hive {hive_id} at {hive_url} has not responded for {gone_for:.0f} s; this worker "
        "exits so that it does not hold memory for nobody.",
        cute="🥀 No hive, no honey. This little worker is heading home.",
        story=f'"Hello? Hive {hive_id}?" called the worker into the silence, then flew off.',
        level="warn", hive_id=hive_id, hive_url=hive_url, gone_seconds=round(gone_for, 1),
    )
