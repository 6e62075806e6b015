"""An async client of the queen: jobs, job streams and the heartbeat stream, with reconnects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from rbee_daemons.errors import DaemonError, RbeeError
from rbee_tui.cli.client import error_from_response, parse_event

logger = logging.getLogger(__name__)

TERMINAL_TYPES = frozenset({"done", "error", "cancelled"})
# Backoff between reconnects: doubles from the first value up to the cap, in seconds.
BACKOFF_FIRST_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 5.0
# Local event types the heartbeat generator yields when the stream goes up or down.
CONNECTED = "_connected"
DISCONNECTED = "_disconnected"


def backoff_delay(failures: int) -> float:
    """Return the wait before reconnect attempt `failures` (1-based)."""
    return float(min(BACKOFF_FIRST_SECONDS * 2 ** max(failures - 1, 0), BACKOFF_MAX_SECONDS))


class AsyncQueen:
    """Talks to one queen over httpx; sends `Authorization: Bearer` when a token is set."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10.0)

    def set_token(self, token: str | None) -> None:
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        else:
            self.http.headers.pop("Authorization", None)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def is_healthy(self) -> bool:
        try:
            response = await self.http.get("/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def jobs(self) -> list[dict[str, Any]]:
        response = await self._request("GET", "/v1/jobs")
        return list(response.json()["jobs"])

    async def job(self, job_id: str) -> dict[str, Any]:
        return dict((await self._request("GET", f"/v1/jobs/{job_id}")).json())

    async def submit(self, operation: dict[str, Any]) -> str:
        """Submit a job and return its id; raise InvalidRequestError when the queen rejects it."""
        response = await self._request("POST", "/v1/jobs", json=operation)
        return str(response.json()["job_id"])

    async def cancel(self, job_id: str) -> str:
        """Cancel a job on the queen and return the state the queen reports."""
        response = await self._request("DELETE", f"/v1/jobs/{job_id}", timeout=5.0)
        return str(response.json().get("state", "cancelled"))

    async def job_events(self, job_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Yield a job's events after seq `after` until its terminal event.

        A dropped connection is retried with backoff and resumed with `Last-Event-ID`, so
        every event arrives once and in order. A queen that stays away is retried forever;
        the caller cancels the task to stop.
        """
        last_seq = after
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(last_seq)} if last_seq else {}
            try:
                async for event in self._sse(f"/v1/jobs/{job_id}/stream", headers):
                    last_seq = int(event.get("seq", last_seq))
                    failures = 0
                    yield event
                    if event.get("type") in TERMINAL_TYPES:
                        return
            except httpx.TransportError as exc:
                failures += 1
                logger.info("Job stream %s dropped (%s); retry %d", job_id, exc, failures)
            await asyncio.sleep(backoff_delay(max(failures, 1)))

    async def heartbeat_events(self) -> AsyncIterator[dict[str, Any]]:
        """Yield heartbeat-stream events forever, with CONNECTED and DISCONNECTED markers.

        Each reconnect starts with a fresh snapshot from the queen, so no state is lost.
        """
        failures = 0
        while True:
            try:
                async for event in self._sse("/v1/heartbeats/stream", {}):
                    if failures or event.get("type") == "snapshot":
                        failures = 0
                        yield {"type": CONNECTED}
                    yield event
                error = "the queen closed the stream"
            except (httpx.TransportError, RbeeError) as exc:
                error = str(exc) or type(exc).__name__
            failures += 1
            yield {"type": DISCONNECTED, "error": error}
            await asyncio.sleep(backoff_delay(failures))

    async def _sse(self, path: str, headers: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        timeout = httpx.Timeout(10.0, read=None)
        async with aconnect_sse(self.http, "GET", path, headers=headers,
                                timeout=timeout) as source:
            if source.response.status_code != 200:
                await source.response.aread()
                raise error_from_response(source.response, f"GET {path}")
            async for message in source.aiter_sse():
                if not message.data or message.data.startswith("["):
                    continue
                yield parse_event(message.data, path)

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DaemonError(
                f"The queen did not respond at {self.base_url}: {exc or type(exc).__name__}; "
                "start it with `rbee --no-tui queen start`."
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response, f"{method} {path}")
        return response
