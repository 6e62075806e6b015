"""Unit tests of parse_operation: validation of job submissions at the edge."""

from __future__ import annotations

from typing import Any

import pytest

from rbee_daemons.errors import InvalidRequestError
from rbee_daemons.operations import (
    ALL_OPERATIONS,
    DEFAULT_MODEL_ID,
    MAX_PROMPT_CHARS,
    MAX_TOKENS_LIMIT,
    InferOperation,
    ModelGetOperation,
    StatusOperation,
    parse_operation,
)


def rejection(body: dict[str, Any]) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        parse_operation(body, ALL_OPERATIONS)
    return caught.value


def infer_body(**fields: Any) -> dict[str, Any]:
    return {"operation": "infer", "prompt": "Once upon a time", **fields}


def test_parse_status() -> None:
    assert isinstance(parse_operation({"operation": "status"}, ALL_OPERATIONS), StatusOperation)


def test_parse_infer_defaults() -> None:
    operation = parse_operation(infer_body(), ALL_OPERATIONS)

    assert isinstance(operation, InferOperation)
    assert operation.model == DEFAULT_MODEL_ID
    assert operation.max_tokens == 128
    assert operation.temperature == 0.8
    assert operation.stop is None


def test_parse_infer_all_fields() -> None:
    body = infer_body(
        model="gemma-3-270m",
        max_tokens=16,
        temperature=0,
        top_p=0.9,
        top_k=40,
        seed=7,
        stop=["\n\n"],
        hive_id="workstation",
        worker_id="worker-9301",
    )

    operation = parse_operation(body, ALL_OPERATIONS)

    assert operation.model_dump(exclude_none=True) == body


def test_parse_model_get_id() -> None:
    operation = parse_operation({"operation": "model_get", "id": "gemma-3-270m"}, ALL_OPERATIONS)

    assert isinstance(operation, ModelGetOperation)
    assert operation.id == "gemma-3-270m"


@pytest.mark.parametrize("body", [{}, {"operation": ""}, {"operation": None}])
def test_parse_missing_operation(body: dict[str, Any]) -> None:
    error = rejection(body)

    assert error.code == "missing_operation"
    assert "'operation'" in error.message


def test_parse_operation_of_wrong_type() -> None:
    error = rejection({"operation": 5})

    assert error.code == "invalid_field"
    assert "must be a string" in error.message


def test_parse_unknown_operation_lists_accepted() -> None:
    error = rejection({"operation": "fly_away"})

    assert error.code == "unknown_operation"
    assert "'fly_away'" in error.message
    for name in ALL_OPERATIONS:
        assert name in error.message, name


def test_parse_unknown_for_this_daemon() -> None:
    accepted = {"status": StatusOperation}

    with pytest.raises(InvalidRequestError, match="accepts: status") as caught:
        parse_operation(infer_body(), accepted)

    assert caught.value.code == "unknown_operation"


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"max_tokens": "5"}, "max_tokens"),
        ({"max_tokens": 5.0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": "0.5"}, "temperature"),
        ({"top_p": "0.9"}, "top_p"),
        ({"seed": "1"}, "seed"),
        ({"stop": "\n"}, "stop"),
        ({"model": 3}, "model"),
        ({"prompt": ["a", "b"]}, "prompt"),
    ],
)
def test_parse_wrong_type_rejected(fields: dict[str, Any], field_name: str) -> None:
    error = rejection(infer_body(**fields))

    assert error.code == "invalid_field"
    assert f"'{field_name}'" in error.message


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": MAX_TOKENS_LIMIT + 1}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 1001}, "top_k"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop.0"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
    ],
)
def test_parse_out_of_range_rejected(fields: dict[str, Any], field_name: str) -> None:
    error = rejection(infer_body(**fields))

    assert error.code == "invalid_field"
    assert f"'{field_name}'" in error.message


def test_parse_range_limits_accepted() -> None:
    body = infer_body(max_tokens=MAX_TOKENS_LIMIT, temperature=2.0, top_p=1.0, seed=2**32 - 1)

    operation = parse_operation(body, ALL_OPERATIONS)

    assert isinstance(operation, InferOperation)
    assert operation.max_tokens == MAX_TOKENS_LIMIT


def test_parse_extra_field_rejected() -> None:
    error = rejection(infer_body(max_new_tokens=5))

    assert error.code == "invalid_field"
    assert "'max_new_tokens'" in error.message
    assert "not accepted" in error.message


def test_parse_extra_field_on_status_rejected() -> None:
    error = rejection({"operation": "status", "verbose": True})

    assert "'verbose'" in error.message


def test_parse_missing_field_named() -> None:
    error = rejection({"operation": "model_get"})

    assert error.code == "invalid_field"
    assert error.message == "The field 'id' is required."


def test_parse_infer_without_prompt_rejected() -> None:
    error = rejection({"operation": "infer"})

    assert error.code == "invalid_field"
    assert "'prompt'" in error.message


def test_parse_infer_prompt_and_messages_rejected() -> None:
    error = rejection(infer_body(messages=[{"role": "user", "content": "Hi"}]))

    assert error.code == "invalid_field"
    assert "'prompt'" in error.message
    assert "'messages'" in error.message


@pytest.mark.parametrize(
    "model_id",
    ["../etc", "..", ".", "a/b", "/etc/passwd", "a\\b", "gemma\n", " gemma", "", "x" * 129],
)
def test_parse_path_like_model_rejected(model_id: str) -> None:
    error = rejection(infer_body(model=model_id))

    assert error.code == "invalid_field"
    assert "'model'" in error.message


@pytest.mark.parametrize("field_name", ["hive_id", "worker_id"])
def test_parse_path_like_ids_rejected(field_name: str) -> None:
    error = rejection(infer_body(**{field_name: "../queen"}))

    assert f"'{field_name}'" in error.message


def test_parse_path_like_model_get_id_rejected() -> None:
    error = rejection({"operation": "model_get", "id": "a/b"})

    assert "'id'" in error.message


def test_parse_nul_in_prompt_rejected() -> None:
    error = rejection(infer_body(prompt="before\x00after"))

    assert error.code == "invalid_field"
    assert "'prompt'" in error.message
    assert "NUL" in error.message


def test_parse_error_quotes_long_input_briefly() -> None:
    error = rejection(infer_body(model="y" * 500))

    assert len(error.message) < 300


def test_parse_worker_spawn_device_limited() -> None:
    error = rejection({"operation": "worker_spawn", "device": "cuda:0"})

    assert "'device'" in error.message


def test_parse_infer_messages_accepted() -> None:
    body = {"operation": "infer", "messages": [{"role": "user", "content": "Hello"}]}

    operation = parse_operation(body, ALL_OPERATIONS)

    assert isinstance(operation, InferOperation)
    assert operation.prompt is None


def test_parse_infer_message_role_rejected() -> None:
    error = rejection({"operation": "infer", "messages": [{"role": "root", "content": "Hi"}]})

    assert "'messages.0.role'" in error.message
