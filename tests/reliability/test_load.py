"""Load: 200 concurrent inferences through the queen, none lost or duplicated."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import Cluster, start_cluster
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.e2e

REQUESTS = 200
# One request runs and QUEUE_LIMIT wait per worker, so about a quarter of the burst is
# admitted and the rest overflows. One run thus checks both paths.
QUEUE_LIMIT = 49
PROMPTS = ["The sky is", "Bees make", "One, two, three,", "The capital of France is",
           "Once upon a time"]


@dataclass(frozen=True)
class Answer:
    status: int
    prompt: str
    job_id: str
    text: str
    retry_after: str | None
    error_type: str | None


@pytest.fixture(scope="module")
def load_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("load"),
                            queen_args=("--queue-limit", str(QUEUE_LIMIT)))
    try:
        yield running
    finally:
        running.stop()


def body(prompt: str) -> dict[str, object]:
    return {"model": "gemma-3-270m", "prompt": prompt, "max_tokens": 8, "temperature": 0}


async def send(client: httpx.AsyncClient, index: int) -> Answer:
    """Send request `index` of the burst and keep what the checks need from its response."""
    prompt = PROMPTS[index % len(PROMPTS)]
    response = await client.post("/v1/completions", json=body(prompt))
    payload = response.json()
    text = payload["choices"][0]["text"] if response.status_code == 200 else ""
    error_type = payload.get("error", {}).get("type") if response.status_code != 200 else None
    return Answer(response.status_code, prompt, response.headers.get("x-rbee-job-id", ""),
                  text, response.headers.get("retry-after"), error_type)


async def burst(url: str) -> list[Answer]:
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        return await asyncio.gather(*(send(client, index) for index in range(REQUESTS)))


def test_200_concurrent_infers(load_cluster: Cluster, scenario: Scenario) -> None:
    """200 concurrent infers at temperature 0"""
    reference = {}
    reference_jobs = set()
    for prompt in PROMPTS:
        response = httpx.post(f"{load_cluster.queen_url}/v1/completions", json=body(prompt),
                              timeout=120)
        assert response.status_code == 200, response.text
        reference[prompt] = response.json()["choices"][0]["text"]
        reference_jobs.add(response.headers["x-rbee-job-id"])
    scenario.did(f"Computed each of {len(PROMPTS)} prompts' completion (8 tokens, "
                 f"temperature 0) one at a time, then sent {REQUESTS} requests at once to "
                 "the queen's /v1/completions, cycling through the prompts, with one worker "
                 f"and a queue limit of {QUEUE_LIMIT} (1 running and {QUEUE_LIMIT} waiting).")

    answers = asyncio.run(burst(load_cluster.queen_url))

    statuses = Counter(answer.status for answer in answers)
    completed = [answer for answer in answers if answer.status == 200]
    rejected = [answer for answer in answers if answer.status == 429]
    job_ids = [answer.job_id for answer in completed]
    wrong = [answer.prompt for answer in completed if answer.text != reference[answer.prompt]]
    scenario.saw(f"Statuses: {dict(sorted(statuses.items()))}; {len(completed)} completed, "
                 f"{len(wrong)} differed from their reference, {len(set(job_ids))} distinct "
                 "job ids among the completed.")
    assert set(statuses) <= {200, 429}
    assert statuses[200] + statuses[429] == REQUESTS
    assert statuses[200] >= 1 + QUEUE_LIMIT
    assert statuses[429] >= 1
    assert wrong == []
    assert "" not in job_ids
    assert len(set(job_ids)) == len(job_ids)
    assert {answer.retry_after for answer in rejected} == {"1"}
    assert {answer.error_type for answer in rejected} == {"rate_limit_exceeded"}

    jobs = httpx.get(f"{load_cluster.queen_url}/v1/jobs", timeout=10).json()["jobs"]
    history = Counter(job["job_id"] for job in jobs
                      if job["operation"] == "infer" and job["state"] == "completed")
    assert set(history) == set(job_ids) | reference_jobs
    assert set(history.values()) == {1}
    scenario.saw("Every answer was 200 or 429, each 429 in the OpenAI shape with "
                 "`Retry-After: 1`; every completed text equalled its prompt's reference; the "
                 "job history lists exactly the completed requests, each once.")
