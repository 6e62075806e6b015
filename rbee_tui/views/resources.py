"""The hives, workers and models views: one table each, filled from the heartbeat stream."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding

from rbee_tui.live import format as fmt
from rbee_tui.live import hive_control
from rbee_tui.views.base import TableView

# Characters of a failed worker's reason shown in its row.
REASON_WIDTH = 48


def _hive_cells(hive: dict[str, Any], alias: str, workers: int) -> tuple[Any, ...]:
    devices = hive.get("devices") or {}
    cpu = devices.get("cpu") or {}
    ram = devices.get("ram") or {}
    cores = cpu.get("cores") or 1
    load = cpu.get("load_1m")
    cpu_cell = f"{fmt.bar(load / cores if load is not None else None, 6)} {fmt.number(load)}"
    total, free = ram.get("total_bytes"), ram.get("available_bytes")
    used = (total - free) / total if total and free is not None else None
    gpus = devices.get("gpus") or []
    gpu_cell = "none"
    if gpus:
        gpu = gpus[0]
        vram_total, vram_free = gpu.get("vram_total_bytes"), gpu.get("vram_free_bytes")
        share = (vram_total - vram_free) / vram_total if vram_total and vram_free else None
        gpu_cell = f"{fmt.bar(share, 6)} {len(gpus)}×"
    state = f"{hive.get('state', '?')} {fmt.duration(hive.get('heartbeat_age_seconds'))}"
    return (alias, hive.get("url", "-"), state, cpu_cell, f"{fmt.bar(used, 6)} "
            f"{fmt.size(total)}", gpu_cell, str(workers), hive.get("version", "-"))


class HivesView(TableView):
    """Every hive registered at the queen, plus hives.conf aliases that have not reported yet."""

    key = "hives"
    title = "Hives"
    COLUMNS = ("ALIAS", "URL", "STATE", "CPU", "RAM", "GPU", "WORKERS", "VERSION")
    MUTATING = frozenset({"start_hive", "stop_hive", "install_hive"})
    BINDINGS: ClassVar = [
        Binding("s", "start_hive", "Start", id="hives.start"),
        Binding("x", "stop_hive", "Stop", id="hives.stop"),
        Binding("i", "install_hive", "Install", id="hives.install"),
        Binding("t", "hive_status", "Status", id="hives.status"),
    ]

    def refresh_rows(self) -> None:
        app = self.rbee
        aliases = app.hive_aliases
        rows = []
        for hive_id, hive in sorted(app.cluster.hives.items()):
            alias = aliases.get(hive_id, hive_id)
            rows.append((alias, _hive_cells(hive, alias, app.cluster.worker_count(hive_id))))
        known = {key for key, _ in rows}
        for alias, host in sorted(app.configured_hosts.items()):
            if alias not in known:
                rows.append((alias, (alias, host.hive_url, "not reporting", "-", "-", "-",
                                     "0", "-")))
        self.fill(rows)

    def _alias(self) -> str:
        return self.selected_key() or hive_control.LOCAL_ALIAS

    def action_start_hive(self) -> None:
        self.rbee.run_hive_action("start", self._alias())

    def action_stop_hive(self) -> None:
        alias = self._alias()
        self.rbee.confirm(f"Stop the hive {alias!r} and all of its workers?",
                          lambda: self.rbee.run_hive_action("stop", alias))

    def action_install_hive(self) -> None:
        alias = self._alias()
        self.rbee.confirm(f"Install or update rbee on {alias!r} over SSH?",
                          lambda: self.rbee.run_hive_action("install", alias), "Install")

    def action_hive_status(self) -> None:
        self.rbee.run_hive_action("status", self._alias())


def _reason_cell(reason: Any) -> str:
    """Return the first line of why a worker failed, cut to fit a table cell, or `-`."""
    if not reason:
        return "-"
    line = str(reason).splitlines()[0]
    return line if len(line) <= REASON_WIDTH else line[:REASON_WIDTH - 1] + "…"


class WorkersView(TableView):
    """Every worker on every hive, with its state, load, restart count and failure reason."""

    key = "workers"
    title = "Workers"
    COLUMNS = ("ID", "HIVE", "MODEL", "STATE", "IN-FLIGHT", "TOK/S", "RSS", "RESTARTS",
               "REASON")
    MUTATING = frozenset({"stop_worker", "restart_worker", "spawn_worker"})
    BINDINGS: ClassVar = [
        Binding("x", "stop_worker", "Stop", id="workers.stop"),
        Binding("r", "restart_worker", "Restart", id="workers.restart"),
        Binding("n", "spawn_worker", "Spawn", id="workers.spawn"),
    ]

    def refresh_rows(self) -> None:
        app = self.rbee
        rows = []
        for (hive_id, worker_id), worker in sorted(app.cluster.workers.items()):
            # NOTE: heartbeats carry no token rate, so TOK/S shows the last rate the TUI
            # measured itself on this worker's model, or `-`.
            rate = app.token_rates.get(str(worker.get("model")))
            rows.append((f"{hive_id}/{worker_id}", (
                worker_id, app.hive_aliases.get(hive_id, hive_id), worker.get("model", "-"),
                worker.get("state", "-"), str(worker.get("in_flight", 0)), fmt.number(rate),
                fmt.size(worker.get("rss_bytes")), str(worker.get("restarts") or 0),
                _reason_cell(worker.get("reason")))))
        self.fill(rows)

    def _selected(self) -> dict[str, Any] | None:
        key = self.selected_key()
        if key is None:
            return None
        hive_id, _, worker_id = key.partition("/")
        return self.rbee.cluster.workers.get((hive_id, worker_id))

    def action_stop_worker(self) -> None:
        worker = self._selected()
        if worker is None:
            return
        operation = {"operation": "worker_stop", "hive_id": worker["hive_id"],
                     "id": worker["worker_id"]}
        self.rbee.confirm(f"Stop worker {worker['worker_id']} ({worker.get('model')})?",
                          lambda: self.rbee.run_operation(operation))

    def action_restart_worker(self) -> None:
        worker = self._selected()
        if worker is None:
            return
        self.rbee.confirm(f"Restart worker {worker['worker_id']} ({worker.get('model')})?",
                          lambda: self.rbee.restart_worker(worker), "Restart")

    def action_spawn_worker(self) -> None:
        def spawn(model: str | None) -> None:
            if model:
                self.rbee.run_operation({"operation": "worker_spawn", "model": model,
                                         **self.rbee.default_hive()})

        self.rbee.ask("Spawn a worker for which model?", spawn, "gemma-3-270m")
