"""The keeper's helper on a remote hive's machine, run over SSH from the installed venv.

`python -m rbee_tui.cli.hive_agent --install-dir DIR configure|start|stop|status ...` keeps
every file of the remote hive under DIR (config, data, state and cache as XDG dirs) and prints
one JSON object on stdout. The cluster token arrives on stdin, never in argv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

SUBDIRS = ("config", "data", "state", "cache")


def use_install_dir(install_dir: Path) -> None:
    """Point the XDG dirs into `install_dir`; the hive started from here inherits them."""
    for name in SUBDIRS:
        os.environ[f"XDG_{name.upper()}_HOME"] = str(install_dir / name)


def configure() -> dict[str, Any]:
    from rbee_daemons import __version__, auth, paths
    from rbee_daemons.hive.app import load_hive_id

    token = sys.stdin.read().strip()
    if token:
        auth.write_token_file(auth.token_file(), token)
    return {"hive_id": load_hive_id(paths.data_dir()), "version": __version__,
            "token_file": str(auth.token_file())}


def hive_id() -> str | None:
    from rbee_daemons import paths

    id_file = paths.data_dir() / "hive_id"
    return id_file.read_text(encoding="utf-8").strip() if id_file.is_file() else None


def start(args: argparse.Namespace) -> dict[str, Any]:
    from rbee_daemons import auth
    from rbee_tui.cli import daemons

    spec = daemons.hive_spec(args.queen_url, host=args.host, port=args.port,
                             token=auth.resolve_token(), port_setting="HivePort in hives.conf")
    spec = _with_advertise_url(spec, args.advertise_url)
    running = daemons.read_pid(spec, url=spec.url)
    if running is not None and daemons.answers_as(spec.url, "hive"):
        return {"started": False, "pid": running.pid, "url": spec.url, "hive_id": hive_id()}
    started = daemons.start(spec)
    if started is not None:
        return {"started": True, "pid": started, "url": spec.url, "hive_id": hive_id()}
    # A hive already served the port, e.g. one that another keeper started meanwhile.
    running = daemons.read_pid(spec, url=spec.url)
    return {"started": False, "pid": running.pid if running else None, "url": spec.url,
            "hive_id": hive_id()}


def _with_advertise_url(spec: Any, advertise_url: str | None) -> Any:
    from dataclasses import replace

    if not advertise_url:
        return spec
    return replace(spec, extra_args=(*spec.extra_args, "--advertise-url", advertise_url))


def stop(args: argparse.Namespace) -> dict[str, Any]:
    from rbee_tui.cli import daemons

    stopped = daemons.stop(daemons.hive_spec("http://127.0.0.1:7833"))
    return {"stopped_pid": stopped, "hive_id": hive_id()}


def status(args: argparse.Namespace) -> dict[str, Any]:
    from rbee_tui.cli import daemons

    spec = daemons.hive_spec("http://127.0.0.1:7833", host=args.host, port=args.port)
    process = daemons.read_pid(spec, url=spec.url)
    return {"running": process is not None, "healthy": daemons.answers_as(spec.url, "hive"),
            "pid": process.pid if process else None, "url": spec.url, "hive_id": hive_id()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rbee_tui.cli.hive_agent")
    parser.add_argument("--install-dir", type=Path, required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("configure")
    for name in ("start", "stop", "status"):
        command = commands.add_parser(name)
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=7835)
        command.add_argument("--queen-url", default="http://127.0.0.1:7833")
        command.add_argument("--advertise-url", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_install_dir(args.install_dir)
    from rbee_daemons.errors import RbeeError

    try:
        if args.command == "configure":
            result = configure()
        else:
            result = {"start": start, "stop": stop, "status": status}[args.command](args)
    except RbeeError as exc:
        print(json.dumps({"error": exc.message}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
