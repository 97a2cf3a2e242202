#!/usr/bin/env bash
# Install everything the tests need (first run only) and run the whole suite:
# lint (ruff), types (mypy), protos (buf lint + stale stubs, inside pytest) and the
# tests, which start real servers and a Kafka-protocol broker on loopback themselves.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
