#!/usr/bin/env bash
# Delivery benchmark: a release Switchyard (fresh data dir, loopback targets allowed) and
# `loadgen deliver`, whose in-process receiver times every delivery.
# Usage: bench/deliver.sh [seconds-per-latency-phase]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
secs="${1:-10}"
start_switchyard 8792 --target-allow-cidr 127.0.0.0/8
echo "machine: $(nproc) cores; rustc $(rustc --version | cut -d' ' -f2)"
"$bin/loadgen" deliver --url http://127.0.0.1:8792 --key "$key" --seconds "$secs"
echo "server RSS after the run: $(ps -o rss= -p "$pid") KiB"
