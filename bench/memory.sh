#!/usr/bin/env bash
# Memory while a bus grows: batched publishes for N seconds (default 60; ~10 million events
# at 170k/s), sampling the server's RSS every 5 s. Usage: bench/memory.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
secs="${1:-60}"
start_switchyard 8793
echo "idle RSS: $(ps -o rss= -p $pid) KiB"
"$bin/loadgen" publish --url http://127.0.0.1:8793 --key "$key" --phases batch --seconds "$secs" &
load=$!
while kill -0 $load 2>/dev/null; do
  sleep 5
  events=$(curl -s -H "Authorization: Bearer $key" 127.0.0.1:8793/v1/buses/default | sed 's/.*"events":\([0-9]*\).*/\1/')
  echo "events stored: $events, RSS: $(ps -o rss= -p $pid | tr -d ' ') KiB"
done
wait $load
du -sh "$data/buses" | sed 's/^/on disk: /'
