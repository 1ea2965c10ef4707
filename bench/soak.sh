#!/usr/bin/env bash
# Crash-loop soak (not in CI): publish at a steady rate while the server is SIGKILLed every
# 5-20 s, with one steady and one flaky target; then audit that every acknowledged event
# reached each target or its dead letters, and count the repeats.
# Usage: bench/soak.sh [seconds (600)] [events/s (200)]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
exec python3 bench/soak.py "${switchyard_bin:-$bin/switchyard}" "${1:-600}" "${2:-200}"
