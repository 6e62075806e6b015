"""Device telemetry for heartbeats and capabilities: CPU, RAM and NVIDIA GPUs through NVML.

NVML comes from `nvidia-ml-py`; a machine without the NVIDIA driver has no GPUs, which is
not an error.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import psutil

logger = logging.getLogger(__name__)

_nvml_lock = threading.Lock()
_nvml_ready: bool | None = None


def _nvml() -> Any:
    """Return the initialised `pynvml` module, or None when no NVIDIA driver is present."""
    global _nvml_ready
    with _nvml_lock:
        if _nvml_ready is False:
            return None
        import pynvml

        if _nvml_ready is None:
            try:
                pynvml.nvmlInit()
                _nvml_ready = True
            except pynvml.NVMLError as exc:
                logger.info("No NVIDIA GPU telemetry: %s", exc)
                _nvml_ready = False
                return None
        return pynvml


def gpus() -> list[dict[str, Any]]:
    """Each NVIDIA GPU's name, VRAM and utilisation; an empty list without a driver."""
    nvml = _nvml()
    if nvml is None:
        return []
    found = []
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            found.append(_gpu(nvml, index))
    except nvml.NVMLError as exc:
        logger.warning("Reading GPU telemetry failed: %s", exc)
    return found


def _gpu(nvml: Any, index: int) -> dict[str, Any]:
    device = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(device)
    try:
        utilisation: int | None = int(nvml.nvmlDeviceGetUtilizationRates(device).gpu)
    except nvml.NVMLError:
        utilisation = None
    name = nvml.nvmlDeviceGetName(device)
    return {
        "index": index,
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "vram_total_bytes": int(memory.total),
        "vram_free_bytes": int(memory.free),
        "utilization_percent": utilisation,
    }


def snapshot() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    try:
        load_1m: float | None = os.getloadavg()[0]
    except OSError:
        load_1m = None
    return {
        "cpu": {"cores": psutil.cpu_count(logical=True) or 1, "load_1m": load_1m},
        "ram": {"total_bytes": memory.total, "available_bytes": memory.available},
        "gpus": gpus(),
    }


def backends(devices: dict[str, Any]) -> list[str]:
    """Compute backends workers can use on this machine."""
    # NOTE: workers are started without GPU offload, so GPUs found by NVML are reported as
    # devices but not offered as a backend yet.
    return ["cpu"]
