"""Bearer-token authentication for the daemons' HTTP APIs."""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from rbee_daemons import paths
from rbee_daemons.errors import ConfigError
from rbee_daemons.http import error_response
from rbee_daemons.redact import register_secret

TOKEN_ENV = "RBEE_TOKEN"
TOKEN_FILE_NAME = "cluster-token"
# Paths served without a token, so that liveness checks work from anywhere.
PUBLIC_PATHS = frozenset({"/health"})


def generate_token() -> str:
    """Return a new random token carrying 32 bytes of entropy."""
    return secrets.token_urlsafe(32)


def token_file() -> Path:
    return paths.config_dir() / TOKEN_FILE_NAME


def read_token_file(path: Path) -> str | None:
    """Return the token stored in `path`, or None when the file does not exist.

    Raises ConfigError when the file is readable by other users or empty.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"The token file {path} is readable by other users; run `chmod 600 {path}`."
        )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"The token file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "write the token again with `rbee --no-tui hive install` or delete the file."
        ) from exc
    if not token:
        raise ConfigError(f"The token file {path} is empty; delete it or write a token into it.")
    return token


def write_token_file(path: Path, token: str) -> None:
    """Store `token` in `path` with mode 0600, creating the file without a readable window."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)


def resolve_token(explicit: str | None = None, token_path: Path | None = None) -> str | None:
    """Return the token to require: `explicit`, then `$RBEE_TOKEN`, then the token file.

    The token is registered for redaction so it never appears in narration or logs.
    """
    token = explicit or os.environ.get(TOKEN_ENV) or read_token_file(token_path or token_file())
    if token is not None:
        register_secret(token)
    return token


def token_matches(presented: str, expected: str) -> bool:
    """Compare in constant time, so the time to reject does not reveal a matching prefix."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


class BearerAuthMiddleware:
    """Require `Authorization: Bearer <token>` on every HTTP path except PUBLIC_PATHS."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and token_matches(presented.strip(), self.token):
            await self.app(scope, receive, send)
            return
        message = (
            "Missing bearer token; send `Authorization: Bearer <token>`."
            if not header
            else "Invalid bearer token; use the token from the rbee config dir or $RBEE_TOKEN."
        )
        response = error_response(
            401, message, "authentication_error", code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
