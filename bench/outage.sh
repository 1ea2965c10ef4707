#!/usr/bin/env bash
# A target that is down, then recovers: events are published at a steady rate while the
# receiver answers 503 for the whole outage; then it answers 200. Reports that every event
# was delivered, how many twice, and the server's RSS through the outage.
# Usage: bench/outage.sh [outage-seconds (600)] [rate (200)]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
outage="${1:-600}"
rate="${2:-200}"
python3 bench/outage_receiver.py 8795 "$outage" &
start_switchyard 8794 --target-allow-cidr 127.0.0.0/8
curl -sf -X PUT 127.0.0.1:8794/v1/buses/default/rules/down -H "Authorization: Bearer $key" \
  -H 'content-type: application/json' \
  -d '{"pattern": {"source": ["/bench/shop"]}, "targets": [{"id": "rx", "kind": "http",
       "http": {"url": "http://127.0.0.1:8795/hook"}, "retry": {"max_backoff_ms": 10000}}]}' >/dev/null
start=$(date +%s)
"$bin/loadgen" publish --url http://127.0.0.1:8794 --key "$key" --phases latency --rate "$rate" \
  --seconds "$outage" --label outage &
load=$!
while kill -0 $load 2>/dev/null; do
  sleep 30
  echo "t=$(( $(date +%s) - start ))s RSS $(ps -o rss= -p $pid | tr -d ' ') KiB receiver $(curl -s 127.0.0.1:8795/stats)"
done
wait $load
events=$(curl -s -H "Authorization: Bearer $key" 127.0.0.1:8794/v1/buses/default | sed 's/.*"events":\([0-9]*\).*/\1/')
echo "published: $events events; outage over at t=${outage}s"
while true; do
  stats=$(curl -s 127.0.0.1:8795/stats)
  got=$(echo "$stats" | sed 's/.*"delivered": \([0-9]*\).*/\1/')
  echo "t=$(( $(date +%s) - start ))s RSS $(ps -o rss= -p $pid | tr -d ' ') KiB receiver $stats"
  [ "$got" -ge "$events" ] && break
  sleep 10
done
echo "all $events events delivered after the outage; receiver: $stats"
