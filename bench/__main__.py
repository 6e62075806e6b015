"""Run every benchmark and rewrite docs/benchmarks.md: `python -m bench [--only NAME]`."""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench import control_plane, peer, relay, report, stack, tui_ingest
from bench.common import ROOT

BENCHMARKS = {
    "stack": stack.run,
    "peer": peer.run,
    "relay": relay.run,
    "control": control_plane.run,
    "tui": tui_ingest.run,
}


def machine() -> dict[str, Any]:
    versions = {name: _version(name) for name in (
        "rbee", "llama_cpp_python", "starlette", "uvicorn", "httpx", "textual")}
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(logical=True),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append",
                        help="Run only this benchmark; repeat for several.")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Repeated runs per measurement (default: %(default)s).")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md",
                        help="Markdown file to write (default: docs/benchmarks.md).")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rbee-bench-") as scratch:
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            results[name] = BENCHMARKS[name](Path(scratch), args.repeats)
            print(f"  {name} took {time.perf_counter() - started:.0f} s", file=sys.stderr)
    command = "make bench" if not args.only else "python -m bench " + " ".join(
        f"--only {name}" for name in names)
    args.output.write_text(report.render(machine(), results, command, args.repeats),
                           encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
