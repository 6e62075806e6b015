"""The state every `rbee --no-tui` command shares: options, output, the queen and its jobs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from rbee_daemons import paths
from rbee_daemons.daemon import is_loopback
from rbee_daemons.errors import DaemonError
from rbee_tui.cli import cluster, daemons, hives_conf, remote_hive, validate
from rbee_tui.cli.client import QueenClient
from rbee_tui.cli.progress import ProgressView
from rbee_tui.cli.render import narration_line, sanitize, shares_terminal, use_color

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

HIVE_JOIN_TIMEOUT_SECONDS = 30.0
LOCAL_ALIASES = ("localhost", "local")


class Keeper:
    """Context of one command: the shared options, stdout and stderr, and the queen."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.queen_url: str = args.queen_url.rstrip("/")
        self.color = use_color(sys.stderr)
        # When stdout and stderr are one terminal, a stderr line written after streamed text
        # that did not end a line would continue that line, so the keeper ends it first.
        self.shared_terminal = shares_terminal(sys.stdout, sys.stderr)
        self.stdout_at_line_start = True

    def show_narration(self, job_id: str, event: dict[str, Any]) -> None:
        if self.args.quiet:
            return
        self._end_stdout_line()
        print(narration_line(event, self.args.narration, color=self.color), file=sys.stderr,
              flush=True)

    def say(self, text: str) -> None:
        """Print a diagnostic line on stderr (kept under --quiet: it is not narration).

        Control characters are escaped, because the text may quote a daemon or a model.
        """
        self._end_stdout_line()
        print(sanitize(text), file=sys.stderr, flush=True)

    def output(self, data: Any, text: str) -> None:
        """Print a command's result on stdout: `data` as JSON with --json, else `text`."""
        print(json.dumps(data, indent=2) if self.args.json else sanitize(text), flush=True)
        self.stdout_at_line_start = True

    def write_text(self, text: str) -> None:
        """Write generated text to stdout as it streams, escaped when stdout is a terminal."""
        if not text:
            return
        sys.stdout.write(sanitize(text) if sys.stdout.isatty() else text)
        sys.stdout.flush()
        self.stdout_at_line_start = text.endswith("\n")

    def end_text(self) -> None:
        """End the streamed text with a newline unless it already ends a line."""
        if not self.stdout_at_line_start:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.stdout_at_line_start = True

    def _end_stdout_line(self) -> None:
        if self.shared_terminal:
            self.end_text()

    def client(self) -> QueenClient:
        return QueenClient(self.queen_url, token=cluster.current_token())

    def ensure_queen(self) -> QueenClient:
        """Return a client of a healthy queen, starting the local queen and hive if needed."""
        # Checked first, so a bad $RBEE_HIVE_PORT fails before the queen starts.
        hive_port = validate.hive_port()
        client = self.client()
        if not client.is_healthy():
            client.set_token(self.start_local_queen())
        if not any(hive["state"] == "online" for hive in client.hives()):
            token = cluster.current_token()
            hive = daemons.hive_spec(self.queen_url, port=hive_port, token=token)
            if not daemons.answers_as(hive.url, "hive"):
                daemons.start(hive)
            self.wait_for_hive(client, None)
        return client

    def start_local_queen(self) -> str | None:
        """Start the queen on this machine; return the token it requires, if any."""
        host = urlsplit(self.queen_url).hostname or ""
        if not is_loopback(host):
            raise DaemonError(
                f"No queen responds at {self.queen_url}, and the keeper only starts a queen on "
                "this machine; start the queen there or fix --queen-url."
            )
        bind = cluster.queen_bind(self.queen_url, hives_conf.load())
        token = cluster.current_token()
        if bind is not None and not is_loopback(bind):
            token = cluster.ensure_token()
        daemons.start(daemons.queen_spec(self.queen_url, bind, token))
        return token

    def wait_for_hive(self, client: QueenClient, hive_id: str | None,
                      timeout: float = HIVE_JOIN_TIMEOUT_SECONDS) -> None:
        """Wait until `hive_id` (or any hive when None) is online at the queen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(hive["state"] == "online" and hive_id in (None, hive["hive_id"])
                   for hive in client.hives()):
                return
            time.sleep(0.2)
        which = f"Hive {hive_id}" if hive_id else "No hive"
        raise DaemonError(
            f"{which} did not report to the queen at {self.queen_url} within {timeout:.0f} s; "
            f"check the hive's log ({paths.log_dir()} locally)."
        )

    def hive_id(self, alias: str | None) -> str | None:
        """Map a hives.conf alias or `localhost` to its hive id; other values are ids already."""
        if alias is None:
            return None
        if alias in LOCAL_ALIASES:
            id_file = paths.data_dir() / "hive_id"
            return id_file.read_text(encoding="utf-8").strip() if id_file.is_file() else alias
        return remote_hive.hive_ids().get(alias, alias)

    def run_job(self, client: QueenClient, operation: dict[str, Any]) -> tuple[int, Any]:
        """Submit a job and follow it; see `follow_job`."""
        return self.follow_job(client, client.submit(operation))

    def follow_job(self, client: QueenClient, job_id: str) -> tuple[int, Any]:
        """Follow a job: tokens to stdout, narration and progress to stderr.

        Returns the exit code and the job's result data. Ctrl+C cancels the job on the queen.
        """
        state = _JobOutput(self, ProgressView(enabled=not self.args.quiet))
        try:
            for event in client.follow(job_id):
                code = state.handle(event)
                if code is not None:
                    return code, state.result
        except KeyboardInterrupt:
            state.finish()
            client.cancel(job_id)
            self.say(f"Interrupted; cancelled job {job_id} on the queen.")
            return EXIT_INTERRUPTED, state.result
        state.finish()
        return EXIT_OK, state.result


class _JobOutput:
    """Routes one job's events to stdout and stderr."""

    def __init__(self, keeper: Keeper, progress: ProgressView) -> None:
        self.keeper = keeper
        self.progress = progress
        self.result: Any = None

    def handle(self, event: dict[str, Any]) -> int | None:
        kind = event.get("type")
        if kind == "narration":
            self.keeper.show_narration(str(event.get("job_id", "-")), event)
        elif kind == "progress":
            self.progress.update(event)
        elif kind == "token" and not self.keeper.args.json:
            self.keeper.write_text(str(event.get("text", "")))
        elif kind == "data":
            self.result = event.get("data")
        elif kind in ("error", "cancelled"):
            self.finish()
            self.keeper.say(f"{'error' if kind == 'error' else 'cancelled'}: "
                            f"{event.get('message')}")
            return EXIT_FAILURE
        return None

    def finish(self) -> None:
        self.progress.close()
        self.keeper.end_text()
