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
  switchyard_bin=$2 start_switchyard "$3"
  "$bin/loadgen" publish --url "http://127.0.0.1:$3" --key "$key" --label "$1" --seconds "$secs"
  echo "$1: RSS after the run $(ps -o rss= -p "$pid") KiB"
  kill -TERM "$pid"
  wait "$pid" || true
}
echo "machine: $(nproc) cores, $(uname -r); A=$a_bin B=$b_bin"
for round in $(seq 1 "$rounds"); do
  run "A round $round" "$a_bin" 8801
  run "B round $round" "$b_bin" 8802
done
