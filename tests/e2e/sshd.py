"""A real OpenSSH server on loopback, started by a test with keys it generates."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
# sshd refuses to start without its privilege separation directory.
PRIVSEP_DIR = Path("/run/sshd")


def find_sshd() -> str:
    """Return sshd's path; skip the test outside CI when it is missing, fail inside CI."""
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sshd")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("sshd is missing in CI; .ci/run installs openssh-server")
    pytest.skip("sshd is not installed (Debian: apt-get install openssh-server)")


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rbee-test", "-f",
                    str(path)], check=True)
    return path


@dataclass
class Sshd:
    """One sshd process listening on 127.0.0.1:port and accepting `client_key`."""

    root: Path
    port: int
    client_key: Path
    host_key: Path
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def config(self) -> Path:
        path = self.root / "sshd_config"
        path.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            f"PidFile {self.root / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\nAllowTcpForwarding no\n"
            "X11Forwarding no\nLogLevel ERROR\n",
            encoding="utf-8",
        )
        return path

    def start(self) -> None:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        log = self.root / f"sshd-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [find_sshd(), "-D", "-e", "-f", str(self.config())], stdout=output,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"sshd exited: {log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("sshd did not listen within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def replace_host_key(self) -> None:
        """Restart with a new host key, as a reinstalled machine would present."""
        self.stop()
        for path in (self.host_key, self.host_key.with_suffix(".pub")):
            path.unlink(missing_ok=True)
        keygen(self.host_key)
        self.start()


def start_sshd(root: Path, port: int) -> Sshd:
    root.mkdir(parents=True, exist_ok=True)
    find_sshd()
    client_key = keygen(root / "client_key")
    host_key = keygen(root / "host_key")
    (root / "authorized_keys").write_text(
        client_key.with_suffix(".pub").read_text(encoding="utf-8"), encoding="utf-8")
    server = Sshd(root, port, client_key, host_key)
    server.start()
    return server


def hives_conf(alias: str, server: Sshd, install_dir: Path, hive_port: int,
               identity: Path | None = None) -> str:
    return (f"Host {alias}\n    HostName 127.0.0.1\n    User {getpass.getuser()}\n"
            f"    Port {server.port}\n    HivePort {hive_port}\n    InstallDir {install_dir}\n"
            f"    IdentityFile {identity or server.client_key}\n")
