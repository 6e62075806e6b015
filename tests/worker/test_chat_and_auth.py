"""The worker's chat endpoint and its network-mode bearer token, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from rbee_daemons.hive import default_model
from rbee_daemons.worker.chat import ChatMessage, ChatTemplate, gemma_prompt
from tests.e2e.conftest import free_port, isolated_env, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "worker-test-token-0123456789abcdefghijklmnop"
MESSAGES = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What colour is the sky?"}]


@pytest.fixture(scope="module")
def worker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A worker in network mode (a token in its environment) bound to loopback."""
    root = tmp_path_factory.mktemp("chat-worker")
    model = root / default_model.FILE_NAME
    default_model.assemble(model)
    port = free_port()
    env = {**isolated_env(root), "RBEE_WORKER_TOKEN": TOKEN}
    with (root / "worker.out").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rbee_daemons.worker", "--model-path", str(model),
             "--model-id", "gemma-3-270m", "--worker-id", "worker-chat", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 60, "the worker to load its model")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def chat(**fields: Any) -> dict[str, Any]:
    return {"messages": MESSAGES, "max_tokens": 8, "temperature": 0, **fields}


def test_token_required(worker_url: str) -> None:
    missing = httpx.post(f"{worker_url}/v1/chat/completions", json=chat())
    wrong = httpx.post(f"{worker_url}/v1/chat/completions", json=chat(),
                       headers={"Authorization": "Bearer nope"})

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"


def test_token_not_in_command_line(worker_url: str) -> None:
    import psutil

    port = int(worker_url.rsplit(":", 1)[1])
    owners = [c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port
              and c.status == psutil.CONN_LISTEN]
    assert owners
    assert all(TOKEN not in " ".join(psutil.Process(pid).cmdline()) for pid in owners)


def test_chat_stream_shape(worker_url: str) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    with httpx.Client(timeout=60, headers=auth()) as client, connect_sse(
        client, "POST", f"{worker_url}/v1/chat/completions", json=body
    ) as source:
        assert source.response.status_code == 200
        data = [message.data for message in source.iter_sse()]

    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishing[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] > 10
    assert "timings" in chunks[-1]["usage"]


def test_chat_non_streaming(worker_url: str) -> None:
    response = httpx.post(f"{worker_url}/v1/chat/completions", json=chat(), headers=auth(),
                          timeout=60)

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(body["choices"][0]["message"]["content"], str)
    assert body["usage"]["completion_tokens"] <= 8


def test_chat_narration_when_asked(worker_url: str) -> None:
    headers = {**auth(), "X-Rbee-Narration": "1"}
    with httpx.Client(timeout=60, headers=headers) as client, connect_sse(
        client, "POST", f"{worker_url}/v1/chat/completions", json=chat(stream=True)
    ) as source:
        kinds = [message.event for message in source.iter_sse()]

    assert "narration" in kinds


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"messages": [{"role": "user"}]}, "content"),
        ({"messages": MESSAGES, "n": 3}, "n"),
    ],
)
def test_invalid_chat_names_field(worker_url: str, body: dict[str, Any], field: str) -> None:
    response = httpx.post(f"{worker_url}/v1/chat/completions", json=body, headers=auth())

    assert response.status_code == 400
    assert field in response.json()["error"]["message"]


def test_gemma_prompt_folds_system_into_user() -> None:
    prompt = gemma_prompt([ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"),
                           ChatMessage("assistant", "Hello"), ChatMessage("user", "Sky?")])

    assert prompt.text == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nSky?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert prompt.stop == ["<end_of_turn>"]


def test_jinja_template_strips_bos(tmp_path: Path) -> None:
    template = ChatTemplate(
        "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}",
        bos_token="<s>", eos_token="</s>",
    )

    prompt = template.render([ChatMessage("user", "hi")])

    assert prompt.text == "[user]hi"
