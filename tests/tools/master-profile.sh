#!/bin/bash
# Where the master's CPU goes: builds the arm64 tinyconfig through rcc and one rccd on
# 127.0.0.1, the build (make and everything it runs) under `perf record`, which follows the
# build's processes and not rccd's, and prints the master's CPU by command and, for rcc
# itself, by function. Needs root, perf, and kernel-build's tree (run it once first).
#   bash tests/tools/master-profile.sh [JOBS] [-- ENV=VALUE...]   (about 3 min on 2 cores)
# e.g. `bash tests/tools/master-profile.sh 2 -- RCC_SHIP=0` for local preprocessing.
# KEEP=1 keeps the work dir (perf.data, build.log).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
jobs="${1:-2}"; shift || true
[ "${1:-}" = -- ] && shift
command -v perf >/dev/null || { echo "needs perf: apt-get install -y linux-perf" >&2; exit 2; }
cache="${RCC_BENCH_CACHE:-/var/tmp/rcc-bench}"
src="$cache/linux-source-6.1" build="$cache/build-arm64-tinyconfig"
[ -f "$build/.config" ] || { echo "run ../shared/bench/kernel-build once first" >&2; exit 2; }
# Symbols for rcc's own functions: the static release build the boxes and farm use, not stripped.
CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --quiet --manifest-path "$here/Cargo.toml" \
    --target x86_64-unknown-linux-musl --target-dir "$here/target/profile"
bin="$here/target/profile/x86_64-unknown-linux-musl/release"
work="$(mktemp -d /tmp/rcc-profile.XXXXXX)"
# rccd started as root gives root up (to rccd or nobody) and must reach its temp dir.
chmod 755 "$work"
cleanup() {
    [ -n "${rccd_pid:-}" ] && kill "$rccd_pid" 2>/dev/null && wait "$rccd_pid" 2>/dev/null
    if [ -n "${KEEP:-}" ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$bin/rccd" --listen 127.0.0.1:0 --port-file "$work/port" --jobs "$jobs" --temp-dir "$work" \
    --log-level warn --no-thermal &
rccd_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
mk=(make -C "$src" O="$build" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
export RCC_HOSTS="127.0.0.1:$(cat "$work/port")/$jobs" RCC_DIR="$work/rcc"
cc="$bin/rcc aarch64-linux-gnu-gcc"
"${mk[@]}" clean >/dev/null
"${mk[@]}" CC="$cc" syncconfig >/dev/null
env "$@" perf record -q -F 997 -e task-clock -o "$work/perf.data" -- \
    "${mk[@]}" CC="$cc" -j $((jobs * 2)) >"$work/build.log" 2>&1 || { tail "$work/build.log"; exit 1; }
# Samples are 1/997 s of CPU each.
report() { perf report -i "$work/perf.data" --stdio -q "$@" 2>/dev/null; }
echo "by command (CPU seconds, share):"
report -n --sort comm | awk '{ n += $2; c[$3] = $2 } END {
    for (k in c) printf "%9.2f  %5.1f%%  %s\n", c[k] / 997, 100 * c[k] / n, k
    printf "%9.2f  100.0%%  the master, in all\n", n / 997 }' | sort -rn | head -n 25
echo; echo "processes seen, by command:"
perf script -i "$work/perf.data" -F comm,pid 2>/dev/null | sort -u | awk '{ print $1 }' | sort | uniq -c \
    | sort -rn | head -n 8
echo; echo "rcc by function:"
report --comm rcc --sort sym | head -n 30
