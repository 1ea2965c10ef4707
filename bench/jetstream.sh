#!/usr/bin/env bash
# Bus logs in JetStream against the embedded log, one run, same binary: publish throughput
# and latency (`loadgen publish`) and delivery (`loadgen deliver`), each against a fresh
# server; the JetStream servers use a NATS server of their own (fresh store on this disk,
# removed afterwards). Usage: bench/jetstream.sh [seconds-per-phase]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
secs="${1:-5}"
nats_dir=$(mktemp -d)
data_dirs+=("$nats_dir")
nats_port=4298
nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$nats_dir" >/dev/null 2>&1 &
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores; rustc $(rustc --version | cut -d' ' -f2); nats-server $(nats-server --version | awk '{print $NF}')"
run=0
for mode in embedded jetstream; do
  flags=()
  if [ "$mode" = jetstream ]; then flags=(--log "nats://127.0.0.1:$nats_port"); fi
  run=$((run + 1))
  echo "== $mode: publishing"
  start_switchyard 8793 "${flags[@]}" --log-prefix "bench$run"
  "$bin/loadgen" publish --url http://127.0.0.1:8793 --key "$key" --label "$mode" --seconds "$secs"
  echo "$mode: server RSS after publishing: $(ps -o rss= -p "$pid") KiB"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  run=$((run + 1))
  echo "== $mode: delivering"
  start_switchyard 8794 --target-allow-cidr 127.0.0.0/8 "${flags[@]}" --log-prefix "bench$run"
  "$bin/loadgen" deliver --url http://127.0.0.1:8794 --key "$key" --seconds "$secs"
  echo "$mode: server RSS after delivering: $(ps -o rss= -p "$pid") KiB"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
