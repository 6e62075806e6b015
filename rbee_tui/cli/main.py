"""`rbee --no-tui`: argument parsing and dispatch to the command groups."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from rbee_daemons import narration, paths
from rbee_daemons.errors import ConfigError, InvalidRequestError, RbeeError
from rbee_tui.cli import validate
from rbee_tui.cli.commands import core, hive, jobs, queen, resources, self_check
from rbee_tui.cli.keeper import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, Keeper
from rbee_tui.cli.render import MODES, sanitize

logger = logging.getLogger(__name__)

DEFAULT_QUEEN_URL = "http://127.0.0.1:7833"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rbee --no-tui",
        description="Drive your private LLM cloud from a shell: stdout carries data, stderr "
        "carries narration and diagnostics. Exit codes: 0 success, 1 failure, 2 usage or "
        "config error, 130 interrupted.",
    )
    parser.add_argument(
        "--queen-url", default=None,
        help=f"URL of the queen to talk to, http:// or https:// with a port (default: "
        f"$RBEE_QUEEN_URL or {DEFAULT_QUEEN_URL}).",
    )
    parser.add_argument(
        "--narration", choices=MODES, default=os.environ.get("RBEE_NARRATION", "human"),
        help="Voice of the narration on stderr (default: $RBEE_NARRATION or %(default)s).",
    )
    parser.add_argument("--json", action="store_true",
                        help="Print the result on stdout as JSON instead of text.")
    parser.add_argument("--quiet", action="store_true",
                        help="Print no narration or progress on stderr; errors still show.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (core, queen, hive, resources, jobs, self_check):
        group.register(commands)
    return parser


def run(argv: list[str]) -> int:
    """Run `rbee --no-tui ARGS`; return the process exit code.

    Every failure ends as one `error: ...` line on stderr: exit 2 for invalid input or
    configuration, 1 otherwise. An unexpected exception is logged with its traceback to the
    keeper's log file, never shown on the terminal.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    narration.set_actor("rbee-keeper")
    log_file = _log_to_file()
    try:
        _check_args(parser, args)
        keeper = Keeper(args)
        narration.add_listener(keeper.show_narration)
        code: int = args.handler(keeper)
        return code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (InvalidRequestError, ConfigError) as exc:
        _print_error(exc.message)
        return EXIT_USAGE
    except RbeeError as exc:
        _print_error(exc.message)
        return EXIT_FAILURE
    except Exception as exc:
        logger.exception("Unexpected error in the %s command", args.command)
        where = f"; the traceback is in {log_file}" if log_file else ""
        _print_error(f"Internal error in the keeper: {type(exc).__name__}: {exc}{where}.")
        return EXIT_FAILURE


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject invalid global options before any command runs or starts a daemon."""
    validate.reject_undecodable(args, validate.option_names(parser, args))
    if args.queen_url is None:
        from_env = os.environ.get("RBEE_QUEEN_URL")
        name = "RBEE_QUEEN_URL" if from_env else "--queen-url"
        args.queen_url = validate.queen_url(from_env or DEFAULT_QUEEN_URL, name)
    else:
        args.queen_url = validate.queen_url(args.queen_url)


def _print_error(message: str) -> None:
    print(f"error: {sanitize(message)}", file=sys.stderr, flush=True)


def _log_to_file() -> Path | None:
    """Send the keeper's own log to a file, so the terminal gets narration only.

    Returns the file, or None when it cannot be opened. The log is then dropped, because
    Python's fallback handler would print records and tracebacks on stderr.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    try:
        path = paths.log_dir() / "keeper.log"
        handler: logging.Handler = logging.FileHandler(path)
    except OSError:
        root.addHandler(logging.NullHandler())
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    return path
