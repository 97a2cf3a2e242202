#!/usr/bin/env bash
# Install (first run only) and start a Barrage node: gRPC on 127.0.0.1:50051, embedded
# log in ./data. Any arguments go to `barrage serve` (see `barrage serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/barrage serve "$@"
