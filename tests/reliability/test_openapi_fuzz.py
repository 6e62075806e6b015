"""Bad input: each daemon's OpenAPI document, and Schemathesis against the running daemons."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from rbee_daemons.hive.app import Hive, HiveSettings
from rbee_daemons.queen.app import Queen, QueenSettings
from tests.e2e.conftest import Cluster, free_port, start_cluster
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.e2e

# Examples per operation and generation mode: enough to reach every field, small enough for CI.
EXAMPLES = 12
# Generation is bounded so fuzzed completions end in a few tokens.
FUZZ_MAX_TOKENS = 4
# Streams stay open until their job ends; they are covered by the job and fault tests.
UNFUZZED_PATHS = {"/v1/jobs/{job_id}/stream", "/v1/heartbeats/stream"}
# These start worker processes (300 MB each); a fuzzer would start dozens on a 2-core machine.
UNFUZZED_OPERATIONS = {"worker_spawn", "model_load"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def served_routes(app: Any) -> set[tuple[str, str]]:
    starlette = getattr(app, "app", app)
    found = set()
    for route in starlette.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item}


def test_documents_match_routes(scenario: Scenario, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Each daemon's OpenAPI document lists exactly its routes"""
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    queen = Queen(QueenSettings(persist_jobs=False)).app()
    hive = Hive(HiveSettings()).app()
    scenario.did("Built the queen's and the hive's Starlette apps and compared their route "
                 "tables with the documents they serve at /openapi.json.")

    for app in (queen, hive):
        routes = served_routes(app)
        openapi = next(route for route in getattr(app, "app", app).routes
                       if getattr(route, "path", "") == "/openapi.json")
        document = httpx_document(openapi)
        assert documented_routes(document) == routes

    scenario.saw("The documented (method, path) pairs equal the served ones for both.")


def httpx_document(route: Any) -> dict[str, Any]:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    with TestClient(Starlette(routes=[route])) as client:
        return dict(client.get("/openapi.json").json())


def bounded(document: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `document` that the fuzzer can run without starting long work."""
    document = copy.deepcopy(document)
    for path in UNFUZZED_PATHS:
        document["paths"].pop(path, None)
    for name, schema in document["components"]["schemas"].items():
        properties = schema.get("properties", {})
        for field in ("max_tokens", "max_completion_tokens"):
            for option in _options(properties.get(field)):
                if option.get("type") == "integer":
                    option["maximum"] = FUZZ_MAX_TOKENS
        operation = properties.get("operation", {})
        if operation.get("const") in UNFUZZED_OPERATIONS:
            document["components"]["schemas"][name] = {"not": {}}
    return document


def _options(schema: dict[str, Any] | None) -> list[dict[str, Any]]:
    if schema is None:
        return []
    return [schema, *schema.get("anyOf", [])]


def fuzz(url: str, scenario: Scenario, daemon: str) -> dict[str, int]:
    """Run Schemathesis against every operation of the daemon at `url`; return counts."""
    served = httpx.get(f"{url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(bounded(served))
    calls: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            calls[label] = calls.get(label, 0) + run_cases(url, strategy)
        assert httpx.get(f"{url}/health", timeout=10).status_code in (200, 503), label
    scenario.saw(f"{daemon}: {sum(calls.values())} requests over "
                 f"{len(calls)} operations, no 5xx, every response matched the document, "
                 "and /health still answered after each operation.")
    return calls


def run_cases(url: str, strategy: st.SearchStrategy[Any]) -> int:
    count = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: Any) -> None:
        nonlocal count
        count += 1
        # A hang counts as a failure: no request may take a minute on loopback.
        case.call_and_validate(base_url=url, checks=CHECKS, timeout=60)

    try:
        check()
    except Unsatisfiable:
        # Negative mode on an operation with no body and no parameters: nothing to break.
        pass
    return count


@pytest.fixture(scope="module")
def fuzz_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # Hub downloads must not leave the machine: point them at a closed loopback port.
    previous = os.environ.get("HF_ENDPOINT")
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    try:
        running = start_cluster(tmp_path_factory.mktemp("fuzz"))
    finally:
        if previous is None:
            os.environ.pop("HF_ENDPOINT")
        else:
            os.environ["HF_ENDPOINT"] = previous
    try:
        yield running
    finally:
        running.stop()


def test_schemathesis_queen(fuzz_cluster: Cluster, scenario: Scenario) -> None:
    """Schemathesis against the queen"""
    scenario.did(f"Schemathesis generated {EXAMPLES} valid and {EXAMPLES} invalid requests "
                 "per operation from the queen's /openapi.json (streams excluded, max_tokens "
                 f"capped at {FUZZ_MAX_TOKENS}, worker-starting operations excluded).")
    fuzz(fuzz_cluster.queen_url, scenario, "queen")


def test_schemathesis_hive(fuzz_cluster: Cluster, scenario: Scenario) -> None:
    """Schemathesis against a hive"""
    scenario.did(f"Schemathesis generated {EXAMPLES} valid and {EXAMPLES} invalid requests "
                 "per operation from the hive's /openapi.json (streams and worker-starting "
                 "operations excluded; hub downloads pointed at a closed loopback port).")
    fuzz(fuzz_cluster.hive_url, scenario, "hive")


def test_schemathesis_worker(fuzz_cluster: Cluster, scenario: Scenario) -> None:
    """Schemathesis against a worker"""
    events, marker = fuzz_cluster.run({"operation": "infer", "prompt": "Hi", "max_tokens": 1,
                                       "temperature": 0})
    assert marker == "[DONE]", events
    status, _ = fuzz_cluster.run({"operation": "status"})
    workers = next(e["data"]["workers"] for e in status if e["type"] == "data")
    worker_url = workers[0]["url"]
    scenario.did(f"Started a worker with one inference, then Schemathesis generated {EXAMPLES} "
                 "valid and invalid requests per operation from the worker's /openapi.json "
                 f"(max_tokens capped at {FUZZ_MAX_TOKENS}).")
    fuzz(worker_url, scenario, "worker")
    assert httpx.get(f"{worker_url}/health", timeout=10).json()["status"] == "ready"
