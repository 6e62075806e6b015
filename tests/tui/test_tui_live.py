"""Pilot tests of the keeper TUI against a real queen and hive."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest

from rbee_tui.app import RbeeApp
from rbee_tui.views.chat import ChatView
from rbee_tui.views.resources import HivesView
from rbee_tui.widgets.narration_log import NarrationLog
from tests.e2e.conftest import Cluster, healthy
from tests.tui.conftest import wait_for

pytestmark = pytest.mark.e2e

SIZE = (120, 40)


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
        assert event["cute"][:20] in "".join(
            segment.text for segment in log.lines[0])


async def test_download_shows_progress(tui_cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        probe = await client.post(f"{tui_cluster.queen_url}/v1/jobs", json={
            "operation": "model_download", "model": "file:/nonexistent.gguf"})
    if probe.status_code == 400 and "Unknown operation" in probe.text:
        pytest.skip("the queen has no model_download operation yet, so there is no "
                    "download progress to show")
    # TODO: the operation's event shape is not final; once it is, drive a download of a
    # local `file:` ref from the models view and wait for the PROGRESS cell to read 100%.
    pytest.skip("model_download is accepted now, but this test does not drive it yet")


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
