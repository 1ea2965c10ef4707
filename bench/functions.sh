#!/usr/bin/env bash
# Function target throughput through the whole server: a release Switchyard, the trivial
# echo function (functions/wat/echo.wat) as the target of a rule matching everything, events
# published in batches by `loadgen publish` for a few seconds; then the time until every one
# of them has been delivered (run by the function) is measured.
# Usage: bench/functions.sh [publish-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
secs="${1:-5}"
start_switchyard 8793
url=http://127.0.0.1:8793
auth="Authorization: Bearer $key"
echo "machine: $(nproc) cores; rustc $(rustc --version | cut -d' ' -f2)"
curl -sf -X PUT "$url/v1/functions/echo" -H "$auth" -H 'content-type: application/wasm' \
     --data-binary @functions/wat/echo.wat >/dev/null
curl -sf -X PUT "$url/v1/buses/default/rules/all" -H "$auth" -H 'content-type: application/json' \
     -d '{"pattern": {"source": [{"prefix": ""}]}, "targets": [{"id": "echo", "kind": "function", "function": "echo"}]}' >/dev/null
delivered() {
  curl -sf "$url/metrics" | awk '/^switchyard_deliveries_total\{.*outcome="delivered"/ {print $2}' | head -1
}
start=$(date +%s.%N)
"$bin/loadgen" publish --url "$url" --key "$key" --seconds "$secs" --phases batch --label switchyard
events=$(curl -sf "$url/v1/buses/default" -H "$auth" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
published=$(date +%s.%N)
while [ "$(delivered)" != "$events" ]; do sleep 0.05; done
done_at=$(date +%s.%N)
python3 - "$start" "$published" "$done_at" "$events" <<'PY'
import sys
start, published, done, events = map(float, sys.argv[1:])
print(f"{int(events)} events published in {published - start:.2f} s; all run through the "
      f"function {done - start:.2f} s after the start: {events / (done - start):,.0f} deliveries/s")
PY
echo "server RSS after the run: $(ps -o rss= -p "$pid") KiB"
