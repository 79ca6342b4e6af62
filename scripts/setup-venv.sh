#!/usr/bin/env bash
# Create .venv and install requirements.txt plus the project, only when they
# changed since the last install (a stamp file contains their hash). Sourced by
# the demo and test scripts; prints nothing when there is nothing to do.
set -euo pipefail

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$project_root/.venv"
stamp="$venv/.net119-install-stamp"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "$python is older than Python 3.11: set PYTHON, e.g. PYTHON=python3.11" >&2
    exit 1
  fi
  echo "Creating the virtual environment in $venv"
  "$python" -m venv "$venv"
fi

wanted="$(cat "$project_root/requirements.txt" "$project_root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  echo "Installing Python packages into $venv (about a minute on first run)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$project_root/requirements.txt" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -e "$project_root" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$wanted" > "$stamp"
fi
