"""Reading GGUF metadata for the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from rbee_daemons.errors import ModelError
from rbee_daemons.hive.gguf_meta import read_gguf_info


def test_reads_written_metadata(small_gguf: bytes, tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(small_gguf)

    info = read_gguf_info(path)

    assert info.architecture == "llama"
    assert info.context_length == 2048
    assert info.quantization == "Q8_0"
    assert info.parameter_count == 1024 * 1024
    assert info.chat_template is True


def test_non_gguf_raises_model_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"not a gguf file at all")

    with pytest.raises(ModelError, match="not a readable GGUF"):
        read_gguf_info(path)


def test_truncated_header_raises_model_error(small_gguf: bytes, tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(small_gguf[:40])

    with pytest.raises(ModelError, match="ends early"):
        read_gguf_info(path)
