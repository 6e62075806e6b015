"""Unit tests of the hive's SQLite model catalog and model folder checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from rbee_daemons.errors import InvalidRequestError, NotFoundError
from rbee_daemons.hive.catalog import Catalog, ModelEntry, model_folder


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def catalog(tmp_path: Path, models_root: Path) -> Iterator[Catalog]:
    opened = Catalog(tmp_path / "catalog.sqlite", models_root)
    yield opened
    opened.close()


def make_entry(model_id: str = "gemma-3-270m", **changes: object) -> ModelEntry:
    entry = ModelEntry(
        id=model_id,
        name=f"{model_id} (Q4_K_M)",
        source="bundled",
        path=f"/models/{model_id}/model.gguf",
        size=253_000_000,
        sha256="ab" * 32,
        state="available",
        added_at="2026-01-01T00:00:00.000Z",
        last_used_at=None,
    )
    for key, value in changes.items():
        setattr(entry, key, value)
    return entry


def test_catalog_creates_models_root(catalog: Catalog, models_root: Path) -> None:
    assert models_root.is_dir()


def test_catalog_add_then_get(catalog: Catalog) -> None:
    entry = make_entry()
    catalog.add(entry)

    assert catalog.get(entry.id) == entry


def test_catalog_get_unknown_raises(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match="'missing-model'"):
        catalog.get("missing-model")


def test_catalog_list_empty(catalog: Catalog) -> None:
    assert catalog.list() == []


def test_catalog_list_sorted_by_id(catalog: Catalog) -> None:
    for model_id in ("zeta", "alpha", "mid"):
        catalog.add(make_entry(model_id))

    assert [entry.id for entry in catalog.list()] == ["alpha", "mid", "zeta"]


def test_catalog_add_replaces_same_id(catalog: Catalog) -> None:
    catalog.add(make_entry(state="downloading"))
    catalog.add(make_entry(state="available"))

    assert len(catalog.list()) == 1
    assert catalog.get("gemma-3-270m").state == "available"


def test_catalog_update_changes_columns(catalog: Catalog) -> None:
    catalog.add(make_entry(state="downloading", size=None))

    catalog.update("gemma-3-270m", state="available", size=1234)
    entry = catalog.get("gemma-3-270m")

    assert entry.state == "available"
    assert entry.size == 1234
    assert entry.name == "gemma-3-270m (Q4_K_M)"


def test_catalog_update_unknown_column_raises(catalog: Catalog) -> None:
    catalog.add(make_entry())

    with pytest.raises(ValueError, match="added_at"):
        catalog.update("gemma-3-270m", added_at="never")


def test_catalog_update_rejects_id_column(catalog: Catalog) -> None:
    catalog.add(make_entry())

    with pytest.raises(ValueError, match="'id'"):
        catalog.update("gemma-3-270m", id="renamed")


def test_catalog_invalid_state_rejected(catalog: Catalog) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        catalog.add(make_entry(state="half-done"))


def test_catalog_touch_sets_last_used(catalog: Catalog) -> None:
    catalog.add(make_entry())

    catalog.touch("gemma-3-270m")

    assert catalog.get("gemma-3-270m").last_used_at is not None


def test_catalog_ensure_adds_missing(catalog: Catalog) -> None:
    catalog.ensure(make_entry())

    assert catalog.get("gemma-3-270m").source == "bundled"


def test_catalog_ensure_does_not_overwrite(catalog: Catalog) -> None:
    catalog.add(make_entry(source="file:/data/gemma.gguf", state="failed"))

    catalog.ensure(make_entry(source="bundled", state="available"))
    entry = catalog.get("gemma-3-270m")

    assert entry.source == "file:/data/gemma.gguf"
    assert entry.state == "failed"


def test_catalog_survives_reopen(tmp_path: Path, models_root: Path) -> None:
    db_path = tmp_path / "catalog.sqlite"
    first = Catalog(db_path, models_root)
    first.add(make_entry())
    first.close()

    second = Catalog(db_path, models_root)
    try:
        assert second.get("gemma-3-270m") == make_entry()
    finally:
        second.close()


def test_catalog_entry_to_dict(catalog: Catalog) -> None:
    catalog.add(make_entry())

    assert catalog.get("gemma-3-270m").to_dict()["id"] == "gemma-3-270m"


@pytest.mark.parametrize("model_id", ["gemma-3-270m", "Qwen2.5_0.5B", "a", "x" * 128])
def test_model_folder_accepts_normal_id(models_root: Path, model_id: str) -> None:
    folder = model_folder(models_root, model_id)

    assert folder == models_root.resolve() / model_id


@pytest.mark.parametrize(
    "model_id",
    ["..", ".", "../etc", "a/b", "a\\b", "/etc", "/tmp/evil", "", ".hidden", "x" * 129, "a b"],
)
def test_model_folder_rejects_unsafe_id(models_root: Path, model_id: str) -> None:
    with pytest.raises(InvalidRequestError, match="Invalid model id"):
        model_folder(models_root, model_id)


def test_model_folder_rejects_trailing_newline(models_root: Path) -> None:
    with pytest.raises(InvalidRequestError):
        model_folder(models_root, "gemma\n")
