#!/usr/bin/env bash
# Memory while a bus grows: batched publishes for N seconds (default 60; ~10 million events
# at 170k/s), sampling the server's RSS every 5 s. Usage: bench/memory.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"
secs="${1:-60}"
cargo build --release -q -p switchyard -p switchyard-bench
bin="$CARGO_TARGET_DIR/release"
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$data"' EXIT
SWITCHYARD_LOG_LEVEL=warn "$bin/switchyard" serve --listen 127.0.0.1:8793 --data-dir "$data" >/dev/null &
pid=$!
for _ in $(seq 1 100); do
  curl -sf 127.0.0.1:8793/healthz >/dev/null && [ -f "$data/admin.key" ] && break
  sleep 0.1
done
key=$(cat "$data/admin.key")
echo "idle RSS: $(ps -o rss= -p $pid) KiB"
"$bin/loadgen" publish --url http://127.0.0.1:8793 --key "$key" --phases batch --seconds "$secs" &
load=$!
samples=""
while kill -0 $load 2>/dev/null; do
  sleep 5
  events=$(curl -s -H "Authorization: Bearer $key" 127.0.0.1:8793/v1/buses/default | sed 's/.*"events":\([0-9]*\).*/\1/')
  rss=$(ps -o rss= -p $pid | tr -d ' ')
  echo "events stored: $events, RSS: $rss KiB"
done
wait $load
du -sh "$data/buses" | sed 's/^/on disk: /'
