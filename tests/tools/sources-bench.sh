#!/bin/bash
# The shipping-sources benchmark of tests/tools/MEASURED.md: the arm64 kernel tinyconfig on
# ../shared/bench's 3-box farm (boxes and master at 0.5 CPU, 100 Mbit), alternating in one
# run rcc shipping sources (the default), the same rcc preprocessing on the master
# (RCC_SHIP=0), and distcc; then one farm building twice through rcc, for the bytes on the
# wire of a first and a repeated build. Needs root, distcc and a static rcc build:
#   cargo build --release --target x86_64-unknown-linux-musl
#   bash tests/tools/sources-bench.sh [ROUNDS]      (default 2; ~5 min per run)
# Results: $OUT/summary.tsv and $OUT/repeat.tsv. Farm efficiency is the CPU the farm used
# (master and boxes) over what it had (wall time x the sum of the quotas).
# VARIANTS picks from 'ship pre distcc' (default all three); 'ship-dN' / 'pre-dN' send with
# RCC_DEFLATE_LEVEL=N. REPEAT=0 skips the first-and-repeated build.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
bench="$here/../shared/bench"
rounds="${1:-2}"
# shellcheck source=tests/tools/farm-lib.sh
. "$here/tests/tools/farm-lib.sh"
OUT="${OUT:-/var/tmp/rcc-bench/sources-$(date +%Y%m%d-%H%M%S)}"
farm_bin "$OUT/bin"
printf 'round\tvariant\twall_s\tmaster_cpu_s\thosts_cpu_s\tefficiency\tjobs_per_box\tshipped\tbox_bytes_in\tobj_cksum\n' >"$OUT/summary.tsv"
for r in $(seq 1 "$rounds"); do
    for v in ${VARIANTS:-ship pre distcc}; do
        run="$OUT/$r-$v"
        tool=rcc; [ "$v" = distcc ] && tool=distcc
        ship=1; [ "${v%%-*}" = pre ] && ship=0
        level=1; case $v in *-d[0-9]) level="${v##*-d}" ;; esac
        RCC_SHIP=$ship RCC_DEFLATE_LEVEL=$level RCC_BIN_DIR="$OUT/bin" "$bench/compare" --tools "$tool" --rounds 1 \
            --out "$run" >"$run.log" 2>&1 || { echo "run $run failed: see $run.log" >&2; continue; }
        row="$(awk -F'\t' 'NR==2' "$run/results.tsv")"
        wall="$(cut -f3 <<<"$row")" mcpu="$(cut -f4 <<<"$row")" hcpu="$(cut -f6 <<<"$row")"
        jobs="$(cut -f8 <<<"$row")" shipped=- bytes=-
        if [ "$tool" = rcc ]; then
            # rccd's last line: "... N shipped their sources ...; X bytes in, Y out"
            jobs="" shipped=0 bytes=0
            for h in h1 h2 h3; do
                line="$(grep 'stopping:' "$run/run-1-rcc/$h/rccd.log" | tail -n 1)"
                j="$(sed -n 's/.*stopping: \([0-9]*\) jobs done.*/\1/p' <<<"$line")"
                s="$(sed -n 's/.*; \([0-9]*\) shipped their sources.*/\1/p' <<<"$line")"
                b="$(sed -n 's/.*; \([0-9]*\) bytes in, .*/\1/p' <<<"$line")"
                jobs="$jobs${jobs:+/}${j:-?}"; shipped=$((shipped + ${s:-0})); bytes=$((bytes + ${b:-0}))
            done
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$wall" "$mcpu" "$hcpu" \
            "$(efficiency "$mcpu" "$hcpu" "$wall")" "$jobs" "$shipped" "$bytes" "$(cut -f11 <<<"$row")" >>"$OUT/summary.tsv"
        tail -n 1 "$OUT/summary.tsv"
    done
done

[ "${REPEAT:-1}" = 0 ] && { echo "summary: $OUT/summary.tsv"; exit 0; }
# A first and a repeated build on one farm: what the master sends (its link's TX bytes).
printf 'build\twall_s\tmaster_tx_bytes\tfiles_received\tfile_bytes_received\n' >"$OUT/repeat.tsv"
farm="$bench/farm"
trap '"$farm" down >/dev/null 2>&1 || true' EXIT
RCC_BIN_DIR="$OUT/bin" "$farm" up --daemon rcc >/dev/null
hosts="$("$farm" hosts rcc)"
tx() { "$farm" run -- ip -s link show eth0 | awk '/TX:/ { getline; print $1; exit }'; }
counter() {
    RCC_HOSTS="$hosts" "$farm" run -- "$OUT/bin/rcc" --status --format kv \
        | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { s += $2 } END { print s + 0 }'
}
for b in first repeat; do
    t0="$(tx)" f0="$(counter files_received)" y0="$(counter file_bytes_received)"
    RCC_HOSTS="$hosts" "$farm" run -- "$bench/kernel-build" --wrap "$OUT/bin/rcc" -j 8 --quiet >"$OUT/repeat-$b.out" 2>&1
    w="$(sed -n 's/.* wall_s=\([0-9.]*\).*/\1/p' "$OUT/repeat-$b.out" | tail -n 1)"
    printf '%s\t%s\t%s\t%s\t%s\n' "$b" "${w:--}" $(( $(tx) - t0 )) $(( $(counter files_received) - f0 )) \
        $(( $(counter file_bytes_received) - y0 )) >>"$OUT/repeat.tsv"
    tail -n 1 "$OUT/repeat.tsv"
done
"$farm" down --keep-logs "$OUT/repeat-logs" >/dev/null
trap - EXIT
echo "summary: $OUT/summary.tsv, $OUT/repeat.tsv"
