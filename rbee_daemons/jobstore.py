"""Durable job history: job records and event logs in SQLite (WAL), written behind."""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

from rbee_daemons.events import Event

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    error TEXT,
    event_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
"""
_JOB_COLUMNS = (
    "job_id", "operation", "payload", "state", "created_at", "started_at", "finished_at",
    "error", "event_count",
)
# Writes are batched: tokens arrive far faster than one SQLite commit per event allows.
_MAX_BATCH = 1000


class SqliteJobStore:
    """Stores jobs and events from a writer thread so the event loop never waits on disk."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._read = sqlite3.connect(path, check_same_thread=False)
        self._read.execute("PRAGMA journal_mode=WAL")
        self._read.executescript(_SCHEMA)
        self._read_lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="jobstore", daemon=True)
        self._writer.start()

    def save_job(self, summary: dict[str, Any], payload: dict[str, Any]) -> None:
        row = {**summary, "payload": json.dumps(payload), "event_count": summary["events"]}
        self._queue.put(("job", tuple(row[column] for column in _JOB_COLUMNS)))

    def append_event(self, event: Event) -> None:
        # Serialised on the writer thread: events are not changed after they are emitted.
        self._queue.put(("event", event))

    def delete_jobs(self, job_ids: list[str]) -> None:
        if job_ids:
            self._queue.put(("delete", job_ids))

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is committed."""
        done = threading.Event()
        self._queue.put(("flush", done))
        done.wait(timeout)

    def close(self) -> None:
        self.flush()
        self._queue.put(("stop", None))
        self._writer.join(timeout=10)
        with self._read_lock:
            self._read.close()

    def load_jobs(self, limit: int) -> list[dict[str, Any]]:
        """Return the newest `limit` job records, newest last."""
        with self._read_lock:
            rows = self._read.execute(
                f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs ORDER BY created_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        records = [dict(zip(_JOB_COLUMNS, row, strict=True)) for row in reversed(rows)]
        for record in records:
            record["payload"] = json.loads(record["payload"])
        return records

    def load_events(self, job_id: str) -> list[Event]:
        with self._read_lock:
            rows = self._read.execute(
                "SELECT event FROM events WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def _write_loop(self) -> None:
        connection = sqlite3.connect(self.path)
        connection.execute("PRAGMA synchronous=NORMAL")
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < _MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if not self._write_batch(connection, batch):
                    return
        finally:
            connection.close()

    def _write_batch(self, connection: sqlite3.Connection, batch: list[tuple[str, Any]]) -> bool:
        """Commit one batch; return False when a stop request was in it."""
        keep_running = True
        flushed: list[threading.Event] = []
        rows: list[tuple[str, int, str]] = []
        try:
            with connection:
                for kind, item in batch:
                    if kind == "event":
                        rows.append((item["job_id"], item["seq"], json.dumps(item)))
                        continue
                    # Events go in with one executemany, before anything that may follow them.
                    self._insert_events(connection, rows)
                    if kind == "job":
                        connection.execute(
                            f"INSERT OR REPLACE INTO jobs ({', '.join(_JOB_COLUMNS)}) "
                            f"VALUES ({', '.join('?' * len(_JOB_COLUMNS))})", item,
                        )
                    elif kind == "delete":
                        self._delete(connection, item)
                    elif kind == "flush":
                        flushed.append(item)
                    elif kind == "stop":
                        keep_running = False
                self._insert_events(connection, rows)
        except sqlite3.Error:
            logger.exception("Writing %d job records to %s failed", len(batch), self.path)
        for done in flushed:
            done.set()
        return keep_running

    @staticmethod
    def _insert_events(connection: sqlite3.Connection, rows: list[tuple[str, int, str]]) -> None:
        if rows:
            connection.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?)", rows)
            rows.clear()

    @staticmethod
    def _delete(connection: sqlite3.Connection, job_ids: list[str]) -> None:
        marks = ", ".join("?" * len(job_ids))
        connection.execute(f"DELETE FROM events WHERE job_id IN ({marks})", job_ids)
        connection.execute(f"DELETE FROM jobs WHERE job_id IN ({marks})", job_ids)
