"""OpenAPI 3.1 documents for the daemons, built from the pydantic models that validate requests.

Each daemon serves its document at `GET /openapi.json`. Request bodies come from the same
models the handlers validate with, so the document cannot drift from what a daemon accepts.
Response schemas list the keys clients rely on and allow more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rbee_daemons import __version__
from rbee_daemons.operations import Operation

REF_TEMPLATE = "#/components/schemas/{model}"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

JOB_SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["job_id", "operation", "state", "created_at", "events"],
    "properties": {
        "job_id": {"type": "string"},
        "operation": {"type": "string"},
        "state": {"enum": ["queued", "running", "completed", "failed", "cancelled"]},
        "created_at": {"type": "string"},
        "started_at": {"type": ["string", "null"]},
        "finished_at": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "events": {"type": "integer", "minimum": 0},
    },
}

_ERROR_TEXT = {
    400: "Invalid request; the message names the field and the rule.",
    401: "Missing or invalid bearer token.",
    404: "Not found.",
    429: "Every queue is full; retry after `Retry-After` seconds.",
    503: "Not ready, or no hive can serve the request.",
}


def json_body(schema: Mapping[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def object_with(*required: str, **properties: Any) -> dict[str, Any]:
    """Return an object schema requiring `required` keys; `properties` give their schemas."""
    return {"type": "object", "required": list(required), "properties": properties}


# One server-sent event. OpenAPI 3.1 has no `itemSchema`, so tools read the `schema` of a
# text/event-stream response as the schema of each event (Schemathesis 4.32 does).
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"},
                   "id": {"type": "string"}, "retry": {"type": "integer"}},
}


def event_stream(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}}}


@dataclass
class Endpoint:
    """One route of a daemon's document: method, path, request model and responses."""

    method: str
    path: str
    summary: str
    responses: dict[int, dict[str, Any]]
    body: type[BaseModel] | list[type[BaseModel]] | None = None
    errors: tuple[int, ...] = ()
    path_parameters: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def build_document(title: str, endpoints: Iterable[Endpoint], *,
                   token_required: bool) -> dict[str, Any]:
    """Build an OpenAPI 3.1 document for `endpoints`, sharing one components section."""
    endpoints = list(endpoints)
    models = sorted({model for endpoint in endpoints for model in _models(endpoint)},
                    key=lambda model: model.__name__)
    refs, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas["Error"] = ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        operation = _operation(endpoint, refs, token_required)
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if token_required:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http",
                                                                 "scheme": "bearer"}}
    return document


def _models(endpoint: Endpoint) -> list[type[BaseModel]]:
    if endpoint.body is None:
        return []
    return endpoint.body if isinstance(endpoint.body, list) else [endpoint.body]


def _operation(endpoint: Endpoint, refs: Mapping[Any, Any],
               token_required: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {str(status): body for status, body in endpoint.responses.items()}
    errors = set(endpoint.errors)
    if token_required and endpoint.path != "/health":
        errors.add(401)
    for status in sorted(errors):
        responses[str(status)] = json_body({"$ref": "#/components/schemas/Error"},
                                           _ERROR_TEXT[status])
    operation: dict[str, Any] = {"summary": endpoint.summary, "responses": responses,
                                 **endpoint.extra}
    if endpoint.path_parameters:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in endpoint.path_parameters
        ]
    models = _models(endpoint)
    if models:
        schemas = [refs[(model, "validation")] for model in models]
        schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": schema}}}
    if token_required and endpoint.path != "/health":
        operation["security"] = [{"bearer": []}]
    return operation


def job_endpoints(accepted: Mapping[str, type[Operation]]) -> list[Endpoint]:
    """Endpoints of the job server (queen and hive) for the operations in `accepted`."""
    created = object_with("job_id", "sse_url", job_id={"type": "string"},
                          sse_url={"type": "string"})
    cancelled = object_with("job_id", "state", job_id={"type": "string"},
                            state={"type": "string"})
    job_list = object_with("jobs", jobs={"type": "array", "items": JOB_SUMMARY_SCHEMA})
    return [
        Endpoint("POST", "/v1/jobs", "Submit an operation as a job.",
                 {201: json_body(created, "The job was created and has started.")},
                 body=[accepted[name] for name in sorted(accepted)], errors=(400, 429)),
        Endpoint("GET", "/v1/jobs", "List recent jobs, newest first.", {200: json_body(job_list)}),
        Endpoint("GET", "/v1/jobs/{job_id}", "One job's summary.",
                 {200: json_body(JOB_SUMMARY_SCHEMA)}, errors=(404,), path_parameters=("job_id",)),
        Endpoint("DELETE", "/v1/jobs/{job_id}", "Cancel a queued or running job.",
                 {200: json_body(cancelled)}, errors=(404,), path_parameters=("job_id",)),
        Endpoint("GET", "/v1/jobs/{job_id}/stream", "The job's events as server-sent events.",
                 {200: event_stream("The event log, then an end marker.")}, errors=(404,),
                 path_parameters=("job_id",)),
    ]


def openapi_endpoint() -> Endpoint:
    return Endpoint("GET", "/openapi.json", "This document.",
                    {200: json_body({"type": "object"})})


def openapi_route(document: dict[str, Any]) -> Route:
    """Return the `GET /openapi.json` route serving `document`."""
    async def serve(request: Request) -> Response:
        return JSONResponse(document)

    return Route("/openapi.json", serve, methods=["GET"])


def _health(*required: str) -> Endpoint:
    return Endpoint("GET", "/health", "Liveness; served without a token.",
                    {200: json_body(object_with("status", *required, status={"type": "string"}))})


def _completion_responses() -> dict[int, dict[str, Any]]:
    return {200: {"description": "The completion, or its chunks when `stream` is true.",
                  "content": {"application/json": {"schema": {"type": "object"}},
                              "text/event-stream": {"schema": SSE_EVENT_SCHEMA}}}}


def queen_document(token_required: bool) -> dict[str, Any]:
    """Build the queen's document: heartbeats, hives, the OpenAI-compatible API and jobs."""
    # Imported here so the shared core does not load the queen's modules in other daemons.
    from rbee_daemons.operations import ALL_OPERATIONS
    from rbee_daemons.queen.openai_api import ChatBody, CompletionBody
    from rbee_daemons.queen.registry import Heartbeat

    hives = object_with("hives", hives={"type": "array", "items": {"type": "object"}})
    models = object_with("object", "data", object={"const": "list"},
                         data={"type": "array", "items": {"type": "object"}})
    endpoints = [
        _health("version"),
        openapi_endpoint(),
        Endpoint("POST", "/v1/hive-heartbeat", "A hive's heartbeat.",
                 {200: json_body(object_with("ok", ok={"type": "boolean"}))}, body=Heartbeat,
                 errors=(400,)),
        Endpoint("GET", "/v1/hives", "Registered hives and their freshness.",
                 {200: json_body(hives)}),
        Endpoint("GET", "/v1/heartbeats/stream", "Snapshot, then registry changes, as SSE.",
                 {200: event_stream("Registry events.")}),
        Endpoint("GET", "/v1/models", "Models available on online hives.",
                 {200: json_body(models)}),
        Endpoint("POST", "/v1/completions", "OpenAI text completion.", _completion_responses(),
                 body=CompletionBody, errors=(400, 404, 429, 503)),
        Endpoint("POST", "/v1/chat/completions", "OpenAI chat completion.",
                 _completion_responses(), body=ChatBody, errors=(400, 404, 429, 503)),
        *job_endpoints(ALL_OPERATIONS),
    ]
    return build_document("queen-rbee", endpoints, token_required=token_required)


def hive_document(token_required: bool) -> dict[str, Any]:
    """Build the hive's document: health, capabilities and the hive's operations as jobs."""
    from rbee_daemons.operations import ALL_OPERATIONS, HIVE_OPERATIONS

    capabilities = object_with("hive_id", "devices", "backends", hive_id={"type": "string"},
                               devices={"type": "object"}, backends={"type": "array"})
    hive_operations = {name: ALL_OPERATIONS[name] for name in HIVE_OPERATIONS}
    endpoints = [
        _health("hive_id", "version"),
        openapi_endpoint(),
        Endpoint("GET", "/v1/capabilities", "Devices and backends.",
                 {200: json_body(capabilities)}),
        *job_endpoints(hive_operations),
    ]
    return build_document("rbee-hive", endpoints, token_required=token_required)


def worker_document(token_required: bool) -> dict[str, Any]:
    """Build the worker's document: health and the two OpenAI generation endpoints."""
    from rbee_daemons.worker.requests import ChatRequest, CompletionRequest

    health = object_with("status", "worker_id", "model", status={"type": "string"},
                         worker_id={"type": "string"}, model={"type": "string"})
    endpoints = [
        Endpoint("GET", "/health", "Ready (200) or loading or failed (503).",
                 {200: json_body(health), 503: json_body(health, "Loading, or the load failed.")}),
        openapi_endpoint(),
        Endpoint("POST", "/v1/completions", "OpenAI text completion.", _completion_responses(),
                 body=CompletionRequest, errors=(400, 429, 503)),
        Endpoint("POST", "/v1/chat/completions", "OpenAI chat completion.",
                 _completion_responses(), body=ChatRequest, errors=(400, 429, 503)),
    ]
    return build_document("llm-worker-rbee", endpoints, token_required=token_required)
