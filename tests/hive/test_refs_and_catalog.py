"""Model references and the catalog's schema upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rbee_daemons.errors import InvalidRequestError
from rbee_daemons.hive.catalog import Catalog, ModelEntry
from rbee_daemons.hive.refs import (
    BundledRef,
    FileRef,
    HubRef,
    default_model_id,
    parse_model_ref,
)


def test_hub_ref_parses_and_builds_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.test/")
    ref = parse_model_ref("hf:unsloth/gemma-3-270m-it-GGUF:gemma-3-270m-it-Q4_K_M.gguf")

    assert ref == HubRef("unsloth", "gemma-3-270m-it-GGUF", "gemma-3-270m-it-Q4_K_M.gguf")
    assert isinstance(ref, HubRef)
    assert ref.url() == ("http://mirror.test/unsloth/gemma-3-270m-it-GGUF/resolve/main/"
                         "gemma-3-270m-it-Q4_K_M.gguf")
    assert default_model_id(ref) == "gemma-3-270m-it-Q4_K_M"


def test_hub_ref_revision() -> None:
    ref = parse_model_ref("hf:org/repo@v1.0:sub/model.gguf")

    assert isinstance(ref, HubRef)
    assert ref.revision == "v1.0"
    assert "/resolve/v1.0/sub/model.gguf" in ref.url("http://hub.test")
    assert ref.source == "hf:org/repo@v1.0:sub/model.gguf"


def test_file_and_bundled_refs() -> None:
    assert parse_model_ref("file:/models/a b.gguf") == FileRef(Path("/models/a b.gguf"))
    assert default_model_id(FileRef(Path("/models/a b.gguf"))) == "a-b"
    assert parse_model_ref("gemma-3-270m") == BundledRef()


@pytest.mark.parametrize(
    "ref",
    [
        "hf:org/repo",
        "hf:org:file.gguf",
        "hf:org/repo:../escape.gguf",
        "hf:org/repo:/abs.gguf",
        "hf:org/repo:model.bin",
        "hf:o rg/repo:model.gguf",
        "hf:org/repo@../x:model.gguf",
        "file:relative.gguf",
        "file:/etc/passwd",
        "https://example.com/model.gguf",
    ],
)
def test_invalid_refs_rejected(ref: str) -> None:
    with pytest.raises(InvalidRequestError, match="Invalid model reference"):
        parse_model_ref(ref)


def test_catalog_upgrades_old_schema(tmp_path: Path) -> None:
    db_path = tmp_path / "catalog.sqlite3"
    old = sqlite3.connect(db_path)
    old.execute(
        "CREATE TABLE models (id TEXT PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL, "
        "path TEXT NOT NULL, size INTEGER, sha256 TEXT, state TEXT NOT NULL, "
        "added_at TEXT NOT NULL, last_used_at TEXT)"
    )
    old.execute("INSERT INTO models VALUES ('m', 'm', 'file:/m.gguf', '/m.gguf', 1, NULL, "
                "'available', '2026-01-01T00:00:00Z', NULL)")
    old.commit()
    old.close()

    catalog = Catalog(db_path, tmp_path / "models")
    catalog.update("m", architecture="llama", quantization="Q8_0")
    entry = catalog.get("m")
    catalog.close()

    assert entry.architecture == "llama"
    assert entry.quantization == "Q8_0"
    assert entry.context_length is None


def test_catalog_delete(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.sqlite3", tmp_path / "models")
    catalog.add(ModelEntry("m", "m", "file:/m.gguf", "/m.gguf", 1, None, "available",
                           "2026-01-01T00:00:00Z", None))

    catalog.delete("m")

    assert catalog.list() == []
    catalog.close()
