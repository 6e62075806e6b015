"""Blocking hive actions for the TUI (start, stop, install, status), built on the CLI's functions.

Each function returns one sentence for a notification and raises RbeeError on failure. They
block on SSH or process start-up, so the TUI runs them in thread workers.
"""

from __future__ import annotations

from rbee_daemons import paths
from rbee_daemons.errors import ConfigError
from rbee_tui.cli import cluster, daemons, hives_conf, remote_hive
from rbee_tui.cli.commands.hive import check_queen_reachable
from rbee_tui.cli.hives_conf import HiveHost

LOCAL_ALIAS = "localhost"


def local_hive_id() -> str | None:
    """Read this machine's hive id from the file the hive writes at first start."""
    id_file = paths.data_dir() / "hive_id"
    return id_file.read_text(encoding="utf-8").strip() if id_file.is_file() else None


def aliases_by_hive_id() -> dict[str, str]:
    """Map hive ids to their hives.conf alias, or `localhost` for this machine's hive."""
    aliases = {hive_id: alias for alias, hive_id in remote_hive.hive_ids().items()}
    local = local_hive_id()
    if local:
        aliases[local] = LOCAL_ALIAS
    return aliases


def configured_hosts() -> dict[str, HiveHost]:
    return hives_conf.load()


def _remote(alias: str) -> HiveHost | None:
    return None if alias == LOCAL_ALIAS else hives_conf.get(alias)


def start(alias: str, queen_url: str) -> str:
    host = _remote(alias)
    if host is None:
        spec = daemons.hive_spec(queen_url, token=cluster.current_token())
        if daemons.answers_as(spec.url, "hive"):
            return f"The local hive already runs at {spec.url}."
        pid = daemons.start(spec)
        if pid is None:
            return f"Another keeper started the local hive at {spec.url} meanwhile."
        return f"Started the local hive at {spec.url} (pid {pid})."
    reachable_url = cluster.queen_url_for(host, queen_url)
    check_queen_reachable(_UrlHolder(queen_url), host, reachable_url)  # type: ignore[arg-type]
    data = remote_hive.agent(host, "start", "--host", host.hostname, "--port",
                             str(host.hive_port), "--queen-url", reachable_url)
    return f"Started the hive on {alias} at {data.get('url')} (pid {data.get('pid')})."


def stop(alias: str, queen_url: str) -> str:
    host = _remote(alias)
    if host is None:
        pid = daemons.stop(daemons.hive_spec(queen_url))
        return f"Stopped the local hive (pid {pid})." if pid else "No local hive was running."
    stopped = remote_hive.agent(host, "stop").get("stopped_pid")
    return f"Stopped the hive on {alias} (pid {stopped})." if stopped else \
        f"No hive was running on {alias}."


def install(alias: str) -> str:
    host = _remote(alias)
    if host is None:
        raise ConfigError("The local hive needs no install; pick a hives.conf alias to install.")
    configured = remote_hive.install(host, cluster.ensure_token())
    return (f"Installed rbee {configured['version']} on {alias} ({host.destination}); "
            f"hive id {configured['hive_id']}.")


def status(alias: str, queen_url: str) -> str:
    host = _remote(alias)
    if host is None:
        spec = daemons.hive_spec(queen_url)
        process = daemons.read_pid(spec)
        running = daemons.answers_as(spec.url, "hive")
        pid = f" (pid {process.pid})" if process else ""
        return f"Local hive: {'running' if running else 'not running'} at {spec.url}{pid}."
    state = remote_hive.agent(host, "status", "--host", host.hostname, "--port",
                              str(host.hive_port))
    running_text = "running" if state.get("healthy") else "not running"
    return f"Hive {alias}: {running_text} at {state.get('url')}."


class _UrlHolder:
    """The part of the CLI's Keeper that `check_queen_reachable` reads: the queen URL."""

    def __init__(self, queen_url: str) -> None:
        self.queen_url = queen_url
