"""POSIX sh scripts the keeper runs on a remote hive's machine over SSH.

Each script takes the InstallDir as `$1` (a leading `~/` is expanded there, on the remote)
and uses absolute paths for the tools it needs, because a non-interactive SSH session has a
minimal `PATH`. None of them uses sudo.
"""

from __future__ import annotations

# Exit codes the scripts use for conditions the keeper explains to the user.
EXIT_NO_PYTHON = 3
EXIT_NO_VENV_MODULE = 4
EXIT_NOT_INSTALLED = 5

PREAMBLE = """\
set -eu
dir=$1; shift
case $dir in "~/"*) dir=$HOME/${dir#"~/"};; esac
venv=$dir/venv
"""

# Prints key=value lines: python, python_version, arch, free_kb, venv_exists.
CHECK = PREAMBLE + f"""\
py=""
if [ -x "$venv/bin/python" ]; then py=$venv/bin/python; fi
for candidate in /usr/local/bin/python3.13 /usr/bin/python3.13 /usr/local/bin/python3.12 \\
    /usr/bin/python3.12 /usr/local/bin/python3.11 /usr/bin/python3.11 /usr/local/bin/python3 \\
    /usr/bin/python3 /opt/homebrew/bin/python3; do
  [ -z "$py" ] || break
  [ -x "$candidate" ] || continue
  if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    py=$candidate
  fi
done
if [ -z "$py" ]; then echo "python=missing"; exit {EXIT_NO_PYTHON}; fi
echo "python=$py"
echo "python_version=$("$py" -c 'import platform; print(platform.python_version())')"
echo "arch=$(/usr/bin/uname -m 2>/dev/null || /bin/uname -m)"
parent=$dir
while [ ! -d "$parent" ]; do parent=$(/usr/bin/dirname "$parent"); done
echo "free_kb=$(/bin/df -Pk "$parent" | /usr/bin/awk 'NR==2 {{print $4}}')"
if [ -x "$venv/bin/python" ]; then echo venv_exists=yes; else echo venv_exists=no; fi
"""

# $1 InstallDir, $2 the Python to create the venv with.
CREATE_VENV = PREAMBLE + f"""\
py=$1
/bin/mkdir -p "$dir"
/bin/chmod 700 "$dir"
if [ -x "$venv/bin/python" ]; then echo "venv=kept"; exit 0; fi
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then exit {EXIT_NO_VENV_MODULE}; fi
"$py" -m venv "$venv"
echo "venv=created"
"""

# $1 InstallDir, $2 the wheel's file name; the wheel's bytes arrive on stdin.
UPLOAD = PREAMBLE + """\
name=$1
/bin/mkdir -p "$dir/wheels"
/bin/cat > "$dir/wheels/$name.part"
/bin/mv "$dir/wheels/$name.part" "$dir/wheels/$name"
echo "wheel=$dir/wheels/$name"
"""

# $1 InstallDir, $2 the wheel's file name. The first pip call brings dependencies; the second
# replaces rbee itself even when the version number did not change.
PIP_INSTALL = PREAMBLE + """\
wheel=$dir/wheels/$1
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \\
    --force-reinstall "$wheel"
"""

# $1 InstallDir, then the agent's arguments; stdin goes to the agent.
AGENT = PREAMBLE + f"""\
if [ ! -x "$venv/bin/python" ]; then exit {EXIT_NOT_INSTALLED}; fi
exec "$venv/bin/python" -m rbee_tui.cli.hive_agent --install-dir "$dir" "$@"
"""

# Removes only what `install` created, never InstallDir's other contents.
UNINSTALL = PREAMBLE + """\
if [ ! -d "$dir" ]; then echo "removed=nothing"; exit 0; fi
for part in venv wheels config data state cache; do /bin/rm -rf "${dir:?}/$part"; done
/bin/rmdir "$dir" 2>/dev/null || true
echo "removed=$dir"
"""
