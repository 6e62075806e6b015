"""TUI ingest: how many narration events per second the narration view absorbs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def run(workdir: Path, repeats: int) -> dict[str, Any]:
    if importlib.util.find_spec("rbee_tui.app") is None:
        return {"skipped": "the terminal app (rbee_tui.app) is not built yet."}
    return {"skipped": "the ingest measurement is not written yet."}
