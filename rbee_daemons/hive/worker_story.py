"""Narration of worker lifecycle events on a hive: spawn, crash, restart, adopt, stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rbee_daemons.narration import narrate

if TYPE_CHECKING:
    from rbee_daemons.hive.workers import WorkerProcess


def spawning(worker_id: str, model: str, port: int) -> None:
    narrate(
        "hive_worker_spawn",
        f"Starting worker {worker_id} for {model} on port {port}.",
        cute=f"🐝 Hatching worker {worker_id} for {model} on port {port}!",
        story=f'"Wake up, little one," said the hive to {worker_id}. "{model} awaits."',
        worker_id=worker_id, model=model, port=port,
    )


def port_taken(worker_id: str, port: int) -> None:
    narrate(
        "hive_worker_port_taken",
        f"Port {port} was taken before worker {worker_id} could bind it; trying another port.",
        cute=f"🚪 Someone grabbed port {port} first; {worker_id} looks for another door.",
        story=f'"That door is taken," said {worker_id}. "Then use the next," said the hive.',
        level="warn", worker_id=worker_id, port=port,
    )


def crashed(worker: WorkerProcess, code: int | None, last_lines: list[str]) -> None:
    last = " | ".join(last_lines) or "no output"
    how = f"with code {code}" if code is not None else "(exit code unknown, adopted worker)"
    narrate(
        "hive_worker_crashed",
        f"Worker {worker.worker_id} for {worker.model} exited {how}; its last output: {last}",
        cute=f"💥 Worker {worker.worker_id} fell out of the hive!",
        story=f'"Where did {worker.worker_id} go?" asked the hive, and went to find a new one.',
        level="error", worker_id=worker.worker_id, model=worker.model, exit_code=code,
        last_output=last_lines,
    )


def restarting(worker: WorkerProcess, delay: float) -> None:
    narrate(
        "hive_worker_restart",
        f"Restarting worker {worker.worker_id} for {worker.model} in {delay:.1f} s "
        f"(restart {worker.restarts + 1}).",
        cute=f"🔁 {worker.worker_id} gets another go in {delay:.0f} s!",
        story=f'"Once more," said the hive, nudging {worker.worker_id} back to its feet.',
        level="warn", worker_id=worker.worker_id, model=worker.model, delay_seconds=delay,
        restarts=worker.restarts,
    )


def restarted(worker: WorkerProcess) -> None:
    narrate(
        "hive_worker_restarted",
        f"Worker {worker.worker_id} for {worker.model} is ready again on port {worker.port}.",
        cute=f"🍯 {worker.worker_id} is back and buzzing on port {worker.port}!",
        story=f'"I am back," said {worker.worker_id}. "Good," said the hive.',
        worker_id=worker.worker_id, model=worker.model, port=worker.port,
        restarts=worker.restarts,
    )


def gave_up(worker: WorkerProcess, failures: int) -> None:
    narrate(
        "hive_worker_failed",
        f"Worker {worker.worker_id} for {worker.model} failed to load {failures} times in a "
        f"row and is marked failed: {worker.reason}",
        cute=f"🥀 {worker.worker_id} could not get up again; the hive lets it rest.",
        story=f'"It will not load," said the hive. "I have stopped trying {worker.worker_id}."',
        level="error", worker_id=worker.worker_id, model=worker.model, reason=worker.reason,
    )


def adopted(worker: WorkerProcess) -> None:
    narrate(
        "hive_worker_adopted",
        f"Adopted worker {worker.worker_id} for {worker.model} (pid {worker.pid}, port "
        f"{worker.port}), started by the previous hive process; it is {worker.state}.",
        cute=f"🤗 Welcome back, {worker.worker_id}! The hive takes you in again.",
        story=f'"You were here before me," said the new hive to {worker.worker_id}. "Stay."',
        worker_id=worker.worker_id, model=worker.model, pid=worker.pid, port=worker.port,
    )


def stopping(worker: WorkerProcess) -> None:
    narrate(
        "hive_worker_stop",
        f"Stopping worker {worker.worker_id} ({worker.model}, pid {worker.pid}).",
        cute=f"😴 Tucking worker {worker.worker_id} into bed.",
        story=f'"Rest now," said the hive, and {worker.worker_id} went quiet.',
        worker_id=worker.worker_id, model=worker.model,
    )
