"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rbee_daemons import narration
from rbee_daemons.jobs import JobRegistry

# Fixtures for the unit tests of the shared core (jobs, narration, job server).

TEST_ACTOR = "test-actor"


@pytest.fixture
async def job_registry() -> AsyncIterator[JobRegistry]:
    """Yield a fresh JobRegistry and cancel its unfinished jobs after the test."""
    registry = JobRegistry()
    yield registry
    await registry.shutdown()


@pytest.fixture
def narration_actor(monkeypatch: pytest.MonkeyPatch) -> str:
    """Set this process's narration actor to TEST_ACTOR and drop global listeners.

    The actor and the listener list are module globals of `rbee_daemons.narration`;
    monkeypatch restores both after the test.
    """
    monkeypatch.setattr(narration, "_actor", TEST_ACTOR)
    monkeypatch.setattr(narration, "_listeners", [])
    return TEST_ACTOR
