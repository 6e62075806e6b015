"""`rbee --no-tui`: argument parsing and the commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from rbee_daemons import narration, paths
from rbee_daemons.errors import ConfigError, DaemonError, InvalidRequestError, RbeeError
from rbee_daemons.operations import DEFAULT_MODEL_ID
from rbee_tui.cli import daemons
from rbee_tui.cli.client import QueenClient
from rbee_tui.cli.render import MODES, narration_line, sanitize, use_color

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_QUEEN_URL = "http://127.0.0.1:7833"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rbee --no-tui",
        description="Drive your private LLM cloud from a shell: stdout carries data, stderr "
        "carries narration and diagnostics.",
    )
    parser.add_argument(
        "--queen-url", default=os.environ.get("RBEE_QUEEN_URL", DEFAULT_QUEEN_URL),
        help="Queen to talk to (default: $RBEE_QUEEN_URL or %(default)s).",
    )
    parser.add_argument(
        "--narration", choices=MODES, default=os.environ.get("RBEE_NARRATION", "human"),
        help="How narration on stderr reads (default: %(default)s).",
    )
    parser.add_argument("--json", action="store_true", help="Print data on stdout as JSON.")
    parser.add_argument("--quiet", action="store_true", help="Print no narration on stderr.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    infer = commands.add_parser("infer", help="Generate text from a prompt, streamed to stdout.")
    infer.add_argument("prompt", metavar="PROMPT", help="Text to complete.")
    infer.add_argument("--model", default=DEFAULT_MODEL_ID, help="Model id (default: %(default)s).")
    infer.add_argument("--max-tokens", type=int, default=128,
                       help="Maximum tokens to generate (default: %(default)s).")
    infer.add_argument("--temperature", type=float, default=0.8,
                       help="Sampling temperature, 0 for greedy (default: %(default)s).")
    infer.add_argument("--top-p", type=float, default=None, help="Nucleus sampling, 0 to 1.")
    infer.add_argument("--top-k", type=int, default=None, help="Sample from the top K tokens.")
    infer.add_argument("--seed", type=int, default=None, help="Random seed for sampling.")
    infer.add_argument("--stop", action="append", default=None,
                       help="Stop sequence; repeat for several.")
    infer.add_argument("--hive", default=None, help="Run on this hive id.")

    commands.add_parser("status", help="Show hives, workers and models.")

    for name, summary in (("queen", "the local queen"), ("hive", "the local hive")):
        group = commands.add_parser(name, help=f"Start, stop or check {summary}.")
        actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
        actions.add_parser("start", help=f"Start {summary} if it is not running.")
        actions.add_parser("stop", help=f"Stop {summary} (by pid file).")
        actions.add_parser("status", help=f"Say whether {summary} answers.")
    return parser


class Keeper:
    """Runs one command; holds the options every command shares."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.queen_url: str = args.queen_url.rstrip("/")
        self.color = use_color(sys.stderr)

    def show_narration(self, job_id: str, event: dict[str, Any]) -> None:
        if self.args.quiet:
            return
        print(narration_line(event, self.args.narration, color=self.color), file=sys.stderr,
              flush=True)

    def ensure_queen(self) -> QueenClient:
        """Return a client of a queen that answers, starting the local queen and hive if needed."""
        client = QueenClient(self.queen_url)
        queen = daemons.queen_spec(self.queen_url)
        if not client.is_healthy():
            daemons.start(queen)
        if not any(hive["state"] == "online" for hive in client.hives()):
            hive = daemons.hive_spec(self.queen_url)
            if not daemons.is_healthy(hive.url):
                daemons.start(hive)
            self._wait_for_hive(client)
        return client

    def _wait_for_hive(self, client: QueenClient, timeout: float = 15.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(hive["state"] == "online" for hive in client.hives()):
                return
            time.sleep(0.2)
        raise DaemonError(
            f"No hive reported to the queen at {self.queen_url} within {timeout:.0f} s; check "
            f"the hive's log in {paths.log_dir()}."
        )

    def run_job(self, client: QueenClient, operation: dict[str, Any]) -> tuple[int, Any]:
        """Submit a job and follow it: tokens to stdout, narration to stderr.

        Returns the exit code and the job's result data. Ctrl+C cancels the job on the queen.
        """
        job_id = client.submit(operation)
        result: Any = None
        streamed = False
        interactive = sys.stdout.isatty()
        try:
            for event in client.follow(job_id):
                kind = event.get("type")
                if kind == "narration":
                    self.show_narration(job_id, event)
                elif kind == "token" and not self.args.json:
                    text = event.get("text", "")
                    sys.stdout.write(sanitize(text) if interactive else text)
                    sys.stdout.flush()
                    streamed = True
                elif kind == "data":
                    result = event.get("data")
                elif kind == "error":
                    self._finish_line(streamed)
                    print(f"error: {event.get('message')}", file=sys.stderr)
                    return EXIT_FAILURE, result
                elif kind == "cancelled":
                    self._finish_line(streamed)
                    print(f"cancelled: {event.get('message')}", file=sys.stderr)
                    return EXIT_FAILURE, result
        except KeyboardInterrupt:
            self._finish_line(streamed)
            client.cancel(job_id)
            print(f"Interrupted; cancelled job {job_id} on the queen.", file=sys.stderr)
            return EXIT_INTERRUPTED, result
        self._finish_line(streamed)
        return EXIT_OK, result

    @staticmethod
    def _finish_line(streamed: bool) -> None:
        if streamed:
            sys.stdout.write("\n")
            sys.stdout.flush()

    def infer(self) -> int:
        args = self.args
        operation: dict[str, Any] = {
            "operation": "infer", "model": args.model, "prompt": args.prompt,
            "max_tokens": args.max_tokens, "temperature": args.temperature,
        }
        optional = {"top_p": args.top_p, "top_k": args.top_k, "seed": args.seed,
                    "stop": args.stop, "hive_id": args.hive}
        operation.update({key: value for key, value in optional.items() if value is not None})
        with self.ensure_queen() as client:
            code, result = self.run_job(client, operation)
        if self.args.json and result is not None:
            print(json.dumps(result, indent=2))
        return code

    def status(self) -> int:
        with self.ensure_queen() as client:
            code, result = self.run_job(client, {"operation": "status"})
        if result is None:
            return code
        if self.args.json:
            print(json.dumps(result, indent=2))
        else:
            print(format_status(result))
        return code

    def daemon(self, which: str, action: str) -> int:
        spec = daemons.queen_spec(self.queen_url) if which == "queen" else daemons.hive_spec(
            self.queen_url)
        if action == "status":
            healthy = daemons.is_healthy(spec.url)
            process = daemons.read_pid(spec)
            state = {"name": which, "url": spec.url, "running": healthy,
                     "pid": process.pid if process else None}
            print(json.dumps(state) if self.args.json else
                  f"{which}: {'running' if healthy else 'not running'} at {spec.url}"
                  + (f" (pid {process.pid})" if process else ""))
            return EXIT_OK if healthy else EXIT_FAILURE
        if action == "start":
            if daemons.is_healthy(spec.url):
                print(f"{which} already answers at {spec.url}.", file=sys.stderr)
                return EXIT_OK
            pid = daemons.start(spec)
            print(f"Started {which} at {spec.url} (pid {pid}).", file=sys.stderr)
            return EXIT_OK
        stopped = daemons.stop(spec)
        if stopped is None:
            print(f"No local {which} is running (no live pid in {spec.pid_file}).",
                  file=sys.stderr)
        else:
            print(f"Stopped {which} (pid {stopped}).", file=sys.stderr)
        return EXIT_OK


def format_status(status: dict[str, Any]) -> str:
    hives = [[h["hive_id"], h["state"], h["url"], f"{h['heartbeat_age_seconds']:.1f}s",
              _ram(h.get("devices", {})), str(h["workers"])] for h in status["hives"]]
    workers = [[w["worker_id"], w["hive_id"], w["model"], w["state"], str(w.get("in_flight", 0)),
                str(w.get("port")), str(w.get("pid"))] for w in status["workers"]]
    models = [[m["id"], m["hive_id"], m["state"], _size(m.get("size"))] for m in status["models"]]
    return "\n\n".join([
        _table("HIVES", ["ID", "STATE", "URL", "HEARTBEAT", "RAM FREE", "WORKERS"], hives),
        _table("WORKERS", ["ID", "HIVE", "MODEL", "STATE", "IN FLIGHT", "PORT", "PID"], workers),
        _table("MODELS", ["ID", "HIVE", "STATE", "SIZE"], models),
    ])


def _ram(devices: dict[str, Any]) -> str:
    ram = devices.get("ram") or {}
    if not ram:
        return "-"
    return f"{ram['available_bytes'] / 1e9:.1f}/{ram['total_bytes'] / 1e9:.1f} GB"


def _size(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.0f} MB"


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return f"{title}\n(none)"
    cells = [[sanitize(str(cell), keep_newlines=False) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines = [title] + ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                       for row in [header, *cells]]
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    """Run `rbee --no-tui ARGS`; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    narration.set_actor("rbee-keeper")
    _log_to_file()
    keeper = Keeper(args)
    narration.add_listener(keeper.show_narration)
    try:
        if args.command == "infer":
            return keeper.infer()
        if args.command == "status":
            return keeper.status()
        return keeper.daemon(args.command, args.action)
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
