"""Entry point of `rbee-hive`."""

from __future__ import annotations

import argparse
import os
import sys

from rbee_daemons import narration
from rbee_daemons.daemon import check_bind, serve, setup_logging
from rbee_daemons.errors import RbeeError
from rbee_daemons.hive.app import Hive, HiveSettings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rbee-hive",
        description="Manage this machine's models and workers and report to a queen.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to bind (default: %(default)s)."
    )
    parser.add_argument("--port", type=int, default=7835, help="TCP port (default: %(default)s).")
    parser.add_argument(
        "--queen-url",
        default=os.environ.get("RBEE_QUEEN_URL", "http://127.0.0.1:7833"),
        help="Queen to send heartbeats to (default: $RBEE_QUEEN_URL or %(default)s).",
    )
    parser.add_argument(
        "--advertise-url", default=None,
        help="URL the queen uses to reach this hive (default: http://HOST:PORT).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    narration.set_actor("rbee-hive")
    setup_logging("hive")
    try:
        check_bind("rbee-hive", args.host, token=os.environ.get("RBEE_TOKEN"))
        hive = Hive(HiveSettings(args.host, args.port, args.queen_url, args.advertise_url))
    except RbeeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    serve(hive.app(), args.host, args.port)
    return 0
