"""`rbee --no-tui`: argument parsing and dispatch to the command groups."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rbee_daemons import narration, paths
from rbee_daemons.errors import ConfigError, InvalidRequestError, RbeeError
from rbee_tui.cli.commands import core, hive, jobs, queen, resources, self_check
from rbee_tui.cli.keeper import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, Keeper
from rbee_tui.cli.render import MODES

DEFAULT_QUEEN_URL = "http://127.0.0.1:7833"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rbee --no-tui",
        description="Drive your private LLM cloud from a shell: stdout carries data, stderr "
        "carries narration and diagnostics. Exit codes: 0 success, 1 failure, 2 usage or "
        "config error, 130 interrupted.",
    )
    parser.add_argument(
        "--queen-url", default=os.environ.get("RBEE_QUEEN_URL", DEFAULT_QUEEN_URL),
        help="URL of the queen to talk to (default: $RBEE_QUEEN_URL or %(default)s).",
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
    """Run `rbee --no-tui ARGS`; return the process exit code."""
    args = build_parser().parse_args(argv)
    narration.set_actor("rbee-keeper")
    keeper = Keeper(args)
    try:
        _log_to_file()
        narration.add_listener(keeper.show_narration)
        code: int = args.handler(keeper)
        return code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (InvalidRequestError, ConfigError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except RbeeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE


def _log_to_file() -> None:
    """Send the keeper's own log to a file; the terminal gets narration only."""
    handler = logging.FileHandler(paths.log_dir() / "keeper.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
