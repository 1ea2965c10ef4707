#!/usr/bin/env bash
# Ingest benchmark: a release Switchyard (fresh data dir) and the no-storage baseline, each
# loaded by the same generator in the same run. Usage: bench/ingest.sh [seconds-per-phase]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
secs="${1:-10}"
"$bin/loadgen" baseline --listen 127.0.0.1:8790 >/dev/null &
start_switchyard 8791
echo "machine: $(nproc) cores, $(uname -r); rustc $(rustc --version | cut -d' ' -f2)"
"$bin/loadgen" publish --url http://127.0.0.1:8790 --label baseline --seconds "$secs"
"$bin/loadgen" publish --url http://127.0.0.1:8791 --key "$key" --label switchyard --seconds "$secs"
metrics=$(curl -s 127.0.0.1:8791/metrics)
records=$(echo "$metrics" | awk '/^switchyard_log_records_appended_total\{bus="default"\}/ {print $2}')
syncs=$(echo "$metrics" | awk '/^switchyard_log_syncs_total\{bus="default"\}/ {print $2}')
echo "group commit: $records records in $syncs fdatasyncs ($(awk "BEGIN {printf \"%.1f\", $records / $syncs}") records per sync)"
echo "switchyard idle RSS after the run: $(ps -o rss= -p "$pid") KiB"
du -sh "$data/buses" | sed 's/^/stored: /'
