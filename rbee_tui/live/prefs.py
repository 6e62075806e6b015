"""The TUI's preferences (narration mode, theme, last view), kept as JSON in the config dir."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from rbee_daemons import paths
from rbee_tui.cli.render import MODES

logger = logging.getLogger(__name__)

FILE_NAME = "tui.json"
VIEWS = ("hives", "workers", "models", "jobs", "chat", "narration")


@dataclass
class Preferences:
    """Settings the TUI keeps between runs."""

    mode: str = "human"
    theme: str = "textual-dark"
    view: str = "hives"

    @classmethod
    def load(cls, path: Path | None = None) -> Preferences:
        """Read the preferences; a missing or invalid file gives the defaults."""
        path = path or preferences_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            logger.warning("Ignoring unreadable preferences %s: %s", path, exc)
            return cls()
        prefs = cls()
        if data.get("mode") in MODES:
            prefs.mode = data["mode"]
        if isinstance(data.get("theme"), str):
            prefs.theme = data["theme"]
        if data.get("view") in VIEWS:
            prefs.view = data["view"]
        return prefs

    def save(self, path: Path | None = None) -> None:
        path = path or preferences_path()
        try:
            path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            logger.warning("Could not save preferences to %s: %s", path, exc)


def preferences_path() -> Path:
    return paths.config_dir() / FILE_NAME


def next_mode(mode: str) -> str:
    """Return the narration mode after `mode`, in the order human, cute, story."""
    index = MODES.index(mode) if mode in MODES else -1
    return MODES[(index + 1) % len(MODES)]
