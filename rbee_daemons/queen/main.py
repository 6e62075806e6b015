"""Entry point of `queen-rbee`."""

from __future__ import annotations

import argparse
import os
import sys

from rbee_daemons import narration
from rbee_daemons.daemon import check_bind, serve, setup_logging
from rbee_daemons.errors import RbeeError
from rbee_daemons.queen.app import Queen, QueenSettings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="queen-rbee",
        description="Orchestrate hives and workers; serve jobs and the inference API.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to bind (default: %(default)s)."
    )
    parser.add_argument("--port", type=int, default=7833, help="TCP port (default: %(default)s).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    narration.set_actor("queen-rbee")
    setup_logging("queen")
    try:
        check_bind("queen-rbee", args.host, token=os.environ.get("RBEE_TOKEN"))
    except RbeeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    serve(Queen(QueenSettings(args.host, args.port)).app(), args.host, args.port)
    return 0
