#!/usr/bin/env bash
# Create .venv (if missing) and install Barrage into it. Used by serve.sh and test.sh.
#   scripts/bootstrap.sh          runtime dependencies
#   scripts/bootstrap.sh dev      plus test, lint and code-generation tools
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.barrage-installed-${1:-runtime}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ "${1:-}" = dev ]; then
    .venv/bin/python -m pip install --quiet -e ".[dev]"
  else
    .venv/bin/python -m pip install --quiet -e .
  fi
  touch "$stamp"
fi
