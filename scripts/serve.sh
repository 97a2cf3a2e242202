#!/usr/bin/env bash
# Install (first run only) and start a Barrage node: gRPC on 127.0.0.1:50051, embedded
# log in ./data. Any arguments go to `barrage serve` (see `barrage serve --help`).
#
#   scripts/serve.sh                 run in the foreground (Ctrl-C drains and stops)
#   scripts/serve.sh --background    start in the background, logging to ./barrage.log,
#                                    and return once the node answers (or fail with its log)
set -euo pipefail
cd "$(dirname "$0")/.."
background=false
if [ "${1:-}" = --background ]; then
  background=true
  shift
fi
scripts/bootstrap.sh
if ! $background; then
  exec .venv/bin/barrage serve "$@"
fi

listen=${BARRAGE_LISTEN:-127.0.0.1:50051}
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --listen) listen=${args[$((i + 1))]:-$listen} ;;
    --listen=*) listen=${args[$i]#--listen=} ;;
  esac
done
if .venv/bin/barrage status --target "$listen" >/dev/null 2>&1; then
  echo "barrage: a node already answers on $listen (stop it, or pass --listen HOST:PORT)" >&2
  exit 1
fi
node_log=${BARRAGE_NODE_LOG:-barrage.log}
nohup .venv/bin/barrage serve "$@" >"$node_log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 150); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "barrage: the node did not start; its log ($node_log) says:" >&2
    tail -n 5 "$node_log" >&2
    exit 1
  fi
  if .venv/bin/barrage status --target "$listen" >/dev/null 2>&1; then
    echo "barrage: node running on $listen (pid $pid, log in $node_log); stop it with: kill $pid"
    exit 0
  fi
  sleep 0.2
done
echo "barrage: the node (pid $pid) did not answer on $listen within 30 s; see $node_log" >&2
exit 1
