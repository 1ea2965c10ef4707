# Shared by the benchmark scripts: build release binaries and start Switchyards on fresh
# data dirs. `start_switchyard` sets $data, $pid and $key for the server it started; the
# EXIT trap stops every background job and removes every data dir.
# Usage: start_switchyard PORT [extra serve flags...]; $switchyard_bin picks another binary.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"
cargo build --release -q -p switchyard -p switchyard-bench
bin="$CARGO_TARGET_DIR/release"
data_dirs=()
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "${data_dirs[@]}"' EXIT

start_switchyard() {
  local port=$1
  shift
  data=$(mktemp -d)
  data_dirs+=("$data")
  SWITCHYARD_LOG_LEVEL=warn "${switchyard_bin:-$bin/switchyard}" serve --listen "127.0.0.1:$port" --data-dir "$data" "$@" >/dev/null &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "127.0.0.1:$port/healthz" >/dev/null && [ -f "$data/admin.key" ] && break
    sleep 0.1
  done
  key=$(cat "$data/admin.key")
}
