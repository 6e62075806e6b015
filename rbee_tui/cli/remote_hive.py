"""Installing, starting and stopping a hive on another machine, one narrated SSH step at a time."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rbee_daemons import __version__, paths
from rbee_daemons.errors import RbeeError
from rbee_daemons.narration import narrate
from rbee_tui.cli import remote_scripts as scripts
from rbee_tui.cli.hives_conf import HiveHost
from rbee_tui.cli.remote import RemoteError, RemoteResult, run_script

# An estimate: the venv with llama-cpp-python, the default model (about 250 MB) and its
# assembled copy fit in this with room to spare.
MIN_FREE_BYTES = 2 * 1024**3
KNOWN_ARCHES = ("x86_64", "amd64", "aarch64", "arm64")
HIVE_IDS_FILE = "remote-hives.json"


def check(host: HiveHost) -> dict[str, str]:
    """Check Python >= 3.11, free disk and architecture; return the remote facts."""
    result = run_script(host, scripts.CHECK, host.install_dir, timeout=60)
    facts = _key_values(result.stdout)
    if result.returncode == scripts.EXIT_NO_PYTHON:
        raise RemoteError(f"Hive {host.alias!r} ({host.destination}): no Python 3.11 or newer "
                          "found in /usr/bin or /usr/local/bin; install python3 (3.11+) with "
                          "its venv module there and retry.")
    _require_success(host, result, "checking the machine")
    free = int(facts.get("free_kb", "0") or "0") * 1024
    if free < MIN_FREE_BYTES and facts.get("venv_exists") != "yes":
        raise RemoteError(f"Hive {host.alias!r} ({host.destination}): only {free / 1e9:.1f} GB "
                          f"free for {host.install_dir}; free at least "
                          f"{MIN_FREE_BYTES / 1e9:.1f} GB or set another InstallDir.")
    narrate(
        "keeper_remote_checked",
        f"Hive {host.alias}: Python {facts.get('python_version')} at {facts.get('python')}, "
        f"{facts.get('arch')}, {free / 1e9:.1f} GB free.",
        cute=f"🐝 {host.alias} looks cosy: Python {facts.get('python_version')} and room to spare!",
        story=f'"Is there room for a hive?" asked the keeper. "Plenty," replied {host.alias}.',
        alias=host.alias, arch=facts.get("arch"),
    )
    if facts.get("arch") not in KNOWN_ARCHES:
        narrate(
            "keeper_remote_arch", f"Hive {host.alias}: architecture {facts.get('arch')} is "
            "untested; llama-cpp-python may have to compile there.",
            cute=f"🐝 {host.alias} is an unusual flower; this may take a while.",
            story=f'"I have never seen a machine like {host.alias}," muttered the keeper.',
            level="warn", alias=host.alias,
        )
    return facts


def build_wheel(target: Path) -> Path:
    """Build a wheel of the installed rbee source tree into `target`; return its path."""
    source = Path(__file__).resolve().parents[2]
    if not (source / "pyproject.toml").is_file():
        raise RbeeError(f"Cannot build an rbee wheel: no pyproject.toml in {source}; install "
                        "rbee from a source checkout (`pip install -e .`) to install remote hives.")
    narrate(
        "keeper_wheel_build", f"Building the rbee {__version__} wheel from {source}.",
        cute="🐝 Packing a hive in a box!",
        story='"Pack everything a hive needs," said the keeper, folding the wheel.',
    )
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--wheel-dir", str(target), str(source)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    wheels = sorted(target.glob("rbee-*.whl"))
    if completed.returncode != 0 or not wheels:
        raise RbeeError(f"Building the rbee wheel failed: {completed.stderr.strip()[-400:]}")
    return wheels[-1]


def install(host: HiveHost, token: str) -> dict[str, Any]:
    """Install or update the hive on `host`; safe to run again. Returns the agent's facts."""
    facts = check(host)
    result = run_script(host, scripts.CREATE_VENV, host.install_dir, facts["python"])
    if result.returncode == scripts.EXIT_NO_VENV_MODULE:
        raise RemoteError(f"Hive {host.alias!r} ({host.destination}): {facts['python']} has no "
                          "venv module; install it there (Debian: `apt-get install "
                          "python3-venv`) and retry.")
    _require_success(host, result, "creating the virtualenv")
    _narrate_step(host, "venv", f"Virtualenv in {host.install_dir} is ready.")
    with tempfile.TemporaryDirectory(prefix="rbee-wheel-") as target:
        wheel = build_wheel(Path(target))
        result = run_script(host, scripts.UPLOAD, host.install_dir, wheel.name,
                            stdin_data=wheel.read_bytes())
        _require_success(host, result, "copying the wheel")
    _narrate_step(host, "copy", f"Copied {wheel.name} to {host.alias}.")
    _narrate_step(host, "pip", "Installing rbee and its dependencies; this can take minutes.")
    result = run_script(host, scripts.PIP_INSTALL, host.install_dir, wheel.name, timeout=1800)
    _require_success(host, result, "installing rbee with pip")
    configured = agent(host, "configure", stdin_data=token.encode("utf-8"))
    remember_hive_id(host.alias, str(configured["hive_id"]))
    _narrate_step(host, "config", f"Hive id {configured['hive_id']}; token written with "
                  "mode 0600.")
    return configured


def agent(host: HiveHost, *args: str, stdin_data: bytes = b"") -> dict[str, Any]:
    """Run the keeper's helper in the remote venv and return the JSON object it prints."""
    result = run_script(host, scripts.AGENT, host.install_dir, *args, stdin_data=stdin_data,
                        timeout=120)
    if result.returncode == scripts.EXIT_NOT_INSTALLED:
        raise RemoteError(f"Hive {host.alias!r} ({host.destination}): rbee is not installed in "
                          f"{host.install_dir}; run `rbee --no-tui hive install -a {host.alias}`.")
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        _require_success(host, result, f"running `{args[0]}`")
        raise RemoteError(f"Hive {host.alias!r}: `{args[0]}` printed no result.") from None
    if not isinstance(answer, dict):
        raise RemoteError(f"Hive {host.alias!r}: `{args[0]}` printed {answer!r}, not an object.")
    if "error" in answer:
        raise RemoteError(f"Hive {host.alias!r} ({host.destination}): {answer['error']}")
    _require_success(host, result, f"running `{args[0]}`")
    return answer


def uninstall(host: HiveHost) -> str:
    """Stop the hive if it runs, then remove what `install` created; return what was removed."""
    try:
        stopped = agent(host, "stop")
        if stopped.get("stopped_pid"):
            _narrate_step(host, "stop", f"Stopped the hive (pid {stopped['stopped_pid']}).")
    except RemoteError as exc:
        if "is not installed" not in exc.message:
            raise
    result = run_script(host, scripts.UNINSTALL, host.install_dir, timeout=120)
    _require_success(host, result, "removing the install")
    forget_hive_id(host.alias)
    return _key_values(result.stdout).get("removed", "nothing")


def _narrate_step(host: HiveHost, step: str, text: str) -> None:
    narrate(
        f"keeper_remote_{step}", f"Hive {host.alias}: {text}",
        cute=f"🐝 {host.alias}: {text}",
        story=f'"{text}" reported the keeper about {host.alias}.',
        alias=host.alias,
    )


def _require_success(host: HiveHost, result: RemoteResult, what: str) -> None:
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip())[-500:] or "no output"
        raise RemoteError(f"Hive {host.alias!r} ({host.destination}): {what} failed with exit "
                          f"code {result.returncode}: {detail}")


def _key_values(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, _, value in pairs}


def _ids_file() -> Path:
    return paths.state_dir() / HIVE_IDS_FILE


def hive_ids() -> dict[str, str]:
    """Map each installed alias to the stable hive id its install created."""
    try:
        loaded = json.loads(_ids_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(key): str(value) for key, value in loaded.items()} if isinstance(
        loaded, dict) else {}


def remember_hive_id(alias: str, hive_id: str) -> None:
    ids = hive_ids()
    ids[alias] = hive_id
    _ids_file().write_text(json.dumps(ids, indent=2), encoding="utf-8")


def forget_hive_id(alias: str) -> None:
    ids = hive_ids()
    if ids.pop(alias, None) is not None:
        _ids_file().write_text(json.dumps(ids, indent=2), encoding="utf-8")
