"""Unit tests of the hives.conf parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from rbee_daemons.errors import ConfigError
from rbee_tui.cli import hives_conf

PATH = Path("/etc/rbee/hives.conf")


def parse(text: str) -> dict[str, hives_conf.HiveHost]:
    return hives_conf.parse(text, PATH)


def test_parse_full_block() -> None:
    hosts = parse(
        "# machines\nHost gpu-box\n  HostName 10.0.0.5\n  User alice\n  Port 2222\n"
        "  HivePort 7900\n  InstallDir /opt/rbee\n  IdentityFile ~/.ssh/id_ed25519\n"
        "  QueenURL http://10.0.0.1:7833/\n"
    )

    host = hosts["gpu-box"]
    assert host.hostname == "10.0.0.5"
    assert host.user == "alice"
    assert host.port == 2222
    assert host.hive_port == 7900
    assert host.install_dir == "/opt/rbee"
    assert host.identity_file == "~/.ssh/id_ed25519"
    assert host.queen_url == "http://10.0.0.1:7833"
    assert host.hive_url == "http://10.0.0.5:7900"
    assert host.destination == "alice@10.0.0.5"


def test_parse_defaults_and_equals_and_case() -> None:
    host = parse("host a\nHOSTNAME=b.example\n")["a"]

    assert host.hostname == "b.example"
    assert host.port == 22
    assert host.hive_port == 7835
    assert host.install_dir == "~/.local/share/rbee"
    assert host.user is None


def test_parse_several_blocks() -> None:
    hosts = parse("Host a\n HostName 10.0.0.1\nHost b\n HostName 10.0.0.2\n")

    assert list(hosts) == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HostName x\n", ":1: 'hostname' appears before any `Host` line"),
        ("Host a\n HostName x\n Colour blue\n", ":3: unknown key 'Colour'"),
        ("Host a\n HostName x\n Port 0\n", ":3: invalid Port '0'"),
        ("Host a\n HostName x\n HivePort 70000\n", ":3: invalid HivePort '70000'"),
        ("Host a\n User bob\n", ":1: Host 'a' has no HostName"),
        ("Host a b\n HostName x\n", ":1: 'Host' takes one value"),
        ("Host *\n HostName x\n", ":1: invalid Host alias '*'"),
        ("Host a\n HostName x\nHost a\n HostName y\n", ":3: Host 'a' is defined twice"),
        ("Host a\n HostName -oProxyCommand=x\n", ":2: invalid HostName"),
        ("Host a\n HostName x\n InstallDir relative/dir\n", ":3: invalid InstallDir"),
        ("Host a\n HostName x\n InstallDir /opt/../etc\n", ":3: invalid InstallDir"),
        ("Host a\n HostName x\n Port\n", ":3: 'Port' has no value"),
        ("Host a\n HostName x\n QueenURL ftp://q\n", ":3: invalid QueenURL"),
    ],
)
def test_parse_error_names_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(text)

    assert str(PATH) in raised.value.message
    assert expected in raised.value.message


def test_load_missing_file_means_no_hosts(tmp_path: Path) -> None:
    assert hives_conf.load(tmp_path / "absent.conf") == {}


def test_get_unknown_alias_lists_known(tmp_path: Path) -> None:
    path = tmp_path / "hives.conf"
    path.write_text("Host a\n HostName x\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"'zz' is not in .*known: a"):
        hives_conf.get("zz", path)
