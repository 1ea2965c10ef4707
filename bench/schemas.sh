#!/usr/bin/env bash
# Publish throughput with schema discovery on and off, in the same run.
# Usage: bench/schemas.sh [seconds-per-phase]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
secs="${1:-10}"
start_switchyard 8796 --schema-discovery false
off_key=$key
start_switchyard 8797
on_key=$key
for round in 1 2; do
  "$bin/loadgen" publish --url http://127.0.0.1:8796 --key "$off_key" --phases single,batch --seconds "$secs" --label "discovery off (round $round)"
  "$bin/loadgen" publish --url http://127.0.0.1:8797 --key "$on_key" --phases single,batch --seconds "$secs" --label "discovery on (round $round)"
done
curl -s -H "Authorization: Bearer $on_key" 127.0.0.1:8797/v1/schemas | head -c 300; echo
