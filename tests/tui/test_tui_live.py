"""Pilot tests of the keeper TUI against a real queen and hive."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from rbee_daemons.hive.refs import default_model_id, parse_model_ref
from rbee_tui.app import RbeeApp
from rbee_tui.screens.modals import TextPromptScreen
from rbee_tui.views.chat import ChatView
from rbee_tui.views.models import ModelsView
from rbee_tui.views.resources import HivesView
from rbee_tui.widgets.narration_log import NarrationLog
from tests.e2e.conftest import Cluster, healthy
from tests.hive.conftest import write_small_gguf
from tests.hive.test_hive_e2e import start_queen_and_hive
from tests.tui.conftest import slow_hub, wait_for

pytestmark = pytest.mark.e2e

SIZE = (120, 40)
HUB_REPO = "rbee-test/tiny-GGUF"
HUB_FILE = "tiny-Q8_0.gguf"


def make_app(cluster: Cluster) -> RbeeApp:
    return RbeeApp(cluster.queen_url, start_daemons=False)


async def test_hives_view_fills_from_heartbeats(tui_cluster: Cluster) -> None:
    app = make_app(tui_cluster)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.connected and app.cluster.hives, "a hive in the state")
        await pilot.press("1")
        view = app.query_one(HivesView)
        await wait_for(lambda: view.table.row_count >= 1, "a row in the hives table")
        hive_id = next(iter(app.cluster.hives))
        row = view.table.get_row_at(0)
        assert row[0] == app.hive_aliases.get(hive_id, hive_id)
        assert str(row[2]).startswith("online")
        assert "connected" in app.sub_title


async def test_chat_streams_tokens(tui_cluster: Cluster) -> None:
    app = make_app(tui_cluster)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.connected, "the queen connection")
        await pilot.press("5")
        await pilot.press(*"The capital of France is")
        await pilot.press("enter")
        chat = app.query_one(ChatView)
        await wait_for(lambda: chat.token_count >= 1, "the first token", limit_seconds=120)
        await wait_for(lambda: app.chat_job_id is None, "the end of the generation", 120)
        assert chat.generated
        assert chat.generated in chat.transcript
        stats = str(chat.query_one("#chat-stats").render())
        assert "TTFT" in stats
        assert "tok/s" in stats


async def test_chat_mode_sends_conversation(tui_cluster: Cluster) -> None:
    app = make_app(tui_cluster)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.connected, "the queen connection")
        await pilot.press("5")
        chat = app.query_one(ChatView)
        await pilot.press("ctrl+t")
        assert chat.chat_mode
        for question in ("Say hello.", "Say it again."):
            await pilot.press(*question)
            await pilot.press("enter")
            await wait_for(lambda: app.chat_job_id is not None, "the job to start", 30)
            await wait_for(lambda: app.chat_job_id is None, "the end of the reply", 120)
        roles = [message["role"] for message in chat.history]
        assert roles == ["user", "assistant", "user", "assistant"]
        assert chat.history[2]["content"] == "Say it again."
        await pilot.press("ctrl+l")
        assert chat.history == []


async def test_mode_key_rerenders_narration(tui_cluster: Cluster) -> None:
    app = make_app(tui_cluster)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.connected, "the queen connection")
        app.run_operation({"operation": "queen_check"})
        log = app.query_one("#narration-log", NarrationLog)
        await wait_for(lambda: len(log.shown) >= 1, "narration from queen_check")
        event = log.shown[0]
        assert event["human"] in (log.line_text(0) or "")
        await pilot.press("6")
        await pilot.press("m")
        assert app.preferences.mode == "cute"
        assert log.mode == "cute"
        assert event["cute"] in (log.line_text(0) or "")
        assert event["cute"][:20] in log.rendered_text(0)


async def test_download_shows_progress(tmp_path: Path) -> None:
    ref = f"hf:{HUB_REPO}:{HUB_FILE}"
    model_id = default_model_id(parse_model_ref(ref))
    with slow_hub(chunk_bytes=128 * 1024, pause_seconds=0.1) as hub:
        hub.add(f"{HUB_REPO}/{HUB_FILE}", write_small_gguf(tmp_path / "tiny.gguf"))
        cluster = start_queen_and_hive(tmp_path / "cluster", HF_ENDPOINT=hub.base_url)
        try:
            cells = await download_from_models_view(make_app(cluster), ref, model_id)
        finally:
            cluster.stop()

    progress = [cell for _, state, cell in cells if "%" in cell]
    intermediate = {cell for cell in progress if "100.0%" not in cell}
    assert intermediate, f"no progress below 100 % was shown: {progress}"
    hive, state, last = cells[-1]
    assert hive == "localhost" or hive.startswith("hive-")
    assert state == "available"
    assert "100.0%" in last


async def download_from_models_view(app: RbeeApp, ref: str,
                                    model_id: str) -> list[tuple[str, str, str]]:
    """Download `ref` with the models view's `d` key; return each distinct (hive, state,
    progress) of the model's row until it shows as available."""
    seen: list[tuple[str, str, str]] = []

    def sample() -> bool:
        view = app.query_one(ModelsView)
        for key in view.table.rows:
            if str(key.value).endswith(f"/{model_id}"):
                row = view.table.get_row(key)
                cells = (str(row[0]), str(row[5]), str(row[6]))
                if not seen or seen[-1] != cells:
                    seen.append(cells)
        return bool(seen) and seen[-1][1] == "available" and "100.0%" in seen[-1][2]

    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.connected and app.cluster.hives, "a hive in the state")
        await pilot.press("3", "d")
        await wait_for(lambda: isinstance(app.screen, TextPromptScreen), "the download prompt")
        await pilot.press(*ref, "enter")
        await wait_for(sample, f"{model_id} to show as available at 100 %")
        model = next(m for (_, mid), m in app.cluster.models.items() if mid == model_id)
        assert model["architecture"] == "llama"
        assert model["quantization"] == "Q8_0"
    return seen


async def test_escape_cancels_generation_on_server(tui_cluster: Cluster) -> None:
    app = make_app(tui_cluster)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.connected, "the queen connection")
        await pilot.press("5")
        await pilot.press(*"Write a very long story about bees")
        await pilot.press("enter")
        chat = app.query_one(ChatView)
        await wait_for(lambda: chat.token_count >= 2, "tokens", limit_seconds=120)
        job_id = app.chat_job_id
        assert job_id is not None
        await pilot.press("escape")
        await wait_for(lambda: app.chat_job_id is None, "the chat job to end")
        async with httpx.AsyncClient(timeout=10) as client:
            job = (await client.get(f"{tui_cluster.queen_url}/v1/jobs/{job_id}")).json()
        assert job["state"] == "cancelled"
        assert chat.token_count < 256


async def test_survives_queen_restart(tui_cluster: Cluster) -> None:
    app = make_app(tui_cluster)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.connected and app.cluster.hives, "the first snapshot")
        queen = tui_cluster.processes[0]
        os.killpg(queen.pid, signal.SIGKILL)
        queen.wait(timeout=10)
        await wait_for(lambda: not app.connected, "the disconnected state")
        assert "disconnected" in app.sub_title
        await pilot.press("2")
        await pilot.press("1")
        await asyncio.to_thread(tui_cluster.restart_queen)
        assert healthy(tui_cluster.queen_url)
        await wait_for(lambda: app.connected, "the reconnection")
        await wait_for(lambda: any(h.get("state") == "online"
                                   for h in app.cluster.hives.values()), "the hive again")
        assert "connected" in app.sub_title
