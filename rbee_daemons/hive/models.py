"""The hive's model store: the catalog plus the files, downloads and imports behind it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath

import httpx

from rbee_daemons.errors import InvalidRequestError, ModelError, NotFoundError
from rbee_daemons.events import utc_timestamp
from rbee_daemons.hive import default_model
from rbee_daemons.hive.catalog import Catalog, ModelEntry, model_folder
from rbee_daemons.hive.downloads import Download, DownloadPolicy, DownloadRequest, hub_headers
from rbee_daemons.hive.gguf_meta import read_gguf_info
from rbee_daemons.hive.refs import (
    BundledRef,
    FileRef,
    HubRef,
    ModelRef,
    default_model_id,
    parse_model_ref,
)
from rbee_daemons.narration import narrate

logger = logging.getLogger(__name__)


class ModelStore:
    """Model files under `<data>/models/<id>/`, described by the SQLite catalog."""

    def __init__(self, catalog: Catalog, policy: DownloadPolicy | None = None) -> None:
        self.catalog = catalog
        self.policy = policy or DownloadPolicy()
        self._locks: dict[str, asyncio.Lock] = {}
        self._downloads: dict[str, asyncio.Task[ModelEntry]] = {}

    def interrupted_downloads(self) -> list[ModelEntry]:
        """Entries a previous hive process left in `downloading`, to be resumed."""
        return [entry for entry in self.catalog.list()
                if entry.state == "downloading" and entry.id not in self._downloads]

    async def download(self, ref_text: str, model_id: str | None,
                       sha256: str | None) -> ModelEntry:
        """Provision a model from a reference; return its catalog entry once available.

        A second request for a model that is already downloading waits for the same transfer.
        """
        ref = parse_model_ref(ref_text)
        if isinstance(ref, BundledRef):
            entry = await asyncio.to_thread(self.catalog.get, ref.model_id)
            await self.prepare(entry)
            return await asyncio.to_thread(self.catalog.get, ref.model_id)
        model_id = model_id or default_model_id(ref)
        model_folder(self.catalog.models_root, model_id)
        existing = await asyncio.to_thread(self._find, model_id)
        if existing is not None and existing.source != ref.source:
            raise InvalidRequestError(
                f"The model id {model_id!r} already belongs to {existing.source}; pass another "
                "`id` or delete the existing model first.", code="model_id_taken",
            )
        running = self._downloads.get(model_id)
        if running is not None:
            _narrate_joined(model_id)
            return await asyncio.shield(running)
        if existing is not None and existing.state == "available" and (
            await asyncio.to_thread(_file_size, Path(existing.path)) is not None
        ):
            _narrate_present(existing)
            return existing
        task = asyncio.create_task(self._fetch(model_id, ref, sha256, existing))
        self._downloads[model_id] = task
        task.add_done_callback(lambda _: self._downloads.pop(model_id, None))
        return await task

    def _find(self, model_id: str) -> ModelEntry | None:
        try:
            return self.catalog.get(model_id)
        except NotFoundError:
            return None

    async def _fetch(self, model_id: str, ref: HubRef | FileRef, sha256: str | None,
                     existing: ModelEntry | None) -> ModelEntry:
        file_name = PurePosixPath(ref.file).name if isinstance(ref, HubRef) else ref.path.name
        target = model_folder(self.catalog.models_root, model_id) / file_name
        entry = ModelEntry(
            id=model_id, name=_display_name(ref), source=ref.source, path=str(target),
            size=None, sha256=sha256, state="downloading",
            added_at=existing.added_at if existing else utc_timestamp(), last_used_at=None,
        )
        await asyncio.to_thread(self.catalog.add, entry)
        try:
            size, digest = await self._transfer(model_id, ref, target, sha256)
            info = await asyncio.to_thread(read_gguf_info, target)
        except BaseException as exc:
            await asyncio.to_thread(self.catalog.update, model_id, state="failed")
            if isinstance(exc, asyncio.CancelledError):
                _narrate_cancelled(model_id)
            raise
        done = replace(entry, size=size, sha256=digest, state="available",
                       architecture=info.architecture, context_length=info.context_length,
                       parameter_count=info.parameter_count, quantization=info.quantization)
        await asyncio.to_thread(self.catalog.add, done)
        _narrate_available(done)
        return done

    async def _transfer(self, model_id: str, ref: HubRef | FileRef, target: Path,
                        sha256: str | None) -> tuple[int, str]:
        if isinstance(ref, FileRef):
            return await asyncio.to_thread(import_file, model_id, ref.path, target, sha256)
        request = DownloadRequest(model_id, ref.url(), target, sha256, hub_headers())
        async with httpx.AsyncClient() as client:
            return await Download(client, request, self.policy).run()

    async def delete(self, model_id: str) -> ModelEntry:
        """Cancel a running download of the model, remove its files and its catalog row."""
        entry = await asyncio.to_thread(self.catalog.get, model_id)
        running = self._downloads.get(model_id)
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        folder = model_folder(self.catalog.models_root, model_id)
        await asyncio.to_thread(shutil.rmtree, folder, True)
        await asyncio.to_thread(self.catalog.delete, model_id)
        return entry

    async def prepare(self, entry: ModelEntry) -> Path:
        """Return the model's file path, assembling the bundled model on first use."""
        lock = self._locks.setdefault(entry.id, asyncio.Lock())
        async with lock:
            entry = await asyncio.to_thread(self.catalog.get, entry.id)
            if entry.state != "available":
                raise ModelError(
                    f"Model {entry.id!r} is {entry.state}, not available; download it again "
                    "with `rbee --no-tui model download REF`.", code="model_not_available",
                )
            path = Path(entry.path)
            bundled = entry.source == default_model.SOURCE
            size = await asyncio.to_thread(_file_size, path)
            if size is not None:
                # A bundled file is trusted once its sha256 was verified at this size.
                verified = entry.sha256 is not None and size == entry.size
                if not bundled or verified:
                    return path
            elif not bundled:
                raise ModelError(
                    f"The file of model {entry.id!r} is missing at {path}; download it again."
                )
            return await self._assemble_default(entry, path)

    async def _assemble_default(self, entry: ModelEntry, path: Path) -> Path:
        narrate(
            "hive_model_assemble",
            f"Assembling the bundled model {entry.id} into {path.parent}.",
            cute=f"🧩 Piecing {entry.id} together, chunk by chunk!",
            story=f'"The pieces are all here," said the hive, fitting {entry.id} together.',
            model=entry.id,
        )
        size, sha256 = await asyncio.to_thread(default_model.assemble, path)
        info = await asyncio.to_thread(read_gguf_info, path)
        await asyncio.to_thread(
            self.catalog.update, entry.id, size=size, sha256=sha256, state="available",
            architecture=info.architecture, context_length=info.context_length,
            parameter_count=info.parameter_count, quantization=info.quantization,
        )
        narrate(
            "hive_model_ready",
            f"Model {entry.id} is ready ({size / 1e6:.0f} MB, sha256 verified).",
            cute=f"✨ {entry.id} is whole again, {size / 1e6:.0f} MB of brains!",
            story=f'"Verified to the last byte," said the hive of {entry.id}.',
            model=entry.id,
            size=size,
        )
        return path


def import_file(model_id: str, source: Path, target: Path, sha256: str | None) -> tuple[int, str]:
    """Copy a local GGUF into the store while hashing it; return its size and sha256."""
    if not source.is_file():
        raise ModelError(f"Cannot import {model_id}: {source} is not a file on this machine.",
                         code="model_not_found")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reader, partial.open("wb") as writer:
        while block := reader.read(1024 * 1024):
            digest.update(block)
            writer.write(block)
            size += len(block)
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        partial.unlink()
        raise ModelError(f"{source} has sha256 {digest.hexdigest()}, expected {sha256.lower()}.",
                         code="checksum_mismatch")
    partial.replace(target)
    return size, digest.hexdigest()


def _display_name(ref: ModelRef) -> str:
    if isinstance(ref, HubRef):
        return f"{ref.org}/{ref.repo}:{ref.file}"
    return ref.path.name if isinstance(ref, FileRef) else ref.model_id


def _file_size(path: Path) -> int | None:
    """Return the size of a regular file, or None when there is none at `path`."""
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _narrate_joined(model_id: str) -> None:
    narrate(
        "hive_model_download_join",
        f"{model_id} is already downloading; waiting for that download to finish.",
        cute=f"🐝 Another bee is already carrying {model_id}; flying alongside!",
        story=f'"Someone is already fetching {model_id}," said the hive. "I will wait."',
        model=model_id,
    )


def _narrate_present(entry: ModelEntry) -> None:
    narrate(
        "hive_model_present",
        f"{entry.id} is already in the catalog ({(entry.size or 0) / 1e6:.1f} MB); nothing to do.",
        cute=f"🍯 {entry.id} is already in the pantry!",
        story=f'"We have {entry.id} already," said the hive, pointing at the shelf.',
        model=entry.id,
    )


def _narrate_available(entry: ModelEntry) -> None:
    narrate(
        "hive_model_available",
        f"{entry.id} is available: {(entry.size or 0) / 1e6:.1f} MB, sha256 {entry.sha256}, "
        f"{entry.architecture or 'unknown architecture'}, {entry.quantization or '?'}.",
        cute=f"✨ {entry.id} landed safely and checks out!",
        story=f'"{entry.id} is home and whole," reported the hive.',
        model=entry.id, size=entry.size, sha256=entry.sha256,
    )


def _narrate_cancelled(model_id: str) -> None:
    narrate(
        "hive_model_download_cancelled",
        f"The download of {model_id} was cancelled; the received bytes are kept, so running "
        "it again resumes.",
        cute=f"🛑 The bees put {model_id} down for now.",
        story=f'"Stop fetching {model_id}," said the queen. "Stopping," said the hive.',
        level="warn", model=model_id,
    )
