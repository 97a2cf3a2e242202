#!/usr/bin/env bash
# Every figure of docs/performance.md, one run after another (about 35 minutes).
#   loadtest/bench_all.sh OUT_DIR [NAME...]
# Each run spawns its own server (and, for kafka-*, its own test broker) on loopback,
# writes OUT_DIR/<name>/{result.json,summary.md,*.png} and stops everything it started.
# Runs named *-profile attach py-spy to the server; they run only when named, and those
# with --profile-native are marked invalid (py-spy pauses the server per sample).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: loadtest/bench_all.sh OUT_DIR [NAME...]}
shift
only=("$@")
py=.venv/bin/python
traces=$(mktemp -d /tmp/barrage-bench-traces.XXXXXX)
trap 'rm -rf "$traces"' EXIT

# run NAME [VAR=VALUE...] ARGS...: environment assignments first (they reach the server).
run() {
  local name=$1
  shift
  if [ ${#only[@]} -gt 0 ]; then
    [[ " ${only[*]} " =~ " ${name} " ]] || return 0
  elif [[ $name == *-profile ]]; then
    return 0
  fi
  local envs=()
  while [[ ${1:-} == *=* && ${1:-} != --* ]]; do
    envs+=("$1")
    shift
  done
  echo "== $name: ${envs[*]:-} python -m barrage.loadtest $* --out $out/$name" >&2
  env "${envs[@]}" "$py" -m barrage.loadtest "$@" --out "$out/$name" | tail -1
  rm -f "$traces"/*
}

# The server samples normal events to a per-viewer budget (30/s); this lifts it, so a
# viewer gets every event, as Redis/NATS subscribers do in the peers' yardstick.
unsampled=BARRAGE_VIEWER_BUDGET_PER_S=100000
# The bars' configuration: metrics served (Prometheus) and every span exported (to a file).
# Messages are traced at the production sampling docs/observability.md recommends (1 %,
# parent-based); deliveries' write spans at the server's default 1 %.
telemetry="--metrics-listen 127.0.0.1:0 --trace-file $traces/spans.jsonl"
ratio=(OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01)

# ---- the bars
run mega-room-bar "$unsampled" "${ratio[@]}" --scenario mega-room --spawn-server "$telemetry"
run mega-room-traced-all "$unsampled" --scenario mega-room --spawn-server "$telemetry"
run quiet-room-bar "${ratio[@]}" --scenario quiet-room --spawn-server "$telemetry"
run hot-room-bar "${ratio[@]}" --scenario hot-room --spawn-server "$telemetry"
run ingest-bar "${ratio[@]}" --scenario ingest --spawn-server "$telemetry"
run streams-10k --scenario many-rooms --viewers 10000 --rooms 200 --rate 100 --critical-rate 2 --duration 20 \
  --sample 40 --spawn-server ""
# Memory under a hot room for long enough to fill the dedupe window (250k keys).
run hot-room-long --scenario hot-room --duration 150 --spawn-server ""

# ---- Kafka (the test broker, Tansu, started by the run; its CPU is reported apart)
run kafka-ingest --scenario ingest --kafka --spawn-server ""
run kafka-mega-room "$unsampled" --scenario mega-room --kafka --spawn-server ""
# Same load per worker: one worker with 500 viewers, two with 1000 between them.
run kafka-workers-1 "$unsampled" --scenario mega-room --viewers 500 --kafka --spawn-server "--workers 1"
run kafka-workers-2 "$unsampled" --scenario mega-room --viewers 1000 --kafka --spawn-server "--workers 2"
# Capacity: each worker held to a quarter of a core (cgroup quota; needs root), offered
# more than two such workers can deliver.
run kafka-capped-1 "$unsampled" --scenario mega-room --rate 200 --kafka --cpu-cap 0.25 --spawn-server "--workers 1"
run kafka-capped-2 "$unsampled" --scenario mega-room --rate 200 --kafka --cpu-cap 0.25 --spawn-server "--workers 2"

# ---- the other scenarios, default server (no telemetry)
run mega-room --scenario mega-room --spawn-server ""
run mega-room-unsampled "$unsampled" --scenario mega-room --spawn-server ""
run quiet-room --scenario quiet-room --spawn-server ""
run hot-room --scenario hot-room --spawn-server ""
run ingest --scenario ingest --spawn-server ""
run many-rooms --scenario many-rooms --spawn-server ""
run churn --scenario churn --spawn-server ""
run slow-viewers --scenario slow-viewers --spawn-server ""
# A stalled phone's outbox made small (32 KiB) so that a 15 s stall overflows it: normal
# events are shed (and reported), then critical ones force resume_required and a catch-up.
run slow-viewers-shed "$unsampled" BARRAGE_OUTBOX_MAX_BYTES=32768 --scenario slow-viewers --spawn-server ""
run slow-viewers-resume "$unsampled" BARRAGE_OUTBOX_MAX_BYTES=32768 --scenario slow-viewers --critical-rate 20 \
  --drain 30 --spawn-server ""

# ---- profiles (only when named)
run mega-room-profile "$unsampled" --scenario mega-room --duration 20 --spawn-server "" --profile 15 --profile-native
run mega-room-traced-profile "$unsampled" --scenario mega-room --duration 20 --spawn-server "$telemetry" --profile 15
run hot-room-profile --scenario hot-room --duration 20 --spawn-server "" --profile 15 --profile-native
run ingest-profile --scenario ingest --duration 15 --spawn-server "" --profile 10 --profile-native
run streams-10k-profile --scenario many-rooms --viewers 10000 --rooms 200 --rate 100 --critical-rate 2 --duration 20 \
  --sample 40 --spawn-server "" --profile 15 --profile-native
