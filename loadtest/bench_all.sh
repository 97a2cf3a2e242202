#!/usr/bin/env bash
# Every figure of docs/performance.md, one scenario after another (about 20 minutes).
#   loadtest/bench_all.sh OUT_DIR [SCENARIO...]
# Each run spawns its own server on loopback, writes OUT_DIR/<name>/{result.json,
# summary.md,*.png} and stops everything it started. Runs named *-profile attach py-spy
# --native to the server: their CPU figures are inflated and marked invalid; they exist
# for their profile only.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: loadtest/bench_all.sh OUT_DIR [NAME...]}
shift
only=("$@")
py=.venv/bin/python

# run NAME [VAR=VALUE...] ARGS...: environment assignments first (they reach the server).
run() {
  local name=$1
  shift
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " ${name} " ]]; then
    return 0
  fi
  local envs=()
  while [[ ${1:-} == *=* && ${1:-} != --* ]]; do
    envs+=("$1")
    shift
  done
  echo "== $name: ${envs[*]:-} python -m loadtest $* --out $out/$name" >&2
  env "${envs[@]}" "$py" -m loadtest "$@" --out "$out/$name" | tail -1
}

# The server samples normal events to a per-viewer budget (30/s); this lifts it, so a
# viewer gets every event, as Redis/NATS subscribers do in the peers' yardstick.
unsampled=BARRAGE_VIEWER_BUDGET_PER_S=100000

run mega-room --scenario mega-room --spawn-server ""
run mega-room-unsampled "$unsampled" --scenario mega-room --spawn-server ""
run mega-room-profile "$unsampled" --scenario mega-room --duration 20 --spawn-server "" --profile 15 --profile-native
run quiet-room --scenario quiet-room --spawn-server ""
run hot-room --scenario hot-room --spawn-server ""
run hot-room-profile --scenario hot-room --duration 20 --spawn-server "" --profile 15 --profile-native
run many-rooms --scenario many-rooms --spawn-server ""
run churn --scenario churn --spawn-server ""
run slow-viewers --scenario slow-viewers --spawn-server ""
# A stalled phone's outbox made small (32 KiB) so that a 15 s stall overflows it: normal
# events are shed (and reported), then critical ones force resume_required and a catch-up.
run slow-viewers-shed "$unsampled" BARRAGE_OUTBOX_MAX_BYTES=32768 --scenario slow-viewers --spawn-server ""
run slow-viewers-resume "$unsampled" BARRAGE_OUTBOX_MAX_BYTES=32768 --scenario slow-viewers --critical-rate 20 \
  --drain 30 --spawn-server ""
run slow-viewers-resume-profile "$unsampled" BARRAGE_OUTBOX_MAX_BYTES=32768 --scenario slow-viewers \
  --critical-rate 20 --drain 30 --spawn-server "" --profile 27
run ingest --scenario ingest --spawn-server ""
run ingest-profile --scenario ingest --duration 15 --spawn-server "" --profile 10 --profile-native
run streams-10k --scenario many-rooms --viewers 10000 --rooms 200 --rate 100 --critical-rate 2 --duration 20 \
  --sample 40 --spawn-server ""
run streams-10k-profile --scenario many-rooms --viewers 10000 --rooms 200 --rate 100 --critical-rate 2 --duration 20 \
  --sample 40 --spawn-server "" --profile 15 --profile-native
