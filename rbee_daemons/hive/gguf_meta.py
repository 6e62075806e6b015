"""GGUF metadata for the catalog: architecture, context length, parameter count, quantisation.

`gguf.GGUFReader` builds every array of the header (a 262k-token vocabulary takes it about
16 s for the bundled Gemma file on a 2-core machine), so this module walks the header itself
with the `gguf` package's type constants and skips arrays without building them.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gguf import GGUF_MAGIC, GGUFValueType, LlamaFileType

from rbee_daemons.errors import ModelError

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
_MAX_STRING_BYTES = 1 << 24


@dataclass(frozen=True)
class GgufInfo:
    architecture: str | None
    context_length: int | None
    parameter_count: int | None
    quantization: str | None
    chat_template: bool


class _Header:
    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        raw = self.handle.read(size)
        if len(raw) != size:
            raise ValueError("the header ends early")
        return struct.unpack(fmt, raw)[0]

    def string(self) -> str:
        length = self.unpack("<Q")
        if length > _MAX_STRING_BYTES:
            raise ValueError(f"a header string claims {length} bytes")
        return self.handle.read(length).decode("utf-8", errors="replace")

    def value(self, kind: GGUFValueType) -> Any:
        if kind == GGUFValueType.STRING:
            return self.string()
        if kind == GGUFValueType.ARRAY:
            self.skip_array()
            return None
        return self.unpack(_SCALARS[kind])

    def skip_array(self) -> None:
        item_kind = GGUFValueType(self.unpack("<I"))
        count = self.unpack("<Q")
        if item_kind in _SCALARS:
            self.handle.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
            return
        for _ in range(count):
            self.value(item_kind)


def read_gguf_info(path: Path) -> GgufInfo:
    """Read the metadata of the GGUF file at `path`; raise ModelError if it is not GGUF."""
    try:
        with path.open("rb") as handle:
            return _read(_Header(handle))
    except (OSError, ValueError, KeyError, struct.error) as exc:
        raise ModelError(f"{path} is not a readable GGUF file: {exc}.") from exc


def _read(header: _Header) -> GgufInfo:
    if header.unpack("<I") != GGUF_MAGIC:
        raise ValueError("the file does not start with the GGUF magic")
    version = header.unpack("<I")
    if version < 2:
        raise ValueError(f"GGUF version {version} is too old")
    tensor_count = header.unpack("<Q")
    kv_count = header.unpack("<Q")
    fields: dict[str, Any] = {}
    for _ in range(kv_count):
        key = header.string()
        fields[key] = header.value(GGUFValueType(header.unpack("<I")))
    parameters = 0
    for _ in range(tensor_count):
        header.string()
        dims = [header.unpack("<Q") for _ in range(header.unpack("<I"))]
        header.unpack("<I")
        header.unpack("<Q")
        parameters += math.prod(dims)
    return _info(fields, parameters)


def _info(fields: dict[str, Any], parameters: int) -> GgufInfo:
    architecture = fields.get("general.architecture")
    context = fields.get(f"{architecture}.context_length") if architecture else None
    return GgufInfo(
        architecture=architecture if isinstance(architecture, str) else None,
        context_length=int(context) if isinstance(context, int) else None,
        parameter_count=parameters or None,
        quantization=_quantization(fields.get("general.file_type")),
        chat_template=isinstance(fields.get("tokenizer.chat_template"), str),
    )


def _quantization(file_type: Any) -> str | None:
    if not isinstance(file_type, int):
        return None
    try:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except ValueError:
        return None
