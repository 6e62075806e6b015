"""Device telemetry for heartbeats and capabilities: CPU, RAM and (later) GPUs."""

from __future__ import annotations

import os
from typing import Any

import psutil


def snapshot() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    try:
        load_1m = os.getloadavg()[0]
    except OSError:
        load_1m = None
    return {
        "cpu": {"cores": psutil.cpu_count(logical=True) or 1, "load_1m": load_1m},
        "ram": {"total_bytes": memory.total, "available_bytes": memory.available},
        "gpus": [],
    }
