#!/usr/bin/env bash
# Delivery benchmark: a release Switchyard (fresh data dir, loopback targets allowed) and
# `loadgen deliver`, whose in-process receiver times every delivery.
# Usage: bench/deliver.sh [seconds-per-latency-phase]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"
secs="${1:-10}"
cargo build --release -q -p switchyard -p switchyard-bench
bin="$CARGO_TARGET_DIR/release"
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$data"' EXIT
SWITCHYARD_LOG_LEVEL=warn "$bin/switchyard" serve --listen 127.0.0.1:8792 --data-dir "$data" \
  --target-allow-cidr 127.0.0.0/8 >/dev/null &
for _ in $(seq 1 100); do
  curl -sf 127.0.0.1:8792/healthz >/dev/null && [ -f "$data/admin.key" ] && break
  sleep 0.1
done
echo "machine: $(nproc) cores; rustc $(rustc --version | cut -d' ' -f2)"
"$bin/loadgen" deliver --url http://127.0.0.1:8792 --key "$(cat "$data/admin.key")" --seconds "$secs"
echo "server RSS after the run: $(ps -o rss= -p "$(pgrep -f "switchyard serve --listen 127.0.0.1:8792")") KiB"
