"""Entry point of `queen-rbee`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rbee_daemons import narration
from rbee_daemons.auth import resolve_token
from rbee_daemons.daemon import check_bind, serve, setup_logging
from rbee_daemons.errors import ConfigError, RbeeError
from rbee_daemons.queen.app import Queen, QueenSettings
from rbee_daemons.queen.scheduler import DEFAULT_QUEUE_LIMIT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="queen-rbee",
        description="Orchestrate hives and workers; serve jobs and the OpenAI-compatible API.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to bind (default: %(default)s)."
    )
    parser.add_argument("--port", type=int, default=7833, help="TCP port (default: %(default)s).")
    parser.add_argument(
        "--token-file", type=Path, default=None,
        help="File with the bearer token clients and hives must send (mode 0600). Default: "
        "$RBEE_TOKEN, else the config dir's cluster-token file if it exists. Required when "
        "--host is not a loopback address.",
    )
    parser.add_argument(
        "--job-retention-count", type=int, default=500,
        help="Finished jobs kept in the history (default: %(default)s).",
    )
    parser.add_argument(
        "--job-retention-hours", type=float, default=24.0,
        help="Hours a finished job is kept in the history (default: %(default)s).",
    )
    parser.add_argument(
        "--queue-limit", type=int, default=DEFAULT_QUEUE_LIMIT,
        help="Requests that may wait per worker before new ones get 429 (default: %(default)s).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    narration.set_actor("queen-rbee")
    setup_logging("queen")
    try:
        if args.token_file is not None and not args.token_file.is_file():
            raise ConfigError(f"The token file {args.token_file} does not exist.")
        token = resolve_token(token_path=args.token_file)
        check_bind("queen-rbee", args.host, token)
        settings = QueenSettings(
            host=args.host, port=args.port, token=token,
            job_retention_count=args.job_retention_count,
            job_retention_hours=args.job_retention_hours, queue_limit=args.queue_limit,
        )
        queen = Queen(settings)
    except RbeeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    serve(queen.app(), args.host, args.port, before_shutdown=queen.jobs.cancel_all)
    return 0
