#!/bin/bash
# The kernel, object for object: builds the arm64 tinyconfig (../shared/bench/kernel-build)
# with plain aarch64-linux-gnu-gcc, keeps every object, builds it again in the same
# directory through rcc and one rccd on 127.0.0.1 (sources shipped by hash, the box
# preprocesses), and compares every object and every .cmd dependency file byte for byte.
# Needs root for kernel-build's first run (it installs flex, bison, bc and linux-source).
#   bash tests/kernel.sh [JOBS]      (about 2 x 3 min on 2 cores)
# Another configuration or part of the tree, e.g. defconfig's modules:
#   KCONFIG=defconfig KSUBSET='drivers/net/ethernet/stmicro/ fs/ext4/' bash tests/kernel.sh
# Prints the files that differ and the jobs that shipped; fails unless every object and
# dependency file is the plain build's, except init/version-timestamp.o (the kernel stamps
# it with the build's time and number), and at least two thirds of the jobs shipped their sources.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bench="$here/../shared/bench"
jobs="${1:-2}"
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin="$here/target/release"
cache="${RCC_BENCH_CACHE:-/var/tmp/rcc-bench}"
config="${KCONFIG:-tinyconfig}" subset="${KSUBSET:-}"
suffix=""; [ "$config" = tinyconfig ] || suffix="-$config"
build="$cache/kernel-check$suffix"
ref="$cache/kernel-check$suffix-ref"
kbuild=("$bench/kernel-build" --config "$config" ${subset:+--subset "$subset"} --build-dir "$build" --quiet)
work="$(mktemp -d /tmp/rcc-kcheck.XXXXXX)"
# rccd started as root gives root up (to rccd or nobody) and must reach its temp dir.
chmod 755 "$work"
cleanup() {
    [ -n "${rccd_pid:-}" ] && kill "$rccd_pid" 2>/dev/null && wait "$rccd_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "== plain build"
"${kbuild[@]}" --wrap none -j "$jobs" | tee "$work/plain.out"
rm -rf "$ref"; mkdir -p "$ref"
(cd "$build" && find . -name '*.o' -o -name '.*.o.cmd' | tar -cf - -T - | tar -C "$ref" -xf -)

"$bin/rccd" --listen 127.0.0.1:0 --port-file "$work/port" --jobs "$jobs" --temp-dir "$work" \
    --log-level warn --no-thermal &
rccd_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port="$(cat "$work/port")"
export RCC_HOSTS="127.0.0.1:$port/$jobs" RCC_DIR="$work/rcc"
echo "== build through rcc ($RCC_HOSTS)"
"${kbuild[@]}" --wrap "$bin/rcc" -j $((jobs * 2)) | tee "$work/rcc.out"
"$bin/rcc" --status --format kv | tr ' ' '\n' \
    | grep -E '^(done|failed|sources|files_named|files_received|file_bytes_received)=' | tee "$work/kv"
done_jobs="$(sed -n 's/^done=//p' "$work/kv")" shipped="$(sed -n 's/^sources=//p' "$work/kv")"

n=0 differ=0
while IFS= read -r f; do
    n=$((n + 1))
    [ "$f" = ./init/version-timestamp.o ] && { echo "stamped by the kernel, not compared: $f"; continue; }
    case $f in
        # The command line names the wrapper (CC="rcc ..."): compare the dependencies.
        *.cmd) same() { cmp -s <(grep -v '^\(saved\)\?cmd_' "$1") <(grep -v '^\(saved\)\?cmd_' "$2"); } ;;
        *) same() { cmp -s "$1" "$2"; } ;;
    esac
    if ! same "$ref/$f" "$build/$f"; then
        differ=$((differ + 1)); echo "DIFFERS: $f"
    fi
done < <(cd "$ref" && find . -type f | sort)
echo "== $n files compared (objects and .cmd dependency files), $differ differ; $shipped of $done_jobs jobs on the box shipped their sources"
[ "$differ" = 0 ] || exit 1
# Most kernel jobs ship (346 of 497 when this was written); the trace-event files (computed
# includes), .S files and Kconfig's `-x c` probes are preprocessed here.
[ "$((shipped * 3))" -ge "$((done_jobs * 2))" ] || { echo "too few jobs shipped their sources" >&2; exit 1; }
