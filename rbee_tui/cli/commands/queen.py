"""`queen start|stop|status`: the queen on this machine, tracked by its pid file."""

from __future__ import annotations

from typing import Any

from rbee_tui.cli import daemons
from rbee_tui.cli.keeper import EXIT_FAILURE, EXIT_OK, Keeper


def register(commands: Any) -> None:
    group = commands.add_parser("queen", help="Start, stop or check the queen on this machine.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser(
        "start", help="Start the local queen if nothing responds at --queen-url. It binds "
        "0.0.0.0 with the cluster token when hives.conf lists other machines, or "
        "$RBEE_QUEEN_BIND when set.")
    start.set_defaults(handler=start_command)
    stop = actions.add_parser("stop", help="Stop the local queen by its pid file (SIGTERM to "
                              "its process group, SIGKILL after 15 s).")
    stop.set_defaults(handler=stop_command)
    status = actions.add_parser("status", help="Print whether the queen responds; exit 1 if not.")
    status.set_defaults(handler=status_command)


def start_command(keeper: Keeper) -> int:
    spec = daemons.queen_spec(keeper.queen_url)
    if daemons.answers_as(spec.url, "queen"):
        keeper.say(f"The queen already runs at {spec.url}.")
        if keeper.args.json:
            keeper.output({"name": "queen", "url": spec.url, "started": False}, "")
        return EXIT_OK
    keeper.start_local_queen()
    process = daemons.read_pid(spec)
    pid = process.pid if process else None
    keeper.say(f"Started the queen at {spec.url} (pid {pid}).")
    if keeper.args.json:
        keeper.output({"name": "queen", "url": spec.url, "started": True, "pid": pid}, "")
    return EXIT_OK


def stop_command(keeper: Keeper) -> int:
    return stop_daemon(keeper, daemons.queen_spec(keeper.queen_url))


def status_command(keeper: Keeper) -> int:
    return daemon_status(keeper, daemons.queen_spec(keeper.queen_url))


def stop_daemon(keeper: Keeper, spec: daemons.DaemonSpec) -> int:
    stopped = daemons.stop(spec)
    if stopped is None:
        keeper.say(f"No local {spec.name} is running (no live pid in {spec.pid_file}).")
    else:
        keeper.say(f"Stopped the local {spec.name} (pid {stopped} and its process group).")
    if keeper.args.json:
        keeper.output({"name": spec.name, "stopped_pid": stopped}, "")
    return EXIT_OK


def daemon_status(keeper: Keeper, spec: daemons.DaemonSpec) -> int:
    """Print whether the daemon responds at its URL. A pid file for another URL is ignored."""
    healthy = daemons.answers_as(spec.url, spec.name)
    process = daemons.read_pid(spec, url=spec.url)
    if not healthy and process is None and daemons.port_in_use(spec):
        keeper.say(daemons.port_taken_message(spec))
    state = {"name": spec.name, "url": spec.url, "running": healthy,
             "pid": process.pid if process else None}
    pid = f" (pid {process.pid})" if process else ""
    keeper.output(state, f"{spec.name}: {'running' if healthy else 'not running'} at "
                  f"{spec.url}{pid}")
    return EXIT_OK if healthy else EXIT_FAILURE
