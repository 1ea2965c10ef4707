#!/usr/bin/env bash
# Ingest of two Switchyard binaries in one run, alternating A, B, A, B, each round on a fresh
# server and data dir (so neither inherits the other's indexing backlog): usage
# bench/compare_ingest.sh A_BIN B_BIN [seconds-per-phase] [rounds]
# e.g. an older commit's release binary against this tree's. The load generator is this
# tree's `loadgen` (release).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
a_bin=$1 b_bin=$2 secs="${3:-10}" rounds="${4:-3}"
run() { # run LABEL BIN PORT
  local dir spid skey
  dir=$(mktemp -d)
  data_dirs+=("$dir")
  SWITCHYARD_LOG_LEVEL=error "$2" serve --listen "127.0.0.1:$3" --data-dir "$dir" >/dev/null &
  spid=$!
  for _ in $(seq 1 100); do
    curl -sf "127.0.0.1:$3/healthz" >/dev/null && [ -f "$dir/admin.key" ] && break
    sleep 0.1
  done
  skey=$(cat "$dir/admin.key")
  "$bin/loadgen" publish --url "http://127.0.0.1:$3" --key "$skey" --label "$1" --seconds "$secs"
  echo "$1: RSS after the run $(ps -o rss= -p "$spid") KiB"
  kill -TERM "$spid"
  wait "$spid" || true
}
echo "machine: $(nproc) cores, $(uname -r); A=$a_bin B=$b_bin"
for round in $(seq 1 "$rounds"); do
  run "A round $round" "$a_bin" 8801
  run "B round $round" "$b_bin" 8802
done
