#!/bin/bash
# Fuzzes what comes from outside: the frame decoder, inflate, the host-list parser, the
# client's argument classifier and the box's argument checker (tests/fuzz/fuzz_targets).
# Each target runs for SECONDS (default 60) from the seeds in tests/fuzz/corpus/TARGET,
# on a scratch copy (new inputs found are not added to the repository); a crash fails the
# run and leaves its input under tests/fuzz/artifacts/TARGET.
#   bash tests/fuzz.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain; installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame_decoder inflate host_list classifier box_args)
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: installing the nightly toolchain (cargo fuzz needs it)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo +nightly install cargo-fuzz --locked >/dev/null 2>&1 || cargo +nightly install cargo-fuzz
fi
scratch="$(mktemp -d /tmp/rcc-fuzz.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
status=0
summary=""
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    cp tests/fuzz/corpus/"$t"/* "$scratch/$t/"
    log="$scratch/$t.log"
    echo "fuzz: $t for ${secs}s"
    if cargo +nightly fuzz run --fuzz-dir tests/fuzz "$t" "$scratch/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        status=1
        tail -n 40 "$log"
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)"
    summary="$summary$(printf '%-14s %-6s %12s executions in %ss\n' "$t" "$result" "${runs:-?}" "$secs")"$'\n'
done
printf '\n%s' "$summary"
exit $status
