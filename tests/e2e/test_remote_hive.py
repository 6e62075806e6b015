"""Hives on another machine: install, start, infer, stop and uninstall over a real sshd.

The "remote" machine is this one, reached through an sshd that the test starts on loopback
with keys it generates. The remote InstallDir and every XDG dir live in the test's tmp dir.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import free_port, isolated_env
from tests.e2e.sshd import Sshd, hives_conf, keygen, start_sshd

pytestmark = pytest.mark.e2e

ALIAS = "box"


class RemoteKeeper:
    """Runs `rbee --no-tui` with isolated dirs and a hives.conf naming the test's sshd."""

    def __init__(self, root: Path, server: Sshd) -> None:
        self.root = root
        self.server = server
        self.env = isolated_env(root)
        self.queen_url = f"http://127.0.0.1:{free_port()}"
        self.env["RBEE_QUEEN_URL"] = self.queen_url
        self.env["RBEE_HIVE_PORT"] = str(free_port())
        self.install_dir = root / "remote-install"
        self.hive_port = free_port()
        self.write_conf(hives_conf(ALIAS, server, self.install_dir, self.hive_port))

    @property
    def conf_path(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "rbee" / "hives.conf"

    def write_conf(self, text: str) -> None:
        self.conf_path.parent.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(text, encoding="utf-8")

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rbee_tui", "--no-tui", *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"), free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def keeper(tmp_path: Path, sshd: Sshd) -> RemoteKeeper:
    return RemoteKeeper(tmp_path, sshd)


def test_unknown_alias_exits_2(keeper: RemoteKeeper) -> None:
    result = keeper.run("hive", "status", "-a", "nowhere")

    assert result.returncode == 2
    assert "'nowhere' is not in" in result.stderr
    assert str(keeper.conf_path) in result.stderr


def test_bad_conf_line_names_file_line_key(keeper: RemoteKeeper) -> None:
    keeper.write_conf("Host box\n    HostName 127.0.0.1\n    Port twenty-two\n")

    result = keeper.run("hive", "list")

    assert result.returncode == 2
    assert f"{keeper.conf_path}:3" in result.stderr
    assert "Port" in result.stderr


def test_unreachable_host_is_clear(keeper: RemoteKeeper) -> None:
    closed_port = free_port()
    keeper.write_conf(f"Host box\n    HostName 127.0.0.1\n    Port {closed_port}\n")

    result = keeper.run("hive", "status", "-a", ALIAS)

    assert result.returncode == 1
    assert "Hive 'box'" in result.stderr
    assert "unreachable over SSH" in result.stderr
    assert str(closed_port) in result.stderr


def test_refused_login_is_clear(keeper: RemoteKeeper, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger_key")
    keeper.write_conf(hives_conf(ALIAS, keeper.server, keeper.install_dir, keeper.hive_port,
                                 identity=stranger))

    result = keeper.run("hive", "status", "-a", ALIAS)

    assert result.returncode == 1
    assert "SSH login refused" in result.stderr
    assert "IdentityFile" in result.stderr


def test_status_before_install_says_install(keeper: RemoteKeeper) -> None:
    result = keeper.run("hive", "status", "-a", ALIAS)

    assert result.returncode == 1
    assert "not installed" in result.stderr
    assert f"hive install -a {ALIAS}" in result.stderr


def test_changed_host_key_is_refused(keeper: RemoteKeeper) -> None:
    first = keeper.run("hive", "status", "-a", ALIAS)
    known_hosts = Path(keeper.env["XDG_CONFIG_HOME"]) / "rbee" / "known_hosts"
    assert "not installed" in first.stderr
    assert known_hosts.read_text(encoding="utf-8").strip()

    keeper.server.replace_host_key()
    second = keeper.run("hive", "status", "-a", ALIAS)

    assert second.returncode == 1
    assert "host key changed" in second.stderr
    assert "ssh-keygen -R" in second.stderr


def test_hive_list_json_matches_text(keeper: RemoteKeeper) -> None:
    text = keeper.run("hive", "list")
    data = keeper.run("--json", "hive", "list")

    assert text.returncode == 0, text.stderr
    rows = json.loads(data.stdout)
    assert [row["alias"] for row in rows] == ["localhost", ALIAS]
    lines = text.stdout.splitlines()
    assert lines[0].split()[:2] == ["ALIAS", "HOST"]
    for line, row in zip(lines[1:], rows, strict=True):
        assert line.split()[0] == row["alias"]
        assert line.split()[-1] == ("yes" if row["reachable"] else "no")


def test_install_start_infer_stop_uninstall(keeper: RemoteKeeper) -> None:
    installed = keeper.run("--json", "hive", "install", "-a", ALIAS)
    assert installed.returncode == 0, installed.stderr
    hive_id = json.loads(installed.stdout)["hive_id"]
    token_file = keeper.install_dir / "config" / "rbee" / "cluster-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert "keeper_remote_pip" in installed.stderr
    again = keeper.run("--json", "hive", "install", "-a", ALIAS)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["hive_id"] == hive_id

    try:
        started = keeper.run("--json", "hive", "start", "-a", ALIAS)
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["hive_id"] == hive_id

        status = keeper.run("--json", "hive", "status", "-a", ALIAS)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["healthy"] is True

        inferred = keeper.run("--json", "--quiet", "infer", "--hive", ALIAS, "--max-tokens",
                              "4", "Once upon a time")
        assert inferred.returncode == 0, inferred.stderr
        assert json.loads(inferred.stdout)["hive_id"] == hive_id
    finally:
        stopped = keeper.run("--json", "hive", "stop", "-a", ALIAS)
        keeper.run("queen", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["stopped_pid"]

    removed = keeper.run("hive", "uninstall", "-a", ALIAS)
    assert removed.returncode == 0, removed.stderr
    assert not keeper.install_dir.exists()


def test_queen_binds_all_with_token_for_remote_hosts(keeper: RemoteKeeper) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never a real machine, and nothing here connects to it.
    keeper.write_conf("Host far\n    HostName 192.0.2.1\n")
    token_file = Path(keeper.env["XDG_CONFIG_HOME"]) / "rbee" / "cluster-token"

    try:
        started = keeper.run("--json", "queen", "start")
        assert started.returncode == 0, started.stderr
        pid = json.loads(started.stdout)["pid"]
        cmdline = psutil.Process(pid).cmdline()
        status = keeper.run("queen", "status")
    finally:
        stopped = keeper.run("queen", "stop")

    assert cmdline[cmdline.index("--host") + 1] == "0.0.0.0"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert "Created the cluster token" in started.stderr
    assert status.returncode == 0, status.stderr
    assert f"pid {pid}" in stopped.stderr
