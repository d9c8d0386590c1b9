#!/bin/bash
# The kernel, object for object: builds the arm64 tinyconfig (../shared/bench/kernel-build)
# with plain aarch64-linux-gnu-gcc, keeps every object, builds it again in the same
# directory through rcc and one rccd on 127.0.0.1 (sources shipped by hash, the box
# preprocesses), and compares every object and every .cmd dependency file byte for byte.
# Needs root for kernel-build's first run (it installs flex, bison, bc and linux-source).
#   bash tests/tools/kernel-check.sh [JOBS]      (about 2 x 3 min on 2 cores)
# Prints the objects that differ (the kernel stamps init/version-timestamp.o and
# the generated compile.h with the build's time and number) and the jobs that shipped.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
bench="$here/../shared/bench"
jobs="${1:-2}"
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin="$here/target/release"
cache="${RCC_BENCH_CACHE:-/var/tmp/rcc-bench}"
build="$cache/kernel-check"
ref="$cache/kernel-check-ref"
work="$(mktemp -d /tmp/rcc-kcheck.XXXXXX)"
cleanup() {
    [ -n "${rccd_pid:-}" ] && kill "$rccd_pid" 2>/dev/null && wait "$rccd_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "== plain build"
"$bench/kernel-build" --wrap none -j "$jobs" --build-dir "$build" --quiet | tee "$work/plain.out"
rm -rf "$ref"; mkdir -p "$ref"
(cd "$build" && find . -name '*.o' -o -name '.*.o.cmd' | tar -cf - -T - | tar -C "$ref" -xf -)

"$bin/rccd" --listen 127.0.0.1:0 --port-file "$work/port" --jobs "$jobs" --temp-dir "$work" \
    --log-level warn --no-thermal &
rccd_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
export RCC_HOSTS="127.0.0.1:$(cat "$work/port")/$jobs" RCC_DIR="$work/rcc"
echo "== build through rcc ($RCC_HOSTS)"
"$bench/kernel-build" --wrap "$bin/rcc" -j $((jobs * 2)) --build-dir "$build" --quiet | tee "$work/rcc.out"
"$bin/rcc" --status --format kv | tr ' ' '\n' | grep -E '^(done|failed|sources|files_named|files_received|file_bytes_received)='

n=0 differ=0
while IFS= read -r f; do
    n=$((n + 1))
    case $f in
        # The command line names the wrapper (CC="rcc ..."): compare the dependencies.
        *.cmd) same() { cmp -s <(grep -v '^\(saved\)\?cmd_' "$1") <(grep -v '^\(saved\)\?cmd_' "$2"); } ;;
        *) same() { cmp -s "$1" "$2"; } ;;
    esac
    if ! same "$ref/$f" "$build/$f"; then
        differ=$((differ + 1)); echo "DIFFERS: $f"
    fi
done < <(cd "$ref" && find . -type f | sort)
echo "== $n files compared (objects and .cmd dependency files), $differ differ"
