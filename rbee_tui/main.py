"""Entry point of `rbee`: the TUI by default, the scriptable CLI with `--no-tui`."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_QUEEN_URL = "http://127.0.0.1:7833"


def build_tui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rbee",
        description="Open the rbee terminal app. For scripts, use `rbee --no-tui --help`.",
    )
    parser.add_argument("--queen-url", default=os.environ.get("RBEE_QUEEN_URL",
                                                              DEFAULT_QUEEN_URL),
                        help="The queen to connect to (default: $RBEE_QUEEN_URL or "
                        f"{DEFAULT_QUEEN_URL}).")
    parser.add_argument("--read-only", action="store_true",
                        help="Disable every action that changes the cluster; only watch.")
    parser.add_argument("--no-mouse", action="store_true",
                        help="Do not capture the mouse, so the terminal keeps text selection.")
    parser.add_argument("--no-start", action="store_true",
                        help="Never offer to start a local queen and hive.")
    return parser


def run_tui(args: list[str]) -> int:
    options = build_tui_parser().parse_args(args)
    # Imported here so that `rbee --no-tui` never loads Textual.
    from rbee_tui.app import RbeeApp

    app = RbeeApp(options.queen_url, read_only=options.read_only,
                  start_daemons=not options.no_start)
    app.run(mouse=not options.no_mouse)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--no-tui" in args:
        args.remove("--no-tui")
        from rbee_tui.cli.main import run

        return run(args)
    return run_tui(args)
