"""Fixtures for the hive's unit tests: a small valid GGUF and a fake hub serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from tests.hive.fake_hub import FakeHub, running_hub

REPO_FILE = "rbee-test/tiny-GGUF/tiny-Q8_0.gguf"


def write_small_gguf(path: Path, *, tensor_bytes: int = 4 * 1024 * 1024) -> bytes:
    """Write a valid GGUF with llama metadata and one random float32 tensor; return its bytes."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny test model")
    writer.add_context_length(2048)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_chat_template("{{ messages[0]['content'] }}")
    values = np.random.default_rng(7).random(tensor_bytes // 4, dtype=np.float32)
    writer.add_tensor("weights", values.reshape(-1, 256))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture(scope="session")
def small_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_small_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def hub(small_gguf: bytes) -> Iterator[FakeHub]:
    with running_hub() as running:
        running.add(REPO_FILE, small_gguf)
        yield running
