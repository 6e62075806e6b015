"""`hives.conf`: the hives on other machines, in SSH-config syntax.

```
Host gpu-box
    HostName 10.0.0.5
    User alice
    Port 22
    HivePort 7835
    InstallDir ~/.local/share/rbee
    IdentityFile ~/.ssh/id_ed25519
```

Keys are case-insensitive, as in `ssh_config`; a key and its value are separated by spaces or
`=`. `QueenURL` optionally sets the queen URL the hive reports to, for networks where the
keeper cannot work it out (NAT, several interfaces).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from rbee_daemons import paths
from rbee_daemons.errors import ConfigError

FILE_NAME = "hives.conf"
DEFAULT_SSH_PORT = 22
DEFAULT_HIVE_PORT = 7835
DEFAULT_INSTALL_DIR = "~/.local/share/rbee"

# Aliases become parts of file names and hive ids: the same rule as ids in job operations.
ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Host names and user names reach the ssh command line; a leading dash would read as an option.
HOST_PATTERN = re.compile(r"^[A-Za-z0-9_.:\[\]%-]{1,253}$")
USER_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
KEYS = ("hostname", "user", "port", "hiveport", "installdir", "identityfile", "queenurl")


@dataclass(frozen=True)
class HiveHost:
    """One `Host` block: how to reach a machine over SSH and where its hive lives."""

    alias: str
    hostname: str
    user: str | None = None
    port: int = DEFAULT_SSH_PORT
    hive_port: int = DEFAULT_HIVE_PORT
    install_dir: str = DEFAULT_INSTALL_DIR
    identity_file: str | None = None
    queen_url: str | None = None

    @property
    def destination(self) -> str:
        """`user@host` or `host`, as ssh prints it in messages."""
        return f"{self.user}@{self.hostname}" if self.user else self.hostname

    @property
    def hive_url(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"http://{host}:{self.hive_port}"


def config_path() -> Path:
    return paths.config_dir() / FILE_NAME


def load(path: Path | None = None) -> dict[str, HiveHost]:
    """Read `hives.conf`; a missing file means no remote hives.

    Raises ConfigError naming the file, line and key for any invalid entry.
    """
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}.") from exc
    return parse(text, path)


def parse(text: str, path: Path) -> dict[str, HiveHost]:
    hosts: dict[str, HiveHost] = {}
    alias: str | None = None
    alias_line = 0
    values: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, value = _split(line, path, number)
        if key == "host":
            if alias is not None:
                hosts[alias] = _build(alias, alias_line, values, path)
            alias, alias_line, values = _check_alias(value, hosts, path, number), number, {}
            continue
        if alias is None:
            raise ConfigError(f"{path}:{number}: {key!r} appears before any `Host` line; "
                              "start each block with `Host <alias>`.")
        if key not in KEYS:
            raise ConfigError(f"{path}:{number}: unknown key {raw.split()[0]!r}; known keys: "
                              "HostName, User, Port, HivePort, InstallDir, IdentityFile, "
                              "QueenURL.")
        values[key] = (value, number)
    if alias is not None:
        hosts[alias] = _build(alias, alias_line, values, path)
    return hosts


def _split(line: str, path: Path, number: int) -> tuple[str, str]:
    match = re.match(r"^(\S+?)(?:\s*=\s*|\s+)(.*)$", line)
    if match is None or not match.group(2).strip():
        raise ConfigError(f"{path}:{number}: {line.split()[0]!r} has no value; write "
                          "`Key value`.")
    key, value = match.group(1).lower(), match.group(2).strip()
    try:
        words = shlex.split(value, comments=True)
    except ValueError as exc:
        raise ConfigError(f"{path}:{number}: invalid value for {match.group(1)!r}: {exc}.") from exc
    if len(words) != 1:
        raise ConfigError(f"{path}:{number}: {match.group(1)!r} takes one value, got "
                          f"{value!r}; a Host block names one alias.")
    return key, words[0]


def _check_alias(alias: str, hosts: dict[str, HiveHost], path: Path, number: int) -> str:
    if not ALIAS_PATTERN.match(alias) or alias == "localhost":
        raise ConfigError(f"{path}:{number}: invalid Host alias {alias!r}; use letters, digits, "
                          "'.', '_' and '-' (no wildcards), and not 'localhost'.")
    if alias in hosts:
        raise ConfigError(f"{path}:{number}: Host {alias!r} is defined twice.")
    return alias


def _build(alias: str, line: int, values: dict[str, tuple[str, int]], path: Path) -> HiveHost:
    if "hostname" not in values:
        raise ConfigError(f"{path}:{line}: Host {alias!r} has no HostName; add "
                          "`HostName <address>`.")
    hostname, number = values["hostname"]
    if not HOST_PATTERN.match(hostname) or hostname.startswith("-"):
        raise ConfigError(f"{path}:{number}: invalid HostName {hostname!r}.")
    user = values.get("user")
    if user is not None and not USER_PATTERN.match(user[0]):
        raise ConfigError(f"{path}:{user[1]}: invalid User {user[0]!r}.")
    queen_url = values.get("queenurl")
    if queen_url is not None and not re.match(r"^https?://[^\s/]+/?$", queen_url[0]):
        raise ConfigError(f"{path}:{queen_url[1]}: invalid QueenURL {queen_url[0]!r}; write "
                          "e.g. `QueenURL http://10.0.0.1:7833`.")
    install_dir = values.get("installdir", (DEFAULT_INSTALL_DIR, line))
    if not install_dir[0].startswith(("/", "~/")) or ".." in install_dir[0].split("/"):
        raise ConfigError(f"{path}:{install_dir[1]}: invalid InstallDir {install_dir[0]!r}; use "
                          "an absolute path or one under `~/`, without `..`.")
    return HiveHost(
        alias=alias,
        hostname=hostname,
        user=user[0] if user else None,
        port=_port(values, "port", DEFAULT_SSH_PORT, path),
        hive_port=_port(values, "hiveport", DEFAULT_HIVE_PORT, path),
        install_dir=install_dir[0].rstrip("/") or "/",
        identity_file=values["identityfile"][0] if "identityfile" in values else None,
        queen_url=queen_url[0].rstrip("/") if queen_url else None,
    )


def _port(values: dict[str, tuple[str, int]], key: str, default: int, path: Path) -> int:
    if key not in values:
        return default
    value, number = values[key]
    name = {"port": "Port", "hiveport": "HivePort"}[key]
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{path}:{number}: invalid {name} {value!r}; use a TCP port from 1 "
                          "to 65535.")
    return int(value)


def get(alias: str, path: Path | None = None) -> HiveHost:
    """Return the host block for `alias`; raise ConfigError when it is not in the file."""
    hosts = load(path)
    if alias in hosts:
        return hosts[alias]
    known = ", ".join(sorted(hosts)) or "none"
    raise ConfigError(f"Hive alias {alias!r} is not in {path or config_path()} (known: "
                      f"{known}); add a `Host {alias}` block with its HostName.")
