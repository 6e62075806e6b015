"""Entry point of `rbee`: the TUI by default, the scriptable CLI with `--no-tui`."""

from __future__ import annotations

import sys

TUI_NOT_BUILT = (
    "The rbee terminal app is not built yet. Use the scriptable keeper instead:\n"
    "  rbee --no-tui --help\n"
    "  rbee --no-tui infer \"Once upon a time\"\n"
)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--no-tui" in args:
        args.remove("--no-tui")
        from rbee_tui.cli.main import run

        return run(args)
    if any(arg in ("-h", "--help") for arg in args) or not args:
        print(TUI_NOT_BUILT, end="", file=sys.stderr)
        return 0
    print(
        f"rbee: unknown arguments {' '.join(args)!r}; the CLI needs --no-tui, "
        "e.g. `rbee --no-tui status`.",
        file=sys.stderr,
    )
    return 2
