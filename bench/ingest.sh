#!/usr/bin/env bash
# Ingest benchmark: a release Switchyard (fresh data dir) and the no-storage baseline, each
# loaded by the same generator in the same run. Usage: bench/ingest.sh [seconds-per-phase]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"
secs="${1:-10}"
cargo build --release -q -p switchyard -p switchyard-bench
bin="$CARGO_TARGET_DIR/release"
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$data"' EXIT

"$bin/loadgen" baseline --listen 127.0.0.1:8790 >/dev/null &
SWITCHYARD_LOG_LEVEL=warn "$bin/switchyard" serve --listen 127.0.0.1:8791 --data-dir "$data" >/dev/null &
for _ in $(seq 1 100); do
  curl -sf 127.0.0.1:8791/healthz >/dev/null && [ -f "$data/admin.key" ] && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(uname -r); rustc $(rustc --version | cut -d' ' -f2)"
"$bin/loadgen" publish --url http://127.0.0.1:8790 --label baseline --seconds "$secs"
"$bin/loadgen" publish --url http://127.0.0.1:8791 --key "$(cat "$data/admin.key")" --label switchyard --seconds "$secs"
metrics=$(curl -s 127.0.0.1:8791/metrics)
records=$(echo "$metrics" | awk '/^switchyard_log_records_appended_total\{bus="default"\}/ {print $2}')
syncs=$(echo "$metrics" | awk '/^switchyard_log_syncs_total\{bus="default"\}/ {print $2}')
echo "group commit: $records records in $syncs fdatasyncs ($(awk "BEGIN {printf \"%.1f\", $records / $syncs}") records per sync)"
echo "switchyard idle RSS after the run: $(ps -o rss= -p "$(pgrep -f "switchyard serve --listen 127.0.0.1:8791")") KiB"
du -sh "$data/buses" | sed 's/^/stored: /'
