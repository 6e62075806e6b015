"""The cluster token and the queen address that hives on other machines can reach."""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from rbee_daemons import auth
from rbee_daemons.daemon import is_loopback
from rbee_daemons.narration import narrate
from rbee_tui.cli.hives_conf import HiveHost

# The queen listens on every interface when remote hives exist; the token guards it.
WILDCARD = "0.0.0.0"


def current_token() -> str | None:
    """Return the configured token ($RBEE_TOKEN or the config dir's file), if any."""
    return auth.resolve_token()


def ensure_token() -> str:
    """Return the cluster token, creating it (mode 0600) on first use."""
    token = auth.resolve_token()
    if token is not None:
        return token
    path = auth.token_file()
    token = auth.generate_token()
    auth.write_token_file(path, token)
    narrate(
        "keeper_token_created",
        f"Created the cluster token in {path} (mode 0600).",
        cute="🐝🔑 A fresh secret for the hive family, tucked away safely!",
        story='"Only those who know this word may enter," said the keeper, sealing the token.',
        path=str(path),
    )
    return auth.resolve_token() or token


def has_remote_hives(hosts: dict[str, HiveHost]) -> bool:
    return any(not is_loopback(host.hostname) for host in hosts.values())


def queen_bind(queen_url: str, hosts: dict[str, HiveHost]) -> str | None:
    """The address the local queen binds: the wildcard when other machines must reach it.

    Returns None to keep the host of `queen_url`.
    """
    explicit = os.environ.get("RBEE_QUEEN_BIND")
    if explicit:
        return explicit
    return WILDCARD if has_remote_hives(hosts) else None


def queen_url_for(host: HiveHost, queen_url: str) -> str:
    """Return the queen URL `host` can reach: QueenURL from hives.conf, or this machine's
    address on the route to `host` with the queen's port."""
    if host.queen_url:
        return host.queen_url
    parts = urlsplit(queen_url)
    port = parts.port or 7833
    if parts.hostname and not is_loopback(parts.hostname) and parts.hostname != WILDCARD:
        return queen_url
    if is_loopback(host.hostname):
        return f"http://127.0.0.1:{port}"
    address = local_address_towards(host.hostname, host.port)
    return f"http://{_bracket(address)}:{port}"


def local_address_towards(hostname: str, port: int) -> str:
    """This machine's source address for packets to `hostname`, as the routing table picks it.

    A UDP connect sends nothing; it only selects the route.
    """
    family = socket.AF_INET6 if ":" in hostname else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((hostname, port))
        return str(probe.getsockname()[0])


def _bracket(address: str) -> str:
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
