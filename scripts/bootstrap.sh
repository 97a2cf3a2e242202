#!/usr/bin/env bash
# Create .venv (if missing) and install Barrage into it. Used by serve.sh and test.sh.
#   scripts/bootstrap.sh          everything the node and the clients need (the `all` extra)
#   scripts/bootstrap.sh dev      plus test, lint and code-generation tools
# Safe to start twice at once (serve.sh and test.sh on a fresh clone): the second waits
# for the first under a lock, then finds the work done.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
exec 9>.bootstrap.lock
flock 9
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.barrage-installed-${1:-runtime}
fresh() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ]; }
# A dev install holds the runtime one.
if ! fresh "$stamp" && ! { [ "${1:-runtime}" = runtime ] && fresh .venv/.barrage-installed-dev; }; then
  echo "barrage: installing into .venv (first run only; about a minute)…" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ "${1:-}" = dev ]; then
    .venv/bin/python -m pip install --quiet -e ".[dev]"
  else
    .venv/bin/python -m pip install --quiet -e ".[all]"
  fi
  touch "$stamp"
fi
