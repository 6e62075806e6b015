"""Running jobs on a hive from the queen and relaying their events into the queen's job."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from rbee_daemons import events, narration
from rbee_daemons.errors import HiveError

logger = logging.getLogger(__name__)


async def run_hive_job(
    client: httpx.AsyncClient, hive_id: str, hive_url: str, body: dict[str, Any]
) -> Any:
    """Submit `body` as a job on the hive, relay its events, return its result data.

    Raises HiveError when the hive cannot be reached or the job fails there. Cancelling the
    caller cancels the job on the hive too.
    """
    operation = body.get("operation")
    try:
        response = await client.post(f"{hive_url}/v1/jobs", json=body, timeout=10.0)
    except httpx.HTTPError as exc:
        raise HiveError(
            f"Hive {hive_id!r} did not respond at {hive_url}: {exc or type(exc).__name__}; is it "
            "running? Check with `rbee --no-tui status`."
        ) from exc
    if response.status_code != 201:
        raise HiveError(f"Hive {hive_id!r} rejected {operation}: {_error_text(response)}")
    job_id = response.json()["job_id"]
    try:
        return await _relay(client, hive_id, hive_url, job_id)
    except asyncio.CancelledError:
        # A queen that shuts down leaves hive jobs (downloads) running; it is a non-event.
        if not getattr(narration.current_sink(), "cancelled_by_shutdown", False):
            await asyncio.shield(_cancel(client, hive_url, job_id))
        raise


async def _relay(client: httpx.AsyncClient, hive_id: str, hive_url: str, job_id: str) -> Any:
    result: Any = None
    url = f"{hive_url}/v1/jobs/{job_id}/stream"
    try:
        timeout = httpx.Timeout(10.0, read=None)
        async with aconnect_sse(client, "GET", url, timeout=timeout) as source:
            async for message in source.aiter_sse():
                if message.data.startswith("["):
                    continue
                event = json.loads(message.data)
                kind = event.get("type")
                if kind == events.DATA:
                    result = event.get("data")
                elif kind == events.ERROR:
                    raise HiveError(event.get("message", "unknown error"),
                                    code=event.get("code", "hive_error"))
                elif kind == events.CANCELLED:
                    raise HiveError(f"Hive {hive_id!r} cancelled the job: {event.get('message')}")
                elif kind == events.DONE:
                    return result
                else:
                    narration.relay(event)
    except httpx.HTTPError as exc:
        raise HiveError(
            f"Lost the event stream of job {job_id} on hive {hive_id!r} ({hive_url}): {exc}."
        ) from exc
    raise HiveError(f"The event stream of job {job_id} on hive {hive_id!r} ended early.")


async def _cancel(client: httpx.AsyncClient, hive_url: str, job_id: str) -> None:
    try:
        await client.delete(f"{hive_url}/v1/jobs/{job_id}", timeout=2.0)
    except httpx.HTTPError as exc:
        logger.warning("Could not cancel %s on %s: %s", job_id, hive_url, exc)


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


