#!/usr/bin/env bash
# A local three-node Switchyard cluster to try: its own NATS server with JetStream (bus logs
# and journals), its own PostgreSQL database (metadata, delivery ledger, leases) on the
# local server, and three nodes sharing them on 127.0.0.1:8801-8803. Ctrl-C stops it all
# (the NATS data and the node data dirs are removed; the database is dropped).
# Usage: scripts/cluster.sh [NODES (default 3)] — needs nats-server and a local PostgreSQL
# with trust auth (scripts/services.sh starts one); SWITCHYARD_BIN picks the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes="${1:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"
if [ -z "${SWITCHYARD_BIN:-}" ]; then
  cargo build --release -q -p switchyard
  SWITCHYARD_BIN="$CARGO_TARGET_DIR/release/switchyard"
fi
work=$(mktemp -d)
db="switchyard_cluster_$$"
nats_port=4299
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $db" >/dev/null
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done

start_node() { # start_node N
  local n=$1 dir="$work/node$1"
  mkdir -p "$dir"
  [ "$n" -gt 1 ] && cp "$work/node1/admin.key" "$dir/admin.key"
  SWITCHYARD_LOG_LEVEL=warn "$SWITCHYARD_BIN" serve --listen "127.0.0.1:880$n" --data-dir "$dir" \
    --log "nats://127.0.0.1:$nats_port" --node-id "node$n" \
    --database-url "postgres://postgres@127.0.0.1:5432/$db" >"$work/node$n.log" 2>&1 &
  for _ in $(seq 1 100); do
    curl -sf "127.0.0.1:880$n/readyz" >/dev/null && [ -f "$dir/admin.key" ] && return 0
    sleep 0.1
  done
  echo "node $n did not become ready; its log:" >&2
  cat "$work/node$n.log" >&2
  exit 1
}

for n in $(seq 1 "$nodes"); do start_node "$n"; done
echo "cluster up: $nodes nodes on http://127.0.0.1:8801..880$nodes (NATS 127.0.0.1:$nats_port, database $db)"
echo "admin key: $(cat "$work/node1/admin.key")  (the same on every node)"
echo "logs in $work; Ctrl-C stops the cluster"
wait
