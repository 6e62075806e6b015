"""A stand-in daemon for the keeper's start tests: `python -m tests.cli.fake_daemon`.

It serves `/health` like a queen on `--port` after `--bind-delay` seconds, or, with
`--fail-with CODE`, prints a line and exits with CODE without binding. A port that is taken
makes it exit with code 3, as the real daemons do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUEEN_HEALTH = {"status": "ok", "version": "0.0.0-test"}


class HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(QUEEN_HEALTH).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bind-delay", type=float, default=0.0)
    parser.add_argument("--fail-with", type=int, default=None)
    args = parser.parse_args()
    print(f"fake daemon starting on port {args.port}", flush=True)
    if args.fail_with is not None:
        print("fake daemon failed on purpose", flush=True)
        return int(args.fail_with)
    time.sleep(args.bind_delay)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), HealthHandler)
    except OSError as exc:
        print(f"fake daemon could not bind: {exc}", flush=True)
        return 3
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
