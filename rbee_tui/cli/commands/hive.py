"""`hive list|install|uninstall|start|stop|status [-a ALIAS]`: local and remote hives."""

from __future__ import annotations

from typing import Any

from rbee_daemons.errors import ConfigError, DaemonError
from rbee_tui.cli import cluster, daemons, hives_conf, remote_hive, tables
from rbee_tui.cli.commands.queen import daemon_status, stop_daemon
from rbee_tui.cli.hives_conf import HiveHost
from rbee_tui.cli.keeper import EXIT_FAILURE, EXIT_OK, LOCAL_ALIASES, Keeper


def register(commands: Any) -> None:
    group = commands.add_parser(
        "hive", help="List, install, start, stop or check hives; -a ALIAS picks a machine "
        "from hives.conf, none means this machine.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    handlers = {
        "list": (list_command, "List this machine and each hives.conf alias with reachability."),
        "install": (install_command, "Install or update rbee on ALIAS over SSH (safe to rerun)."),
        "uninstall": (uninstall_command, "Stop the hive on ALIAS and remove its install."),
        "start": (start_command, "Start the hive (on ALIAS, or this machine) detached."),
        "stop": (stop_command, "Stop the hive by its pid file (on ALIAS, or this machine)."),
        "status": (status_command, "Print whether the hive runs; exit 1 if not."),
    }
    for name, (handler, summary) in handlers.items():
        action = actions.add_parser(name, help=summary, description=summary)
        if name != "list":
            action.add_argument("-a", "--alias", default=None, metavar="ALIAS",
                                help="Host alias from hives.conf (default: this machine).")
        action.set_defaults(handler=handler)


def remote_host(keeper: Keeper, required: bool = False) -> HiveHost | None:
    alias = keeper.args.alias
    if alias is None or alias in LOCAL_ALIASES:
        if required:
            raise ConfigError(f"`hive {keeper.args.action}` needs -a ALIAS, a Host from "
                              f"{hives_conf.config_path()}; the local hive needs no install.")
        return None
    return hives_conf.get(alias)


def list_command(keeper: Keeper) -> int:
    local = daemons.hive_spec(keeper.queen_url)
    ids = remote_hive.hive_ids()
    rows = [{"alias": "localhost", "host": "127.0.0.1", "hive_url": local.url,
             "hive_id": keeper.hive_id("localhost"),
             "reachable": daemons.answers_as(local.url, "hive")}]
    for host in hives_conf.load().values():
        reachable = daemons.answers_as(host.hive_url, "hive")
        rows.append({"alias": host.alias, "host": host.destination, "hive_url": host.hive_url,
                     "hive_id": ids.get(host.alias), "reachable": reachable})
    columns = [("ALIAS", "alias"), ("HOST", "host"), ("HIVE URL", "hive_url"),
               ("HIVE ID", "hive_id"), ("REACHABLE", "reachable")]
    text_rows = [{**row, "reachable": "yes" if row["reachable"] else "no"} for row in rows]
    keeper.output(rows, tables.records(text_rows, columns))
    return EXIT_OK


def install_command(keeper: Keeper) -> int:
    host = remote_host(keeper, required=True)
    assert host is not None
    configured = remote_hive.install(host, cluster.ensure_token())
    data = {"alias": host.alias, "hive_id": configured["hive_id"],
            "version": configured["version"], "install_dir": host.install_dir}
    keeper.output(data, f"Installed rbee {data['version']} on {host.alias} "
                  f"({host.destination}) in {host.install_dir}; hive id {data['hive_id']}.")
    return EXIT_OK


def uninstall_command(keeper: Keeper) -> int:
    host = remote_host(keeper, required=True)
    assert host is not None
    removed = remote_hive.uninstall(host)
    keeper.output({"alias": host.alias, "removed": removed},
                  f"Uninstalled the hive on {host.alias}: removed {removed}.")
    return EXIT_OK


def start_command(keeper: Keeper) -> int:
    host = remote_host(keeper)
    client = keeper.client()
    if not client.is_healthy():
        client.set_token(keeper.start_local_queen())
    if host is None:
        spec = daemons.hive_spec(keeper.queen_url, token=cluster.current_token())
        started = None if daemons.answers_as(spec.url, "hive") else daemons.start(spec)
        running = daemons.read_pid(spec, url=spec.url)
        data: dict[str, Any] = {"alias": "localhost", "url": spec.url, "started": bool(started),
                                "pid": started or (running.pid if running else None)}
    else:
        queen_url = cluster.queen_url_for(host, keeper.queen_url)
        check_queen_reachable(keeper, host, queen_url)
        data = remote_hive.agent(host, "start", "--host", host.hostname, "--port",
                                 str(host.hive_port), "--queen-url", queen_url)
        data["alias"] = host.alias
    keeper.wait_for_hive(client, data.get("hive_id"))
    keeper.output(data, f"Hive {data['alias']} runs at {data['url']} (pid {data['pid']}).")
    return EXIT_OK


def check_queen_reachable(keeper: Keeper, host: HiveHost, queen_url: str) -> None:
    """Fail early when the queen does not listen on the address the remote hive will use."""
    if host.queen_url or daemons.answers_as(queen_url, "queen"):
        return
    raise DaemonError(
        f"The queen responds at {keeper.queen_url} but not at {queen_url}, which hive "
        f"{host.alias!r} must reach; restart it with `rbee --no-tui queen stop` and "
        "`rbee --no-tui queen start`, which binds 0.0.0.0 when hives.conf lists other machines."
    )


def stop_command(keeper: Keeper) -> int:
    host = remote_host(keeper)
    if host is None:
        return stop_daemon(keeper, daemons.hive_spec(keeper.queen_url))
    stopped = remote_hive.agent(host, "stop")
    pid = stopped.get("stopped_pid")
    keeper.say(f"Stopped the hive on {host.alias} (pid {pid})." if pid else
               f"No hive was running on {host.alias}.")
    if keeper.args.json:
        keeper.output({"alias": host.alias, **stopped}, "")
    return EXIT_OK


def status_command(keeper: Keeper) -> int:
    host = remote_host(keeper)
    if host is None:
        return daemon_status(keeper, daemons.hive_spec(keeper.queen_url))
    state = remote_hive.agent(host, "status", "--host", host.hostname, "--port",
                              str(host.hive_port))
    state["alias"] = host.alias
    running = bool(state.get("healthy"))
    pid = f" (pid {state['pid']})" if state.get("pid") else ""
    keeper.output(state, f"hive {host.alias}: {'running' if running else 'not running'} at "
                  f"{state['url']}{pid}")
    return EXIT_OK if running else EXIT_FAILURE
