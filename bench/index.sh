#!/usr/bin/env bash
# Indexing and query figures: batched publishes for N seconds (default 20), then the time
# until every event is searchable, then timed searches and aggregations over what was
# stored. Usage: bench/index.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
secs="${1:-20}"
start_switchyard 8798
start=$(date +%s.%N)
"$bin/loadgen" publish --url http://127.0.0.1:8798 --key "$key" --phases batch --seconds "$secs"
published=$(date +%s.%N)
lag() { curl -s 127.0.0.1:8798/metrics | awk '/^switchyard_index_lag_events\{bus="default"\}/ {print $2}'; }
echo "index lag when publishing stopped: $(lag) events"
while [ "$(lag)" != "0" ]; do sleep 0.2; done
done_at=$(date +%s.%N)
events=$(curl -s -H "Authorization: Bearer $key" 127.0.0.1:8798/v1/buses/default | sed 's/.*"events":\([0-9]*\).*/\1/')
awk -v e="$events" -v s="$start" -v p="$published" -v d="$done_at" 'BEGIN {
  printf "indexed %d events: all searchable %.1f s after publishing stopped; %.0f events/s from first publish to fully indexed\n", e, d - p, e / (d - s) }'
du -sh "$data/buses/default/index" | awk -v e="$events" '{print "index size: " $1 " for " e " events"}'
time_query() { # label, curl args...
  local label=$1; shift
  local best=999
  for _ in 1 2 3 4 5; do
    t=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $key" "$@")
    best=$(awk -v a="$best" -v b="$t" 'BEGIN {print (b < a) ? b : a}')
  done
  echo "$label: best of 5: $(awk -v t="$best" 'BEGIN {printf "%.1f", t * 1000}') ms"
}
time_query "selective search (data.customer.id = c-7 AND data.total > 100, 50 newest)" -G 127.0.0.1:8798/v1/buses/default/events \
  --data-urlencode 'q=data.customer.id = c-7 AND data.total > 100'
time_query "full-text search (one word, 50 newest)" -G 127.0.0.1:8798/v1/buses/default/events --data-urlencode 'q=gold'
time_query "group-by over everything (data.customer.country, avg:data.total)" 127.0.0.1:8798/v1/buses/default/analytics \
  -H 'content-type: application/json' \
  -d '{"q": "", "from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "group_by": ["data.customer.country"], "metric": "avg:data.total"}'
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
day_ago=$(date -u -d '24 hours ago' +%Y-%m-%dT%H:%M:%SZ)
time_query "24 h histogram at 1-minute buckets" 127.0.0.1:8798/v1/buses/default/analytics \
  -H 'content-type: application/json' \
  -d "{\"q\": \"\", \"from\": \"$day_ago\", \"to\": \"$now\", \"interval\": \"1m\"}"
