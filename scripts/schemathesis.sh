#!/usr/bin/env bash
# Fuzzes the real server from its own /openapi.json with schemathesis: every operation, with
# the admin key, checking for 5xx answers and for answers (status, content type, body) that
# the document does not describe. Ends with one summary line; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"

SCHEMATHESIS_VERSION=4.32.5
# Examples per operation and phase; the seed makes the generated cases the same on every run.
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-200}"
SEED="${SCHEMATHESIS_SEED:-11}"

venv="$HOME/.cache/switchyard-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build -q -p switchyard

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/stdout"
SWITCHYARD_LOG_LEVEL=error "$CARGO_TARGET_DIR/debug/switchyard" serve \
  --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/stdout" 2>"$work/server.log" &
server_pid=$!
# The first line names the address; keep draining the rest so the server never blocks.
exec 3<"$work/stdout"
if ! read -r -t 60 line <&3; then
  echo "schemathesis: the server did not start" >&2
  cat "$work/server.log" >&2
  exit 1
fi
cat <&3 >/dev/null &
base=${line#switchyard listening on }
key=$(cat "$work/data/admin.key")

# The resources the document's examples name, so that examples reach past a 404.
seed() {
  local method=$1 path=$2 content_type=$3 body=$4
  curl -sS --fail-with-body -o /dev/null -X "$method" "$base$path" \
    -H "Authorization: Bearer $key" -H "Content-Type: $content_type" --data-binary "$body"
}
seed PUT /v1/functions/echo application/wasm @functions/wat/echo.wat
seed PUT /v1/buses/default/rules/to-echo application/json \
  '{"pattern": {"source": ["/shop"]}, "targets": [{"id": "echo", "kind": "function", "function": "echo"}]}'
seed PUT /v1/webhooks/github application/json '{"bus": "default", "source": "/github"}'
seed POST /v1/keys application/json '{"name": "ci", "role": "reader"}'
seed POST /v1/buses/default/events application/cloudevents+json \
  '{"specversion": "1.0", "id": "order-1", "source": "/shop", "type": "order.created", "data": {"total": 5}}'
seed PUT /v1/schemas/%2Fshop/order.created application/json '{"schema": {"type": "object"}}'

status=0
# Run from the scratch directory: schemathesis keeps a cache of past failures in its working
# directory and would replay them first, so no run would be like the next.
(cd "$work" && "$venv/bin/schemathesis" run "$base/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --workers 2 \
  --request-timeout 30 \
  --no-color \
  --report junit --report-junit-path "$work/junit.xml" \
  "$@") || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "schemathesis: the server died during the run" >&2
  tail -50 "$work/server.log" >&2
  status=1
fi
if grep -q "panicked" "$work/server.log"; then
  echo "schemathesis: the server panicked:" >&2
  grep -A5 "panicked" "$work/server.log" >&2
  status=1
fi
if [ "$status" != 0 ] && [ -s "$work/server.log" ]; then
  echo "schemathesis: the server's log:" >&2
  tail -50 "$work/server.log" >&2
fi

# One test case per operation: passed unless it has a failure or an error.
"$venv/bin/python" - "$work/junit.xml" "$status" <<'EOF'
import sys
import xml.etree.ElementTree as ET

try:
    cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
except (OSError, ET.ParseError) as e:
    print(f"schemathesis: no report ({e})", file=sys.stderr)
    cases = []
failed = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
skipped = sum(1 for c in cases if c.find("skipped") is not None)
passed = len(cases) - failed - skipped
if failed == 0 and sys.argv[2] != "0":
    failed = 1  # schemathesis or the server failed outside any one operation
print(f"schemathesis: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
