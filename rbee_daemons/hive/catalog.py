"""The hive's model catalog: one SQLite row per model, files in one folder per model id."""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rbee_daemons.errors import InvalidRequestError, NotFoundError
from rbee_daemons.events import utc_timestamp

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    state TEXT NOT NULL CHECK (state IN ('downloading', 'available', 'failed')),
    added_at TEXT NOT NULL,
    last_used_at TEXT
)
"""
# Columns added after the first release; opening an older catalog adds them.
_ADDED_COLUMNS = {
    "architecture": "TEXT",
    "context_length": "INTEGER",
    "parameter_count": "INTEGER",
    "quantization": "TEXT",
}
_COLUMNS = (
    "id", "name", "source", "path", "size", "sha256", "state", "added_at", "last_used_at",
    *_ADDED_COLUMNS,
)
_INSERT = (
    f"INTO models ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM models"
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class ModelEntry:
    id: str
    name: str
    source: str
    path: str
    size: int | None
    sha256: str | None
    state: str
    added_at: str
    last_used_at: str | None
    architecture: str | None = None
    context_length: int | None = None
    parameter_count: int | None = None
    quantization: str | None = None

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in _COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_folder(models_root: Path, model_id: str) -> Path:
    """Return the folder for `model_id` under `models_root`, rejecting ids that could escape."""
    if not _VALID_ID.fullmatch(model_id) or model_id in (".", ".."):
        raise InvalidRequestError(
            f"Invalid model id {model_id!r}: use letters, digits, '.', '_' and '-' only."
        )
    folder = (models_root / model_id).resolve()
    if folder.parent != models_root.resolve():
        raise InvalidRequestError(f"Invalid model id {model_id!r}: it leaves the model store.")
    return folder


class Catalog:
    """SQLite-backed catalog; safe to call from several threads."""

    def __init__(self, db_path: Path, models_root: Path) -> None:
        self.models_root = models_root
        models_root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(models)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE models ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, entry: ModelEntry) -> None:
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE {_INSERT}", entry.row())

    def ensure(self, entry: ModelEntry) -> None:
        """Add `entry` unless a model with its id is already in the catalog."""
        with self._lock:
            self._db.execute(f"INSERT OR IGNORE {_INSERT}", entry.row())

    def get(self, model_id: str) -> ModelEntry:
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE id = ?", (model_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"Model {model_id!r} is not in this hive's catalog; list models with "
                "`rbee --no-tui model list`."
            )
        return ModelEntry(*row)

    def list(self) -> list[ModelEntry]:
        with self._lock:
            rows = self._db.execute(f"{_SELECT} ORDER BY id").fetchall()
        return [ModelEntry(*row) for row in rows]

    def update(self, model_id: str, **values: Any) -> None:
        allowed = {"path", "size", "sha256", "state", "last_used_at", "name", "source",
                   *_ADDED_COLUMNS}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"cannot update catalog columns {sorted(unknown)}")
        assignments = ", ".join(f"{column} = ?" for column in values)
        with self._lock:
            self._db.execute(
                f"UPDATE models SET {assignments} WHERE id = ?", (*values.values(), model_id)
            )

    def delete(self, model_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM models WHERE id = ?", (model_id,))

    def touch(self, model_id: str) -> None:
        self.update(model_id, last_used_at=utc_timestamp())
