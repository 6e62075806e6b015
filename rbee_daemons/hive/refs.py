"""Model references a user can download: `hf:<org>/<repo>[@<revision>]:<file.gguf>`,
`file:<absolute path>`, or the id of the bundled model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from rbee_daemons.errors import InvalidRequestError
from rbee_daemons.operations import DEFAULT_MODEL_ID

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
_HF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class HubRef:
    org: str
    repo: str
    file: str
    revision: str = "main"

    @property
    def source(self) -> str:
        revision = "" if self.revision == "main" else f"@{self.revision}"
        return f"hf:{self.org}/{self.repo}{revision}:{self.file}"

    def url(self, endpoint: str | None = None) -> str:
        """Return the hub URL `<endpoint>/<org>/<repo>/resolve/<revision>/<file>`."""
        base = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")
        return (f"{base}/{self.org}/{self.repo}/resolve/{quote(self.revision, safe='')}/"
                f"{quote(self.file)}")


@dataclass(frozen=True)
class FileRef:
    path: Path

    @property
    def source(self) -> str:
        return f"file:{self.path}"


@dataclass(frozen=True)
class BundledRef:
    model_id: str = DEFAULT_MODEL_ID

    @property
    def source(self) -> str:
        return f"bundled:{self.model_id}"


ModelRef = HubRef | FileRef | BundledRef


def parse_model_ref(ref: str) -> ModelRef:
    """Parse a model reference; raise InvalidRequestError naming the rule it breaks."""
    if ref in (DEFAULT_MODEL_ID, f"bundled:{DEFAULT_MODEL_ID}"):
        return BundledRef()
    if ref.startswith("hf:"):
        return _parse_hub(ref)
    if ref.startswith("file:"):
        return _parse_file(ref)
    raise InvalidRequestError(
        f"Invalid model reference {ref!r}: use hf:<org>/<repo>:<file.gguf>, "
        f"file:<absolute path to a .gguf> or {DEFAULT_MODEL_ID!r}.",
        code="invalid_model_ref",
    )


def _parse_hub(ref: str) -> HubRef:
    repo_part, sep, file = ref.removeprefix("hf:").partition(":")
    repo_path, _, revision = repo_part.partition("@")
    org, slash, repo = repo_path.partition("/")
    problem = None
    if not sep or not slash:
        problem = "it needs the form hf:<org>/<repo>:<file.gguf>"
    elif not _HF_NAME.match(org) or not _HF_NAME.match(repo):
        problem = "org and repo may contain letters, digits, '.', '_' and '-' only"
    elif revision and (not _REVISION.match(revision) or ".." in revision):
        problem = "the revision may contain letters, digits, '.', '_', '-' and '/' only"
    else:
        problem = _file_problem(file)
    if problem:
        raise InvalidRequestError(f"Invalid model reference {ref!r}: {problem}.",
                                  code="invalid_model_ref")
    return HubRef(org, repo, file, revision or "main")


def _file_problem(file: str) -> str | None:
    parts = PurePosixPath(file).parts
    if not file.endswith(".gguf"):
        return "the file name must end in .gguf"
    if file.startswith("/") or ".." in parts or "\\" in file or "\x00" in file:
        return "the file must be a relative path inside the repository"
    return None


def _parse_file(ref: str) -> FileRef:
    path = Path(ref.removeprefix("file:")).expanduser()
    if not path.is_absolute():
        raise InvalidRequestError(f"Invalid model reference {ref!r}: the path must be absolute.",
                                  code="invalid_model_ref")
    if path.suffix != ".gguf":
        raise InvalidRequestError(f"Invalid model reference {ref!r}: the file must be a .gguf.",
                                  code="invalid_model_ref")
    return FileRef(path)


def default_model_id(ref: ModelRef) -> str:
    """Derive a catalog id from a reference: the file name without `.gguf`, sanitised."""
    if isinstance(ref, BundledRef):
        return ref.model_id
    name = PurePosixPath(ref.file).name if isinstance(ref, HubRef) else ref.path.name
    stem = name.removesuffix(".gguf")
    cleaned = _ID_UNSAFE.sub("-", stem).strip("-._")[:128]
    if not cleaned:
        raise InvalidRequestError(
            f"Cannot derive a model id from {name!r}; pass an explicit `id`.",
            code="invalid_model_ref",
        )
    return cleaned
