#!/usr/bin/env bash
# Ingest of two Switchyard binaries in one run, alternating (A, B, A, B) so both see the same
# machine: usage bench/compare_ingest.sh A_BIN B_BIN [seconds-per-phase] [rounds]
# e.g. an older commit's release binary against this tree's. The load generator is this
# tree's `loadgen` (release).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
a_bin=$1 b_bin=$2 secs="${3:-10}" rounds="${4:-2}"
start() { # start BIN PORT -> sets $key_<port>
  local dir
  dir=$(mktemp -d)
  data_dirs+=("$dir")
  SWITCHYARD_LOG_LEVEL=warn "$1" serve --listen "127.0.0.1:$2" --data-dir "$dir" >/dev/null &
  for _ in $(seq 1 100); do
    curl -sf "127.0.0.1:$2/healthz" >/dev/null && [ -f "$dir/admin.key" ] && break
    sleep 0.1
  done
  eval "key_$2=\$(cat \"$dir/admin.key\")"
}
start "$a_bin" 8801
start "$b_bin" 8802
echo "machine: $(nproc) cores, $(uname -r); A=$a_bin B=$b_bin"
for round in $(seq 1 "$rounds"); do
  "$bin/loadgen" publish --url http://127.0.0.1:8801 --key "$key_8801" --label "A round $round" --seconds "$secs"
  "$bin/loadgen" publish --url http://127.0.0.1:8802 --key "$key_8802" --label "B round $round" --seconds "$secs"
done
