"""Checks of the keeper's inputs (options, environment, job operations) before anything runs.

Each check raises ConfigError or InvalidRequestError, which the CLI turns into exit code 2, and
names the option or variable the user set rather than the API field it becomes.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from rbee_daemons.errors import ConfigError, InvalidRequestError
from rbee_daemons.operations import ALL_OPERATIONS

HIVE_PORT_ENV = "RBEE_HIVE_PORT"
DEFAULT_HIVE_PORT = 7835

# Python decodes argv bytes that are not valid UTF-8 to lone surrogates (PEP 383).
_SURROGATE = re.compile("[\ud800-\udfff]")
# Pydantic phrases rules as "Input should be ...": the option name takes the subject's place.
_PYDANTIC_SUBJECT = re.compile(r"^(Input|String|List|Value|Dictionary) should ")


def port_number(value: str, name: str) -> int:
    """Parse a TCP port from 1 to 65535; `name` is the variable or option it came from."""
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{name} must be a port number from 1 to 65535, not {value!r}.")
    return int(value)


def hive_port() -> int:
    """Return the local hive's port: $RBEE_HIVE_PORT, or 7835 when it is unset or empty."""
    raw = os.environ.get(HIVE_PORT_ENV, "")
    return port_number(raw, HIVE_PORT_ENV) if raw else DEFAULT_HIVE_PORT


def queen_url(value: str, name: str = "--queen-url") -> str:
    """Check a queen URL (http or https, a host, a valid port) and return it without a
    trailing slash."""
    if "://" not in value:
        hint = f"; use e.g. http://{value}" if value and not any(c.isspace() for c in value) else ""
        raise ConfigError(f"{name} must start with http:// or https://, not {value!r}{hint}.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{name} must use http or https, not {parts.scheme!r} ({value!r}).")
    if not parts.hostname:
        raise ConfigError(f"{name} has no host: {value!r}; use e.g. http://127.0.0.1:7833.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or (port is None and parts.netloc.endswith(":")):
        raise ConfigError(f"{name} has an invalid port in {value!r}; use a port from 1 to "
                          "65535.")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not have a query or fragment: {value!r}.")
    return value.rstrip("/")


def finite_float(value: str) -> float:
    """Parse a float that is neither NaN nor infinite, as an argparse type."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {value!r}")
    return number


def reject_undecodable(args: argparse.Namespace, names: Mapping[str, str]) -> None:
    """Reject argument values that contain bytes that are not UTF-8.

    They arrive as lone surrogates, which no request can encode. `names` maps each
    argparse dest to the option or metavar the user typed.
    """
    for dest, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and _SURROGATE.search(item) for item in values):
            name = names.get(dest, dest)
            raise InvalidRequestError(
                f"{name} contains bytes that are not valid UTF-8; pass it as UTF-8 text."
            )


def option_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Map each dest of the chosen command to its longest option string, or its metavar."""
    names: dict[str, str] = {}
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        chosen: argparse.ArgumentParser | None = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
                continue
            if action.option_strings:
                names[action.dest] = max(action.option_strings, key=len)
            elif isinstance(action.metavar, str):
                names[action.dest] = action.metavar
            else:
                names[action.dest] = action.dest.upper()
        current = chosen
    return names


def operation(body: dict[str, Any], options: Mapping[str, str]) -> None:
    """Validate a job operation as the queen will, so a bad value fails before any daemon
    starts. The message names the CLI option that `options` maps the API field to."""
    model = ALL_OPERATIONS[body["operation"]]
    try:
        model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequestError(_option_message(exc, options)) from exc


def _option_message(exc: ValidationError, options: Mapping[str, str]) -> str:
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:
        return f"Invalid request: {message}."
    field = str(first["loc"][0])
    name = options.get(field, field)
    got = f" (got {first.get('input')!r:.80})"
    if _PYDANTIC_SUBJECT.match(message):
        return f"{_PYDANTIC_SUBJECT.sub(f'{name} should ', message)}{got}."
    return f"{name} is invalid: {message}{got}."
