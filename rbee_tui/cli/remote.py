"""Running commands on a hive's machine with the system OpenSSH client.

Every call is non-interactive: `BatchMode=yes` (no password or passphrase prompt), a connect
timeout, and the host key pinned in rbee's own known-hosts file on first contact
(`StrictHostKeyChecking=accept-new`) and checked on every later contact. Scripts are POSIX
`sh` sent on stdin, so the remote login shell and its `PATH` matter as little as possible.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rbee_daemons import paths
from rbee_daemons.errors import ConfigError, RbeeError
from rbee_tui.cli.hives_conf import HiveHost

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
KNOWN_HOSTS_FILE = "known_hosts"
# ssh exits with 255 for its own errors; the remote command's code is passed through otherwise.
SSH_FAILED = 255


class RemoteError(RbeeError):
    """A step on a remote hive's machine failed: SSH itself or the remote command."""

    code = "remote_error"


@dataclass(frozen=True)
class RemoteResult:
    returncode: int
    stdout: str
    stderr: str


def known_hosts_file() -> Path:
    return paths.config_dir() / KNOWN_HOSTS_FILE


def ssh_command(host: HiveHost, *remote: str) -> list[str]:
    """Build the `ssh` argv for `host`; `remote` is the command the remote shell runs."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise ConfigError("The OpenSSH client `ssh` is not installed; install it (Debian: "
                          "`apt-get install openssh-client`) to manage remote hives.")
    argv = [
        ssh,
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT_SECONDS}",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={known_hosts_file()}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ServerAliveInterval=10",
        "-o", "ServerAliveCountMax=3",
        "-o", "LogLevel=ERROR",
        "-p", str(host.port),
    ]
    if host.user:
        argv += ["-l", host.user]
    if host.identity_file:
        argv += ["-i", str(Path(host.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
    return [*argv, "--", host.hostname, *remote]


def run_script(
    host: HiveHost, script: str, *args: str, stdin_data: bytes = b"", timeout: float = 600.0
) -> RemoteResult:
    """Run a POSIX sh `script` with positional `args` on `host`.

    The script travels in the ssh argv, so it must hold no secret; secrets such as the
    cluster token go in `stdin_data`. Raises RemoteError for SSH failures (unreachable,
    auth, host key), with what to do next.
    """
    quoted = " ".join(shlex.quote(arg) for arg in args)
    remote = f"/bin/sh -c {shlex.quote(script)} rbee-remote {quoted}"
    argv = ssh_command(host, remote)
    logger.info("ssh to %s: args %s", host.alias, quoted)
    try:
        completed = subprocess.run(argv, input=stdin_data, capture_output=True,
                                   timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RemoteError(f"Hive {host.alias!r} ({host.destination}): the remote step timed out "
                          f"after {timeout:.0f} s; check the machine and retry.") from exc
    result = RemoteResult(completed.returncode, completed.stdout.decode("utf-8", "replace"),
                          completed.stderr.decode("utf-8", "replace"))
    if result.returncode == SSH_FAILED:
        raise RemoteError(explain_ssh_failure(host, result.stderr))
    return result


def explain_ssh_failure(host: HiveHost, stderr: str) -> str:
    """Turn ssh's stderr into one sentence naming the alias, the host and what to do."""
    where = f"Hive {host.alias!r} ({host.destination} port {host.port})"
    text = stderr.strip()
    lowered = text.lower()
    known = known_hosts_file()
    if "host key verification failed" in lowered or "identification has changed" in lowered:
        entry = host.hostname if host.port == 22 else f"[{host.hostname}]:{host.port}"
        return (f"{where}: the host key changed since it was pinned in {known}; if the machine "
                f"was reinstalled, remove the old key with `ssh-keygen -R '{entry}' -f {known}` "
                "and retry, otherwise do not connect.")
    if "permission denied" in lowered or "too many authentication failures" in lowered:
        return (f"{where}: SSH login refused; add your public key to "
                f"~{host.user or ''}/.ssh/authorized_keys there, or set IdentityFile for this "
                "Host in hives.conf.")
    if "could not resolve hostname" in lowered:
        return f"{where}: the host name does not resolve; fix HostName in hives.conf."
    unreachable = ("connection refused", "timed out", "no route to host", "network is unreachable",
                   "connection reset", "connection closed")
    if any(phrase in lowered for phrase in unreachable):
        return (f"{where}: unreachable over SSH ({_last_line(text)}); check that the machine is "
                "on and sshd is running, and the Port in hives.conf.")
    return f"{where}: SSH failed: {_last_line(text) or 'no message'}."


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
