"""The hive's heartbeat: a POST to the queen every second with devices, models and workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_SECONDS = 1.0


async def run_heartbeats(
    queen_url: str,
    build_payload: Callable[[], Any],
    refresh: Callable[[httpx.AsyncClient], Any],
    interval: float = HEARTBEAT_INTERVAL_SECONDS,
    token: str | None = None,
) -> None:
    """Send heartbeats forever; log only when the queen's reachability changes.

    With a `token`, every heartbeat carries `Authorization: Bearer <token>`, so the queen can
    trust the worker tokens inside it.
    """
    url = queen_url.rstrip("/") + "/v1/hive-heartbeat"
    reachable: bool | None = None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            await refresh(client)
            try:
                # Per request, so worker health checks on this client never carry the token.
                response = await client.post(url, json=build_payload(), headers=headers)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                if reachable is not False:
                    logger.warning("Heartbeat to %s failed: %s; retrying every %.0f s",
                                   url, exc, interval)
                reachable = False
            else:
                if reachable is not True:
                    logger.info("Heartbeats reach the queen at %s", queen_url)
                reachable = True
            await asyncio.sleep(interval)


async def send_goodbye(queen_url: str, payload: dict[str, Any], token: str | None) -> None:
    """Tell the queen this hive is stopping, so it stops scheduling here at once."""
    url = queen_url.rstrip("/") + "/v1/hive-heartbeat"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            await client.post(url, json={**payload, "state": "stopping"}, headers=headers)
    except httpx.HTTPError as exc:
        logger.info("Could not tell the queen at %s that this hive stops: %s", queen_url, exc)
