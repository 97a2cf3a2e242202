#!/usr/bin/env bash
# Install everything the tests need (first run only) and run the whole suite:
# lint (ruff), types (mypy), protos (buf lint + stale stubs, inside pytest) and the
# tests, which start real servers and a Kafka-protocol broker on loopback themselves.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
# Headless Chromium for the report render test (Debian packages; root installs them).
# Without root the render test fails and says why, rather than this script stopping here.
scripts/install_chromium.sh || echo "scripts/test.sh: chromium could not be installed; tests/test_report_render.py will fail" >&2
# Node.js and npm (Debian packages) and the TypeScript SDK's locked dependencies (npm ci).
scripts/install_node.sh || echo "scripts/test.sh: Node.js could not be installed; tests/test_ts_sdk.py will fail" >&2
.venv/bin/ruff check .
.venv/bin/mypy
# Two workers, one test file at a time each (a file's servers are shared by its tests): about
# half the wall time on two cores. BARRAGE_TEST_WORKERS=0 runs everything in one process.
exec .venv/bin/pytest -n "${BARRAGE_TEST_WORKERS:-2}" --dist loadfile "$@"
