"""A loopback HTTP server that serves files the way a Hugging Face hub does.

`GET|HEAD /<org>/<repo>/resolve/<revision>/<file>` answers `302` to `/cdn/<sha256>` with
`X-Linked-Size`, `X-Linked-Etag` (the sha256) and `ETag`, as the hub does for LFS files. The
CDN path serves the bytes with `Range` support. Knobs make the next responses cut the
connection midway, stall, or advertise a wrong size or sha256.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class HubRequest:
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class FakeHub:
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[HubRequest] = field(default_factory=list)
    # Bytes to send in each of the next `cuts` responses before closing the connection.
    cut_after: int | None = None
    cuts: int = 0
    # Bytes to send in each of the next `stalls` responses before stalling until `release`
    # is set (or the server shuts down).
    stall_after: int | None = None
    stalls: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    # Set once a response has sent its bytes and started to stall.
    stalled: threading.Event = field(default_factory=threading.Event)
    advertised_size: int | None = None
    advertised_sha256: str | None = None
    required_token: str | None = None
    base_url: str = ""

    def add(self, repo_path: str, data: bytes) -> str:
        """Serve `data` at `<org>/<repo>/<file>`; return its sha256."""
        self.files[repo_path] = data
        return hashlib.sha256(data).hexdigest()

    def ranges(self) -> list[str | None]:
        return [r.range for r in self.requests if r.method == "GET" and "/cdn/" in r.path]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, send_body: bool) -> None:
            hub.requests.append(HubRequest(self.command, self.path, self.headers.get("Range"),
                                           self.headers.get("Authorization")))
            if hub.required_token and self.headers.get("Authorization") != (
                f"Bearer {hub.required_token}"
            ):
                self._empty(401)
                return
            match = re.match(r"^/([^/]+/[^/]+)/resolve/[^/]+/(.+)$", self.path)
            if match:
                self._redirect(f"{match.group(1)}/{match.group(2)}")
            elif self.path.startswith("/cdn/"):
                self._serve(self.path.removeprefix("/cdn/"), send_body)
            else:
                self._empty(404)

        def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _redirect(self, repo_path: str) -> None:
            data = hub.files.get(repo_path)
            if data is None:
                self._empty(404)
                return
            sha = hub.advertised_sha256 or hashlib.sha256(data).hexdigest()
            size = hub.advertised_size if hub.advertised_size is not None else len(data)
            self._empty(302, {"Location": f"{hub.base_url}/cdn/{repo_path}",
                              "X-Linked-Size": str(size), "X-Linked-Etag": f'"{sha}"',
                              "ETag": '"0123456789abcdef0123456789abcdef01234567"'})

        def _serve(self, repo_path: str, send_body: bool) -> None:
            data = hub.files.get(repo_path)
            if data is None:
                self._empty(404)
                return
            start = _range_start(self.headers.get("Range"))
            if start is not None and start >= len(data):
                self._empty(416, {"Content-Range": f"bytes */{len(data)}"})
                return
            body = data[start or 0:]
            self.send_response(206 if start is not None else 200)
            if start is not None:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if send_body:
                self._write(body)

        def _write(self, body: bytes) -> None:
            limit = None
            if hub.cuts > 0 and hub.cut_after is not None:
                hub.cuts -= 1
                limit = hub.cut_after
            elif hub.stalls > 0 and hub.stall_after is not None:
                hub.stalls -= 1
                self.wfile.write(body[:hub.stall_after])
                self.wfile.flush()
                hub.stalled.set()
                hub.release.wait(timeout=120)
                self.close_connection = True
                return
            try:
                self.wfile.write(body if limit is None else body[:limit])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            if limit is not None:
                self.close_connection = True

    return Handler


def _range_start(value: str | None) -> int | None:
    match = re.match(r"^bytes=(\d+)-$", value or "")
    return int(match.group(1)) if match else None


@contextmanager
def running_hub() -> Iterator[FakeHub]:
    """Run a FakeHub on a free loopback port; stop it and release stalls on exit."""
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
