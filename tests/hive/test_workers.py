"""WorkerManager with real worker processes: the port race and network-mode tokens."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rbee_daemons.hive import default_model, workers
from rbee_daemons.hive.workers import WorkerManager, WorkerSettings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("model") / default_model.FILE_NAME
    default_model.assemble(target)
    return target


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port in the worker range that another program is listening on."""
    for port in workers.PORT_RANGE:
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            listener.close()
            continue
        listener.listen(1)
        try:
            yield port
        finally:
            listener.close()
        return
    pytest.skip("no free port in the worker range")


async def test_lost_port_race_moves_to_next_port(
    model_path: Path, held_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe says the held port is free, as when another process binds it right after.
    real_probe = workers.port_is_free
    monkeypatch.setattr(workers, "port_is_free",
                        lambda host, port: port == held_port or real_probe(host, port))
    manager = WorkerManager(WorkerSettings(tmp_path / "workers"))
    try:
        worker = await manager.spawn("gemma-3-270m", model_path)

        assert worker.state == "ready"
        assert worker.port != held_port
        assert f"cannot listen on 127.0.0.1:{held_port}" in worker.log_path.read_text()
    finally:
        await manager.stop_all()

    assert list((tmp_path / "workers").glob("*.json")) == []


async def test_network_mode_worker_gets_token(model_path: Path, tmp_path: Path) -> None:
    manager = WorkerManager(WorkerSettings(tmp_path / "workers", network=True))
    try:
        worker = await manager.spawn("gemma-3-270m", model_path)
        described = worker.describe()
        record = (tmp_path / "workers" / f"{worker.worker_id}.json")

        assert described["token"]
        assert len(described["token"]) >= 40
        assert oct(record.stat().st_mode & 0o777) == "0o600"
    finally:
        await manager.stop_all()
