"""A synchronous client of the queen's job API, with SSE reconnects via `Last-Event-ID`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse

from rbee_daemons.errors import (
    ConfigError,
    DaemonError,
    InvalidRequestError,
    NotFoundError,
    RbeeError,
)
from rbee_tui.cli.daemons import role

TERMINAL_TYPES = ("done", "error", "cancelled")
RECONNECT_ATTEMPTS = 5
# Refused connections in a row that mean the queen is gone, not restarting; about 1.2 s of
# backoff in all. A restarted queen has forgotten the job anyway.
REFUSED_CONNECTIONS_LIMIT = 3


class QueenClient:
    """Talks to one queen; sends `Authorization: Bearer` when a token is configured."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self.set_token(token)

    def set_token(self, token: str | None) -> None:
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        else:
            self.http.headers.pop("Authorization", None)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> QueenClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def is_healthy(self) -> bool:
        """Check that a queen responds to `/health`; another server's status 200 does not count."""
        try:
            response = self.http.get("/health", timeout=2.0)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return False
        return response.status_code == 200 and isinstance(body, dict) and role(body) == "queen"

    def hives(self) -> list[dict[str, Any]]:
        response = self._request("GET", "/v1/hives")
        return list(response.json()["hives"])

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/jobs").json()["jobs"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/jobs/{job_id}").json())

    def submit(self, operation: dict[str, Any]) -> str:
        """Submit a job and return its id; raise InvalidRequestError on a 400."""
        response = self._request("POST", "/v1/jobs", json=operation)
        return str(response.json()["job_id"])

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"/v1/jobs/{job_id}", timeout=5.0).json())

    def follow(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Yield the job's events until its terminal event, reconnecting after a drop."""
        last_seq = 0
        failures = 0
        refused = 0
        while True:
            headers = {"Last-Event-ID": str(last_seq)} if last_seq else {}
            try:
                with connect_sse(
                    self.http, "GET", f"/v1/jobs/{job_id}/stream", headers=headers,
                    timeout=httpx.Timeout(10.0, read=None),
                ) as source:
                    if source.response.status_code != 200:
                        source.response.read()
                        raise error_from_response(source.response, f"streaming job {job_id}")
                    for message in source.iter_sse():
                        if message.data.startswith("["):
                            continue
                        event = parse_event(message.data, f"of job {job_id}")
                        last_seq = int(event.get("seq", last_seq))
                        failures = 0
                        refused = 0
                        yield event
                        if event.get("type") in TERMINAL_TYPES:
                            return
                # The stream closed without a terminal event: count it like a dropped one.
                failures += 1
                if failures > RECONNECT_ATTEMPTS:
                    raise DaemonError(
                        f"The event stream of job {job_id} at {self.base_url} keeps ending "
                        f"early; follow it again with `rbee --no-tui jobs follow {job_id}`."
                    )
                time.sleep(min(0.2 * 2**failures, 3.0))
            except httpx.TransportError as exc:
                failures += 1
                refused = refused + 1 if isinstance(exc, httpx.ConnectError) else 0
                if refused >= REFUSED_CONNECTIONS_LIMIT:
                    raise DaemonError(
                        f"Lost the event stream of job {job_id}: the queen at {self.base_url} "
                        f"refuses connections ({exc}); check it with "
                        "`rbee --no-tui queen status`."
                    ) from exc
                if failures > RECONNECT_ATTEMPTS:
                    raise DaemonError(
                        f"Lost the event stream of job {job_id} at {self.base_url}: {exc}; "
                        f"follow it again with `rbee --no-tui jobs follow {job_id}`."
                    ) from exc
                time.sleep(min(0.2 * 2**failures, 3.0))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DaemonError(
                f"The queen did not respond at {self.base_url}: {exc or type(exc).__name__}; "
                "start it with `rbee --no-tui queen start`."
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response, f"{method} {path}")
        return response


def parse_event(data: str, stream: str) -> dict[str, Any]:
    """Decode one `data:` payload; raise DaemonError naming `stream` when it is not an event."""
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise DaemonError(
            f"The stream {stream} sent data that is not JSON: {data[:80]!r}."
        ) from exc
    if not isinstance(event, dict):
        raise DaemonError(
            f"The stream {stream} sent {type(event).__name__}, not an event object."
        )
    return event


def error_from_response(response: httpx.Response, what: str) -> RbeeError:
    """Turn a queen's error response into the RbeeError the keeper and the TUI report."""
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code} for {what}"
    if response.status_code == 400:
        return InvalidRequestError(message)
    if response.status_code == 401:
        return ConfigError(f"The queen rejected the request: {message} The keeper sends "
                           "$RBEE_TOKEN or the cluster-token file in the rbee config dir.")
    if response.status_code == 404:
        return NotFoundError(message)
    return RbeeError(message)
