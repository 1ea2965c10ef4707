#!/usr/bin/env bash
# Builds every cargo-fuzz target of the repository and runs each for a bounded time.
#
#   scripts/fuzz.sh                         # every target, FUZZ_SECONDS (20) each
#   FUZZ_SECONDS=300 scripts/fuzz.sh        # longer runs
#   FUZZ_ONLY="structured frame_decode" scripts/fuzz.sh
#   FUZZ_SECONDS_TRANSFORM_TEXT=5 scripts/fuzz.sh   # one target's time (name upper-cased)
#
# The fuzz crates (`<crate>/fuzz`) are workspaces of their own, outside the main one:
# libFuzzer needs nightly compiler features, which RUSTC_BOOTSTRAP=1 unlocks on the stable
# toolchain. Each target starts from a fresh corpus seeded from `<crate>/fuzz/seeds/<target>`
# (corpora are not kept in git); a crash input is written under `<crate>/fuzz/artifacts/`
# and printed, and makes the script exit non-zero. The last line, `fuzz: N passed, M failed`,
# is what CI reads.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/switchyard-fuzz-target}"
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-20}"
# Inputs larger than this are not generated: enough for events, templates and frames,
# small enough that the fuzzer explores structure rather than size.
max_len="${FUZZ_MAX_LEN:-4096}"
rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}"
# A single input running longer than this counts as a hang (a failure).
timeout_s="${FUZZ_TIMEOUT:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi


# Crates whose fuzz build uses no sanitizer. event-store links tantivy: building it all
# under AddressSanitizer costs minutes more than the decoder under test is worth (frame
# decoding is safe Rust; what the target looks for are panics, which need no sanitizer).
no_sanitizer=" event-store "

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
summary=()
for manifest in */fuzz/Cargo.toml; do
    crate=${manifest%%/*}
    sanitizer=(-s address)
    [[ $no_sanitizer == *" $crate "* ]] && sanitizer=(-s none)
    targets=$(cd "$crate" && cargo fuzz list)
    selected=()
    for target in $targets; do
        if [[ -z ${FUZZ_ONLY:-} || " $FUZZ_ONLY " == *" $target "* ]]; then
            selected+=("$target")
        fi
    done
    [[ ${#selected[@]} -eq 0 ]] && continue

    start=$(date +%s)
    if ! (cd "$crate" && cargo fuzz build "${sanitizer[@]}"); then
        # Its targets count as failed; the other crates still run.
        failed=$((failed + ${#selected[@]}))
        summary+=("fuzz: $crate/fuzz FAILED to build (${selected[*]})")
        echo "${summary[-1]}"
        continue
    fi
    echo "fuzz: built $crate/fuzz (sanitizer: ${sanitizer[1]}) in $(($(date +%s) - start)) s"

    for target in "${selected[@]}"; do
        corpus="$work/corpus/$target"
        mkdir -p "$corpus"
        if [[ -d $crate/fuzz/seeds/$target ]]; then
            cp -R "$crate/fuzz/seeds/$target/." "$corpus/"
        fi
        artifacts="$root/$crate/fuzz/artifacts/$target"
        mkdir -p "$artifacts"
        log="$work/$target.log"
        override="FUZZ_SECONDS_$(tr '[:lower:]' '[:upper:]' <<<"$target")"
        time_s="${!override:-$seconds}"
        status=0
        (cd "$crate" && cargo fuzz run "${sanitizer[@]}" "$target" "$corpus" -- \
            -max_total_time="$time_s" -max_len="$max_len" -rss_limit_mb="$rss_limit_mb" \
            -timeout="$timeout_s" -print_final_stats=1 -artifact_prefix="$artifacts/") \
            >"$log" 2>&1 || status=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
        if [[ $status -eq 0 ]]; then
            passed=$((passed + 1))
            line="fuzz: $crate/$target ok: ${execs:-?} execs in ${time_s} s, ${rate:-?} execs/s"
        else
            failed=$((failed + 1))
            # What went wrong (the panic message or sanitizer report), then how it ended.
            grep -E -A3 "panicked at|ERROR:" "$log" | head -n 30 || true
            tail -n 15 "$log"
            crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
            line="fuzz: $crate/$target FAILED (exit $status) after ${execs:-?} execs; input: ${crash:-none written, see the log above}"
        fi
        echo "$line"
        summary+=("$line")
    done
done

printf '%s\n' "${summary[@]}"
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
