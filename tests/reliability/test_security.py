"""Security: tokens on every endpoint, binds, constant-time compare, no leaked secrets."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rbee_daemons import auth
from rbee_daemons.auth import write_token_file
from tests.e2e.conftest import Cluster, free_port, isolated_env, start_cluster
from tests.reliability.conftest import HF_TOKEN, QUEEN_TOKEN, SECRETS, URL_PASSWORD, Scenario

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {QUEEN_TOKEN}"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A queen and a hive that both require QUEEN_TOKEN, with HF_TOKEN in their environment."""
    root = tmp_path_factory.mktemp("guarded")
    write_token_file(root / "config" / "rbee" / auth.TOKEN_FILE_NAME, QUEEN_TOKEN)
    # Both daemons read the cluster token from the config dir; the hive also sends it.
    cluster = start_cluster_with_env(root, {"HF_TOKEN": HF_TOKEN})
    try:
        yield cluster
    finally:
        cluster.stop()


def start_cluster_with_env(root: Path, extra: dict[str, str]) -> Cluster:
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        return _started(root)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _started(root: Path) -> Cluster:
    original = httpx.get

    def with_token(url: str, **kwargs: object) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})  # type: ignore[call-overload]
        return original(url, headers={**AUTH, **headers}, **kwargs)  # type: ignore[arg-type]

    # start_cluster polls /v1/hives without a token; give it one for this start only.
    httpx.get = with_token  # type: ignore[assignment]
    try:
        return start_cluster(root)
    finally:
        httpx.get = original


def documented(url: str) -> list[tuple[str, str]]:
    document = httpx.get(f"{url}/openapi.json", headers=AUTH, timeout=10).json()
    return [(method.upper(), path.replace("{job_id}", "job-x"))
            for path, item in document["paths"].items() for method in item]


def test_every_endpoint_but_health_needs_token(guarded: Cluster, scenario: Scenario) -> None:
    """Every endpoint but /health answers 401 without the token"""
    checked = 0
    for url in (guarded.queen_url, guarded.hive_url):
        for method, path in documented(url):
            for headers in ({}, {"Authorization": "Bearer " + "x" * len(QUEEN_TOKEN)}):
                response = httpx.request(method, f"{url}{path}", headers=headers, json={},
                                         timeout=10)
                checked += 1
                if path == "/health":
                    assert response.status_code == 200
                    continue
                assert response.status_code == 401, (method, path)
                error = response.json()["error"]
                assert error["type"] == "authentication_error"
                assert set(error) == {"message", "type", "param", "code"}
    scenario.did("Started a queen and a hive that require a token, and sent every documented "
                 "method and path of both, once without a token and once with a wrong token "
                 "of the right length.")
    scenario.saw(f"{checked} requests: /health answered 200; every other one 401 with an "
                 "OpenAI-shaped `authentication_error`.")


def test_job_stream_and_history_need_token(guarded: Cluster, scenario: Scenario) -> None:
    """A job's stream and history need the token"""
    response = httpx.post(f"{guarded.queen_url}/v1/jobs", json={"operation": "queen_check"},
                          headers=AUTH, timeout=10)
    job_id = response.json()["job_id"]
    paths = [f"/v1/jobs/{job_id}/stream", f"/v1/jobs/{job_id}", "/v1/jobs"]
    scenario.did("Submitted a job with the token, then read its stream, summary and the job "
                 "list without and with the token.")
    for path in paths:
        assert httpx.get(f"{guarded.queen_url}{path}", timeout=10).status_code == 401
        assert httpx.get(f"{guarded.queen_url}{path}", headers=AUTH,
                         timeout=30).status_code == 200
    scenario.saw("Without the token each answered 401; with it, 200.")


@pytest.mark.parametrize("module", ["rbee_daemons.hive", "rbee_daemons.queen"])
def test_non_loopback_bind_refuses(module: str, tmp_path: Path, scenario: Scenario) -> None:
    """A non-loopback bind without a token refuses to start"""
    result = subprocess.run(
        [sys.executable, "-m", module, "--host", "0.0.0.0", "--port", str(free_port())],
        env=isolated_env(tmp_path), capture_output=True, text=True, timeout=60)
    scenario.did(f"Started `{module} --host 0.0.0.0` with no token anywhere.")
    scenario.saw(f"Exit code {result.returncode}: {result.stderr.strip()[:160]!r}.")
    assert result.returncode != 0
    assert "token" in result.stderr


def test_token_compare_is_constant_time(monkeypatch: pytest.MonkeyPatch, guarded: Cluster,
                                        scenario: Scenario) -> None:
    """Token compare is constant-time"""
    compared: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(left: bytes, right: bytes) -> bool:
        compared.append((left, right))
        return real(left, right)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert auth.token_matches(QUEEN_TOKEN, QUEEN_TOKEN)
    assert not auth.token_matches("y" * len(QUEEN_TOKEN), QUEEN_TOKEN)
    assert len(compared) == 2
    url = f"{guarded.queen_url}/v1/hives"
    right_prefix = QUEEN_TOKEN[:-1] + ("x" if QUEEN_TOKEN[-1] != "x" else "y")
    wrong_first = ("x" if QUEEN_TOKEN[0] != "x" else "y") + QUEEN_TOKEN[1:]
    timings = {name: median_seconds(url, token) for name, token in
               (("right", QUEEN_TOKEN), ("last wrong", right_prefix), ("first wrong", wrong_first))}
    scenario.did("Checked that the middleware compares with hmac.compare_digest, then timed "
                 "200 requests each with the right token and with wrong tokens of the same "
                 "length differing in the first or the last character.")
    scenario.saw("Median response times: " + ", ".join(
        f"{name} {seconds * 1000:.2f} ms" for name, seconds in timings.items()) + ".")
    # A coarse bound for a loaded machine: a prefix-revealing compare shows up as a steady
    # gap between the two wrong tokens, not as a factor of two.
    assert timings["last wrong"] < 2 * timings["first wrong"]
    assert timings["first wrong"] < 2 * timings["last wrong"]


def median_seconds(url: str, token: str) -> float:
    samples = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        for _ in range(200):
            started = time.perf_counter()
            client.get(url)
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def test_secrets_never_leak(guarded: Cluster, scenario: Scenario,
                            tmp_path_factory: pytest.TempPathFactory) -> None:
    """No token, HF_TOKEN or password in logs, narration, history or errors"""
    hub_ref = "hf:org/repo:model.gguf"
    bad_url = f"http://user:{URL_PASSWORD}@127.0.0.1:{free_port()}/x"
    for operation in ({"operation": "model_download", "model": hub_ref},
                      {"operation": "infer", "prompt": f"Bearer {QUEEN_TOKEN}", "max_tokens": 2,
                       "model": "missing-model"},
                      {"operation": "queen_check"}):
        response = httpx.post(f"{guarded.queen_url}/v1/jobs", json=operation, headers=AUTH,
                              timeout=10)
        assert response.status_code in (201, 400, 404), response.text
        if response.status_code == 201:
            stream = httpx.get(f"{guarded.queen_url}/v1/jobs/{response.json()['job_id']}/stream",
                               headers=AUTH, timeout=120)
            leaked = [secret for secret in SECRETS if secret in stream.text]
            assert leaked == [], (operation, stream.text)
    heartbeat = {"hive_id": "leaky", "url": bad_url}
    httpx.post(f"{guarded.queen_url}/v1/hive-heartbeat", json=heartbeat, headers=AUTH)
    guarded.stop()
    base = tmp_path_factory.getbasetemp()
    scanned, leaks = scan(base)
    scenario.did("Ran hub downloads with HF_TOKEN set, a prompt and refs holding the token "
                 "and a URL password, and a heartbeat with a password in its URL; stopped the "
                 f"daemons, then searched every file under the session's temporary tree "
                 f"({scanned} files: state dirs, logs, job history, captured output).")
    scenario.saw(f"Files holding a secret: {leaks or 'none'}.")
    assert leaks == []


def scan(base: Path) -> tuple[int, list[str]]:
    scanned = 0
    leaks = []
    for path in base.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.name == "cluster-token":
            continue
        if path.stat().st_size > 50 * 1024 * 1024:
            continue  # model files
        try:
            content = path.read_bytes()
        except OSError:
            continue
        scanned += 1
        if any(secret.encode() in content for secret in SECRETS):
            leaks.append(str(path.relative_to(base)))
    return scanned, leaks
