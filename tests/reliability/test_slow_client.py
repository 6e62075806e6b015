"""Slow clients: readers that fall behind a job's stream, with real daemons and the real model."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from tests.e2e.conftest import start_cluster, wait_until
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.e2e

SLOW_READERS = 10
# Each slow reader takes this many bytes per read, one read every READ_PAUSE seconds.
READ_BYTES = 256
READ_PAUSE = 0.25
RSS_GROWTH_LIMIT = 64_000_000
LONG = {"operation": "infer", "prompt": "Write a long story about bees.", "max_tokens": 600,
        "temperature": 0.9, "seed": 11}
SHORT = {"operation": "infer", "prompt": "The sky is", "max_tokens": 4, "temperature": 0}


@dataclass
class SlowReader:
    """A raw socket client that reads a job's SSE stream a few bytes at a time."""

    url: str
    job_id: str
    received: bytearray = field(default_factory=bytearray)
    fast: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        parts = urlsplit(self.url)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as connection:
            # A small receive window keeps most of the stream unsent, so the queen's writes to
            # this socket back up as they would for a client on a slow link.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            connection.settimeout(30)
            connection.connect((parts.hostname, parts.port))
            connection.sendall(f"GET /v1/jobs/{self.job_id}/stream HTTP/1.1\r\nHost: "
                               f"{parts.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode())
            while not self.stop.is_set() and b"data: [DONE]" not in self.received[-4096:]:
                block = connection.recv(READ_BYTES if not self.fast.is_set() else 65536)
                if not block:
                    return
                self.received += block
                if not self.fast.is_set():
                    time.sleep(READ_PAUSE)


def test_slow_readers_bounded_memory(tmp_path: Path, scenario: Scenario) -> None:
    """Slow readers keep the queen's memory bounded and do not slow others"""
    cluster = start_cluster(tmp_path / "c")
    pool = ThreadPoolExecutor(max_workers=SLOW_READERS + 1, thread_name_prefix="reader")
    readers: list[SlowReader] = []
    try:
        _, marker = cluster.run(SHORT)
        assert marker == "[DONE]"
        queen = psutil.Process(cluster.processes[0].pid)
        rss_before = queen.memory_info().rss

        job_id = cluster.submit(LONG)
        readers = [SlowReader(cluster.queen_url, job_id) for _ in range(SLOW_READERS)]
        slow_runs = [pool.submit(reader.run) for reader in readers]
        wait_until(lambda: all(reader.received for reader in readers), 30,
                   "every slow reader's first bytes")
        follower = pool.submit(cluster.stream, job_id)
        scenario.did(f"Started a {LONG['max_tokens']}-token infer and opened {SLOW_READERS} "
                     f"raw socket readers on its stream, each with a 4 KB receive buffer "
                     f"reading {READ_BYTES} bytes every {READ_PAUSE} s; one normal client "
                     "followed the same stream and another ran a queen_check job meanwhile.")

        check, check_marker = cluster.run({"operation": "queen_check"})
        found, follower_marker = follower.result(timeout=300)
        rss_after = queen.memory_info().rss
        behind = [len(reader.received) for reader in readers]
        tokens = sum(event["type"] == "token" for event in found)
        # The JSON payloads alone; the stream adds SSE framing, so it is longer.
        stream_bytes = sum(len(json.dumps(event)) for event in found)
        scenario.saw(f"The normal client's stream ended with {follower_marker} after {tokens} "
                     f"tokens, and the queen_check job ended with {check_marker}, while each "
                     f"slow reader had received {min(behind):,} to {max(behind):,} bytes.")
        scenario.saw(f"The queen's RSS went from {rss_before / 1e6:.0f} MB to "
                     f"{rss_after / 1e6:.0f} MB (limit: growth under "
                     f"{RSS_GROWTH_LIMIT / 1e6:.0f} MB).")
        assert follower_marker == "[DONE]"
        assert check_marker == "[DONE]"
        assert check[-1]["type"] == "done"
        assert max(behind) < stream_bytes / 2
        assert rss_after - rss_before < RSS_GROWTH_LIMIT

        for reader in readers:
            reader.fast.set()
        for run in slow_runs:
            run.result(timeout=120)
        complete = [b"data: [DONE]" in reader.received for reader in readers]
        scenario.saw(f"Once they read at full speed, {sum(complete)} of {SLOW_READERS} slow "
                     "readers received the rest of the stream up to `data: [DONE]`.")
        assert all(complete)
    finally:
        for reader in readers:
            reader.stop.set()
        cluster.stop()
        pool.shutdown(wait=True, cancel_futures=True)
