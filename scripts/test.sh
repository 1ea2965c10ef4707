#!/usr/bin/env bash
# The whole test suite: starts the services it needs, then runs every test in the workspace
# and ends with one summary line over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"
scripts/services.sh
# The AWS-checked pattern corpus lives in ../shared beside the repository; a clone made
# elsewhere finds it beside the repository it was cloned from. Tests fail loudly without it.
if [ -z "${SWITCHYARD_CONFORMANCE:-}" ]; then
  origin=$(git remote get-url origin 2>/dev/null || true)
  for base in "$PWD/.." "${origin:+$origin/..}"; do
    if [ -n "$base" ] && [ -f "$base/shared/conformance/event-patterns.jsonl" ]; then
      export SWITCHYARD_CONFORMANCE="$base/shared/conformance/event-patterns.jsonl"
      break
    fi
  done
fi
# The README's run command resolves to the server binary.
cargo run -q -- --version
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace "$@" 2>&1 | tee "$log"
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
