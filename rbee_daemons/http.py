"""HTTP helpers shared by the daemons: JSON bodies with limits, errors in the OpenAI shape."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from rbee_daemons.errors import (
    InvalidRequestError,
    NoCapacityError,
    NotFoundError,
    QueueFullError,
    RbeeError,
)

MAX_BODY_BYTES = 1024 * 1024

_STATUS_BY_ERROR: list[tuple[type[RbeeError], int, str]] = [
    (InvalidRequestError, 400, "invalid_request_error"),
    (NotFoundError, 404, "not_found_error"),
    (QueueFullError, 429, "rate_limit_exceeded"),
    (NoCapacityError, 503, "service_unavailable"),
]


def error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    error_type: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_body(message, error_type, param=param, code=code)
    return JSONResponse(body, status_code=status, headers=headers)


def response_for_error(exc: RbeeError, param: str | None = None) -> JSONResponse:
    for error_class, status, error_type in _STATUS_BY_ERROR:
        if isinstance(exc, error_class):
            headers = None
            if isinstance(exc, QueueFullError):
                headers = {"Retry-After": str(exc.retry_after)}
            return error_response(status, exc.message, error_type, param=param, code=exc.code,
                                  headers=headers)
    return error_response(500, exc.message, "server_error", code=exc.code)


async def read_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """Read the raw request body; raise InvalidRequestError past `max_bytes` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise InvalidRequestError(
            f"The request body is {declared} bytes; the limit is {max_bytes} bytes."
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise InvalidRequestError(f"The request body exceeds the limit of {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """Read the request body as a JSON object of at most `max_bytes` bytes.

    Raises InvalidRequestError for oversized, non-UTF-8, malformed or non-object bodies.
    """
    raw = await read_body(request, max_bytes)
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid UTF-8: {exc}.") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}."
        ) from exc
    except (ValueError, RecursionError) as exc:
        # Integers beyond Python's digit limit, or nesting deeper than the parser's stack.
        raise InvalidRequestError(
            "The request body is not acceptable JSON: it nests too deeply or holds a number "
            "with too many digits."
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"The request body must be a JSON object, not {type(value).__name__}."
        )
    return value
