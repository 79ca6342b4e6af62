#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: set up .venv, install the
# Debian packages the tests need (Dovecot, Chromium, fonts) when missing, then
# run pytest. Extra arguments go to pytest, e.g. scripts/test.sh -k schedule.
#
# The tests start their own PostgreSQL (from the pgserver wheel), SMTP and
# IMAP servers on 127.0.0.1. Set NET119_TEST_DATABASE_URL to use an existing
# PostgreSQL server instead.
set -euo pipefail

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$project_root"

bash scripts/setup-venv.sh
if [ -x scripts/install-system-packages.sh ] || [ -f scripts/install-system-packages.sh ]; then
  if [ "$(id -u)" -eq 0 ]; then
    bash scripts/install-system-packages.sh
  elif command -v sudo >/dev/null 2>&1; then
    sudo bash scripts/install-system-packages.sh
  else
    echo "Not root and no sudo: skipping Debian packages; tests that need them will fail." >&2
  fi
fi

exec .venv/bin/python -m pytest "$@"
