"""The queen's OpenAI-compatible API, driven by the official `openai` client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from httpx_sse import connect_sse

from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

MODEL = "gemma-3-270m"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def client(cluster: Cluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cluster.queen_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture
async def async_client(cluster: Cluster) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{cluster.queen_url}/v1", api_key="unused",
                                max_retries=0)
    yield client
    await client.close()


def test_models_lists_default_model(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]

    assert MODEL in ids


def test_completion_returns_text_and_usage(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8,
                                           temperature=0)

    assert completion.choices[0].text.strip()
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 8
    assert completion.usage.prompt_tokens > 0


def test_completion_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(stream)

    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert text.strip()
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


def test_completion_stream_matches_non_stream(client: openai.OpenAI) -> None:
    plain = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0,
                                      seed=5)
    stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0,
                                       seed=5, stream=True)

    streamed = "".join(chunk.choices[0].text for chunk in stream if chunk.choices)
    assert streamed == plain.choices[0].text


def test_completion_stop_sequence(client: openai.OpenAI) -> None:
    full = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=16, temperature=0)
    text = full.choices[0].text
    stop = text.strip().split()[1]

    stopped = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=16,
                                        temperature=0, stop=[stop])

    assert stop not in stopped.choices[0].text
    assert stopped.choices[0].finish_reason == "stop"


async def test_async_client_streams(async_client: openai.AsyncOpenAI) -> None:
    stream = await async_client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=6,
                                                   temperature=0, stream=True)
    pieces = [chunk.choices[0].text async for chunk in stream if chunk.choices]

    assert "".join(pieces).strip()


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8,
        temperature=0,
    )

    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens >= 1


def test_chat_completion_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count to three."}], max_tokens=8,
        temperature=0, stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None


async def test_async_chat(async_client: openai.AsyncOpenAI) -> None:
    reply = await async_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0,
    )

    assert reply.choices[0].message.content


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.completions.create(model="no-such-model", prompt=PROMPT, max_tokens=4)

    assert "no-such-model" in str(raised.value)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": 5}, "temperature"),
        ({"n": 2}, "n"),
        ({"prompt": ""}, "prompt"),
    ],
)
def test_invalid_request_is_400(cluster: Cluster, fields: dict[str, object], param: str) -> None:
    body = {"model": MODEL, "prompt": PROMPT, **fields}
    response = httpx.post(f"{cluster.queen_url}/v1/completions", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_malformed_json_is_400(cluster: Cluster) -> None:
    response = httpx.post(f"{cluster.queen_url}/v1/chat/completions", content=b"{oops")

    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


def test_openai_request_is_a_job(cluster: Cluster) -> None:
    response = httpx.post(f"{cluster.queen_url}/v1/completions",
                          json={"model": MODEL, "prompt": PROMPT, "max_tokens": 4}, timeout=60)
    job_id = response.headers["X-Rbee-Job-Id"]

    found, marker = cluster.stream(job_id)

    assert found[-1]["type"] == "done"
    assert marker == "[DONE]"


def test_stream_ends_with_done_marker(cluster: Cluster) -> None:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 4, "stream": True}
    with httpx.Client(timeout=60) as http, connect_sse(
        http, "POST", f"{cluster.queen_url}/v1/completions", json=body
    ) as source:
        assert source.response.headers["x-accel-buffering"] == "no"
        data = [message.data for message in source.iter_sse()]

    assert data[-1] == "[DONE]"
    assert json.loads(data[-2])["choices"][0]["finish_reason"] == "length"
