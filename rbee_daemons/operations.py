"""Operations a client submits as jobs, validated at submission with pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rbee_daemons.errors import InvalidRequestError

DEFAULT_MODEL_ID = "gemma-3-270m"
MAX_PROMPT_CHARS = 200_000
MAX_TOKENS_LIMIT = 32_768

# Ids of models, hives and workers: letters, digits, dot, underscore, dash; no path separators.
IdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


class Operation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    operation: str


class StatusOperation(Operation):
    operation: Literal["status"]


class QueenCheckOperation(Operation):
    operation: Literal["queen_check"]


class HiveCheckOperation(Operation):
    operation: Literal["hive_check"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]


class InferOperation(Operation):
    """A completion of `prompt`, or a chat reply to `messages` (exactly one of the two)."""

    operation: Literal["infer"]
    model: IdStr = DEFAULT_MODEL_ID
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)] | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=256)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)] = 128
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.8
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=0, le=1000)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    stop: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=4
    )
    hive_id: IdStr | None = None
    worker_id: IdStr | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_has_no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("the prompt must not contain NUL characters")
        return value

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> InferOperation:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send exactly one of 'prompt' and 'messages'")
        total = len(self.prompt or "") + sum(len(m.content) for m in self.messages or [])
        if total > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
        return self


class ModelListOperation(Operation):
    operation: Literal["model_list"]
    hive_id: IdStr | None = None


class ModelGetOperation(Operation):
    operation: Literal["model_get"]
    hive_id: IdStr | None = None
    id: IdStr


# Model refs: `hf:<org>/<repo>:<file.gguf>`, `file:<absolute path>` or a bundled model id.
ModelRefStr = Annotated[str, Field(min_length=1, max_length=1024)]


class ModelDownloadOperation(Operation):
    operation: Literal["model_download"]
    hive_id: IdStr | None = None
    model: ModelRefStr
    # Catalog id for the new entry; derived from the ref when absent.
    id: IdStr | None = None
    # Expected sha256 (64 hex digits) when the source gives none or the user wants to pin it.
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None


class ModelDeleteOperation(Operation):
    operation: Literal["model_delete"]
    hive_id: IdStr | None = None
    id: IdStr


class ModelLoadOperation(Operation):
    operation: Literal["model_load"]
    hive_id: IdStr | None = None
    id: IdStr


class ModelUnloadOperation(Operation):
    operation: Literal["model_unload"]
    hive_id: IdStr | None = None
    id: IdStr


class WorkerSpawnOperation(Operation):
    operation: Literal["worker_spawn"]
    hive_id: IdStr | None = None
    model: IdStr = DEFAULT_MODEL_ID
    device: Literal["cpu"] = "cpu"


class WorkerListOperation(Operation):
    operation: Literal["worker_list"]
    hive_id: IdStr | None = None


class WorkerGetOperation(Operation):
    operation: Literal["worker_get"]
    hive_id: IdStr | None = None
    id: IdStr


class WorkerStopOperation(Operation):
    operation: Literal["worker_stop"]
    hive_id: IdStr | None = None
    id: IdStr


ALL_OPERATIONS: Mapping[str, type[Operation]] = {
    cls.model_fields["operation"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in (
        StatusOperation,
        QueenCheckOperation,
        HiveCheckOperation,
        InferOperation,
        ModelListOperation,
        ModelGetOperation,
        ModelDownloadOperation,
        ModelDeleteOperation,
        ModelLoadOperation,
        ModelUnloadOperation,
        WorkerSpawnOperation,
        WorkerListOperation,
        WorkerGetOperation,
        WorkerStopOperation,
    )
}

HIVE_OPERATIONS = frozenset(
    {
        "hive_check",
        "model_list",
        "model_get",
        "model_download",
        "model_delete",
        "model_load",
        "model_unload",
        "worker_spawn",
        "worker_list",
        "worker_get",
        "worker_stop",
    }
)


def parse_operation(body: dict[str, Any], accepted: Mapping[str, type[Operation]]) -> Operation:
    """Validate a job submission; raise InvalidRequestError naming the field and rule."""
    name = body.get("operation")
    if name is not None and not isinstance(name, str):
        raise InvalidRequestError(
            f"The field 'operation' must be a string, not {type(name).__name__}.",
            code="invalid_field",
        )
    if not name:
        raise InvalidRequestError(
            "The field 'operation' is missing; send e.g. {\"operation\": \"status\"}.",
            code="missing_operation",
        )
    model = accepted.get(name)
    if model is None:
        known = ", ".join(sorted(accepted))
        raise InvalidRequestError(
            f"Unknown operation {name!r}; this daemon accepts: {known}.", code="unknown_operation"
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequestError(validation_message(exc), code="invalid_field") from exc


def validation_message(exc: ValidationError) -> str:
    """Turn pydantic's first error into one sentence that names the field."""
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    if not location:
        return f"Invalid request: {first['msg'].removeprefix('Value error, ')}."
    if first["type"] == "extra_forbidden":
        return f"The field {location!r} is not accepted by this operation; remove it."
    if first["type"] == "missing":
        return f"The field {location!r} is required."
    return f"Invalid field {location!r}: {first['msg']} (got {first.get('input')!r:.80})."
