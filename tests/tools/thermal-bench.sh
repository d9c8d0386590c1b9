#!/bin/bash
# The thermal benchmark of tests/tools/MEASURED.md: the arm64 kernel tinyconfig on
# ../shared/bench's 3-box farm with fake heating (`compare --thermal`), alternating in one
# run rcc with thermal admission on, the same rcc with it off (rccd --no-thermal), and
# distcc, for each heat profile given. Needs root, distcc and a static rcc build:
#   cargo build --release --target x86_64-unknown-linux-musl
#   bash tests/tools/thermal-bench.sh [ROUNDS] [HEAT...]     (default: 3 '1.2,0.6,0.6' 0.6)
# Each run takes ~3 min; 3 rounds of 2 profiles ~1 h. Results: $OUT/summary.tsv.
# FARM_FLAGS adds compare flags (e.g. '--cpu 0.4 --master-cpu 0.8' for a farm whose boxes,
# not the master, are the bottleneck); VARIANTS picks from 'on off distcc'.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
bench="$here/../shared/bench"
rounds="${1:-3}"; shift || true
[ $# -gt 0 ] || set -- 1.2,0.6,0.6 0.6
# shellcheck source=tests/tools/farm-lib.sh
. "$here/tests/tools/farm-lib.sh"
OUT="${OUT:-/var/tmp/rcc-bench/thermal-$(date +%Y%m%d-%H%M%S)}"
farm_bin "$OUT/on"
farm_bin "$OUT/off" --no-thermal
printf 'heat\tround\tvariant\twall_s\tmaster_cpu_s\thosts_cpu_s\tmax_temp_c\tthrottled_s\tthrottled_s_per_box\tjobs_per_box\tobj_cksum\n' >"$OUT/summary.tsv"
for heat in "$@"; do
    for r in $(seq 1 "$rounds"); do
        for v in ${VARIANTS:-on off distcc}; do
            run="$OUT/$heat-$r-$v"
            case $v in
                distcc) tool=distcc; bd="$OUT/on" ;;
                *) tool=rcc; bd="$OUT/$v" ;;
            esac
            # shellcheck disable=SC2086 # FARM_FLAGS is a list of flags
            RCC_BIN_DIR="$bd" "$bench/compare" --tools "$tool" --rounds 1 --thermal --heat "$heat" ${FARM_FLAGS:-} \
                --out "$run" >"$run.log" 2>&1 || { echo "run $run failed: see $run.log" >&2; continue; }
            row="$(awk -F'\t' 'NR==2' "$run/results.tsv")"
            logs="$run/run-1-$tool"
            thr="" jobs=""
            for h in h1 h2 h3; do
                # heater.log: t util temp quota cur_state event; cur_state > 0 is throttled
                t="$(awk '!/^#/ && $5 > 0 {n++} END {print n+0}' "$logs/$h/heater.log" 2>/dev/null || echo -)"
                if [ "$tool" = rcc ]; then
                    j="$(grep -c ' Code(' "$logs/$h/rccd.log" 2>/dev/null || true)"
                else
                    j="$(grep -c 'COMPILE_OK' "$logs/$h/distccd.log" 2>/dev/null || true)"
                fi
                thr="$thr${thr:+/}$t"; jobs="$jobs${jobs:+/}${j:-0}"
            done
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$heat" "$r" "$v" \
                "$(cut -f3 <<<"$row")" "$(cut -f4 <<<"$row")" "$(cut -f6 <<<"$row")" \
                "$(cut -f14 <<<"$row")" "$(cut -f15 <<<"$row")" "$thr" "$jobs" \
                "$(cut -f11 <<<"$row")" >>"$OUT/summary.tsv"
            tail -n 1 "$OUT/summary.tsv"
        done
    done
done
echo "summary: $OUT/summary.tsv"
