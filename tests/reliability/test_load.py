"""Load: 200 concurrent inferences through the queen, none lost or duplicated."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Cluster, start_cluster
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.e2e

REQUESTS = 200
PROMPTS = ["The sky is", "Bees make", "One, two, three,", "The capital of France is",
           "Once upon a time"]


@pytest.fixture(scope="module")
def load_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("load"))
    try:
        yield running
    finally:
        running.stop()


def body(prompt: str) -> dict[str, object]:
    return {"model": "gemma-3-270m", "prompt": prompt, "max_tokens": 8, "temperature": 0}


async def send(client: httpx.AsyncClient, index: int) -> tuple[int, str, str, str]:
    """Send request `index`; return its status, prompt, job id and text."""
    prompt = PROMPTS[index % len(PROMPTS)]
    response = await client.post("/v1/completions", json=body(prompt))
    text = response.json()["choices"][0]["text"] if response.status_code == 200 else ""
    return response.status_code, prompt, response.headers.get("x-rbee-job-id", ""), text


async def burst(url: str) -> list[tuple[int, str, str, str]]:
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        return await asyncio.gather(*(send(client, index) for index in range(REQUESTS)))


def test_200_concurrent_infers(load_cluster: Cluster, scenario: Scenario) -> None:
    """200 concurrent infers at temperature 0"""
    reference = {}
    for prompt in PROMPTS:
        response = httpx.post(f"{load_cluster.queen_url}/v1/completions", json=body(prompt),
                              timeout=120)
        reference[prompt] = response.json()["choices"][0]["text"]
    scenario.did(f"Computed each of {len(PROMPTS)} prompts' completion (8 tokens, "
                 f"temperature 0) one at a time, then sent {REQUESTS} requests at once to "
                 "the queen's /v1/completions, cycling through the prompts, with one worker "
                 "and the default queue limit (1 running and 8 queued per worker).")

    results = asyncio.run(burst(load_cluster.queen_url))

    statuses = Counter(status for status, *_ in results)
    completed = [(prompt, job_id, text) for status, prompt, job_id, text in results
                 if status == 200]
    job_ids = [job_id for _, job_id, _ in completed]
    wrong = [prompt for prompt, _, text in completed if text != reference[prompt]]
    scenario.saw(f"Statuses: {dict(sorted(statuses.items()))}; {len(completed)} completed, "
                 f"{len(wrong)} differed from their reference, {len(set(job_ids))} distinct "
                 "job ids among the completed.")
    assert set(statuses) <= {200, 429}
    assert statuses[200] + statuses[429] == REQUESTS
    assert statuses[200] >= 1
    assert wrong == []
    assert len(set(job_ids)) == len(job_ids)
    jobs = httpx.get(f"{load_cluster.queen_url}/v1/jobs", timeout=10).json()["jobs"]
    done = [job for job in jobs if job["operation"] == "infer" and job["state"] == "completed"]
    assert len(done) >= statuses[200] + len(PROMPTS)
    scenario.saw("Every answer was 200 or 429; every completed text equalled its prompt's "
                 "reference; the job history lists each completed request once.")
