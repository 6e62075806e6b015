"""Where rbee keeps its files: platformdirs' user dirs for the app name `rbee`.

On Linux the XDG variables (`XDG_CONFIG_HOME`, `XDG_DATA_HOME`, `XDG_STATE_HOME`,
`XDG_CACHE_HOME`) override the defaults, which is how tests isolate a run.
"""

from __future__ import annotations

from pathlib import Path

from platformdirs import PlatformDirs

APP_NAME = "rbee"


def _dirs() -> PlatformDirs:
    # Built on every call so that changes to the XDG variables take effect at once.
    return PlatformDirs(APP_NAME, appauthor=False)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return _ensure(Path(_dirs().user_config_dir))


def data_dir() -> Path:
    return _ensure(Path(_dirs().user_data_dir))


def state_dir() -> Path:
    return _ensure(Path(_dirs().user_state_dir))


def cache_dir() -> Path:
    return _ensure(Path(_dirs().user_cache_dir))


def log_dir() -> Path:
    return _ensure(state_dir() / "logs")


def run_dir() -> Path:
    """Pid files of the local daemons."""
    return _ensure(state_dir() / "run")
