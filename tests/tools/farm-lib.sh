# shellcheck shell=bash
# Shared by the farm benchmarks (sources-bench.sh, tuning-bench.sh): sourced, not run.

# farm_bin DIR [RCCD_FLAG...]: DIR gets the static rcc, and an rccd that keeps each box's
# file cache in the box's own state dir (the farm's boxes share this machine's /tmp), which
# `farm down` removes: every run starts with empty caches. The flags are added to rccd's.
# Needs a static build.
farm_bin() {
    local here bin dir="$1"
    shift
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    bin="$here/target/x86_64-unknown-linux-musl/release"
    [ -x "$bin/rccd" ] || { echo "build first: cargo build --release --target x86_64-unknown-linux-musl" >&2; exit 2; }
    mkdir -p "$dir"
    cp "$bin/rcc" "$dir/"; cp "$bin/rccd" "$dir/rccd.real"
    # shellcheck disable=SC2016 # the wrapper expands them when it runs
    printf '#!/bin/sh\nmkdir -p "$RCC_DIR/tmp"\nexec "$(dirname "$0")/rccd.real" "$@" --temp-dir "$RCC_DIR/tmp" %s\n' "$*" >"$dir/rccd"
    chmod +x "$dir/rccd"
}

# efficiency MASTER_CPU HOSTS_CPU WALL: the CPU the farm used over what it had (wall time x
# the sum of the quotas: 3 boxes x 0.5 + master 0.5), or "-" without a wall time.
efficiency() {
    awk -v m="$1" -v h="$2" -v w="$3" 'BEGIN { if (w > 0) printf "%.2f", (m + h) / (w * 2.0); else print "-" }'
}
