# Shared by the benchmark scripts: build release binaries and start a Switchyard on a fresh
# data dir. Sets $bin, $data, $pid and $key; the caller's EXIT trap cleans up.
# Usage: start_switchyard PORT [extra serve flags...]
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"
cargo build --release -q -p switchyard -p switchyard-bench
bin="$CARGO_TARGET_DIR/release"
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$data"' EXIT

start_switchyard() {
  local port=$1
  shift
  SWITCHYARD_LOG_LEVEL=warn "$bin/switchyard" serve --listen "127.0.0.1:$port" --data-dir "$data" "$@" >/dev/null &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "127.0.0.1:$port/healthz" >/dev/null && [ -f "$data/admin.key" ] && break
    sleep 0.1
  done
  key=$(cat "$data/admin.key")
}
