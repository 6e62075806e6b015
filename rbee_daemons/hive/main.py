"""Entry point of `rbee-hive`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rbee_daemons import narration
from rbee_daemons.auth import resolve_token
from rbee_daemons.daemon import check_bind, serve, setup_logging
from rbee_daemons.errors import ConfigError, RbeeError
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
    parser.add_argument(
        "--token-file", type=Path, default=None,
        help="File with the bearer token to require and to send to the queen (default: "
        "$RBEE_TOKEN, then the config dir's cluster-token).",
    )
    parser.add_argument(
        "--worker-orphan-timeout", type=float, default=60.0,
        help="Seconds a worker waits for this hive to answer again before it exits by "
        "itself (default: %(default)s).",
    )
    parser.add_argument(
        "--download-stall-timeout", type=float, default=30.0,
        help="Seconds without data before a download connection is dropped and resumed "
        "(default: %(default)s).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    narration.set_actor("rbee-hive")
    setup_logging("hive")
    try:
        if args.token_file is not None and not args.token_file.is_file():
            raise ConfigError(f"The token file {args.token_file} does not exist; create it "
                              "or leave out --token-file.")
        token = resolve_token(token_path=args.token_file)
        check_bind("rbee-hive", args.host, token=token)
        settings = HiveSettings(
            args.host, args.port, args.queen_url, args.advertise_url, token=token,
            worker_orphan_seconds=args.worker_orphan_timeout,
            download_stall_seconds=args.download_stall_timeout,
        )
        hive = Hive(settings)
    except RbeeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    serve(hive.app(), args.host, args.port)
    return 0
