#!/usr/bin/env bash
# The whole test suite: starts the services it needs, then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"
scripts/services.sh
cargo test --workspace "$@"
# The README's run command resolves to the server binary.
cargo run -q -- --version
