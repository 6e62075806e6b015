"""Scenario records for docs/reliability.md, and fixtures shared by the reliability tests.

A test takes the `scenario` fixture and fills in what it did and what it observed; after the
test, its outcome is added and the record is appended to the results file. `make reliability`
renders the file into docs/reliability.md with scripts/render_reliability.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

RESULTS_ENV = "RBEE_RELIABILITY_RESULTS"
DEFAULT_RESULTS = Path(__file__).resolve().parents[2] / ".reliability" / "results.json"

# Secrets the security scenarios hand to the daemons; the last test greps for them.
QUEEN_TOKEN = "rbee-test-queen-token-6b1f0c2a9d4e8f7a3c5b1d2e9f0a8c7b"
HF_TOKEN = "hf_rbeeTestTokenQx7Lm2Np9Rs4Tv6Wy8Za1Bc3De5"
URL_PASSWORD = "rbee-test-url-password-5Jq2"
SECRETS = (QUEEN_TOKEN, HF_TOKEN, URL_PASSWORD)


@dataclass
class Scenario:
    """What one reliability test did and observed, for the results file."""

    area: str
    name: str
    done: list[str] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)
    outcome: str = "not run"
    test: str = ""

    def did(self, text: str) -> None:
        self.done.append(text)

    def saw(self, text: str) -> None:
        self.observed.append(text)


def results_path() -> Path:
    return Path(os.environ.get(RESULTS_ENV, str(DEFAULT_RESULTS)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    scenario = getattr(item, "_rbee_scenario", None)
    if scenario is not None and (report.when == "call" or report.failed or report.skipped):
        if report.when == "call" or scenario.outcome == "not run":
            scenario.outcome = "xfail" if hasattr(report, "wasxfail") else report.outcome
    return report


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    """A record for this test; its docstring's first line names the scenario."""
    doc = (request.function.__doc__ or request.node.name).strip().splitlines()[0]
    area = request.module.__doc__.strip().splitlines()[0] if request.module.__doc__ else ""
    record = Scenario(area=area, name=doc, test=request.node.nodeid)
    request.node._rbee_scenario = record
    yield record
    _append(record)


def _append(record: Scenario) -> None:
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: list[dict[str, Any]] = []
    if path.exists():
        existing = [entry for entry in json.loads(path.read_text(encoding="utf-8"))
                    if entry["test"] != record.test]
    existing.append(asdict(record))
    path.write_text(json.dumps(existing, indent=1, ensure_ascii=False), encoding="utf-8")
