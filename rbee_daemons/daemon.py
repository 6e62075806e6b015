"""Start-up helpers shared by the three daemons: logging, bind checks, serving."""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from logging.handlers import RotatingFileHandler

import uvicorn
from starlette.types import ASGIApp

from rbee_daemons import paths
from rbee_daemons.errors import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging(program: str, *, to_stderr: bool = True) -> None:
    """Log to `<state dir>/logs/<program>.log` (rotated) and, unless told not to, stderr."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file_handler = RotatingFileHandler(
        paths.log_dir() / f"{program}.log", maxBytes=10 * 1024 * 1024, backupCount=3
    )
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(file_handler)
    if to_stderr:
        stream_handler = logging.StreamHandler(sys.stderr)
        stream_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(stream_handler)
    # One line per request is noise next to narration; errors still go through uvicorn.error.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(program: str, host: str, token: str | None) -> None:
    """Refuse a bind outside loopback unless a bearer token protects the daemon."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"{program} will not listen on {host} without a token: set RBEE_TOKEN (queen-rbee "
            "and rbee-hive also take --token-file), or bind 127.0.0.1."
        )


class _Server(uvicorn.Server):
    """A uvicorn server that runs a hook before it waits for open connections to close."""

    def __init__(self, config: uvicorn.Config,
                 before_shutdown: Callable[[], Awaitable[None]] | None) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            try:
                await self.before_shutdown()
            except Exception:
                logging.getLogger(__name__).exception("The shutdown hook failed")
        await super().shutdown(sockets)


def serve(app: ASGIApp, host: str, port: int,
          before_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run `app` under uvicorn until SIGINT or SIGTERM.

    `before_shutdown` runs first on shutdown; the queen uses it to end its streams, which would
    otherwise hold the graceful shutdown open until its timeout.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    _Server(config, before_shutdown).run()
