#!/bin/bash
# The zero-tuning benchmark of tests/tools/MEASURED.md: the arm64 kernel tinyconfig on
# ../shared/bench's 3-box farm (boxes and master at 0.5 CPU, 2 jobs per box, 100 Mbit), a fresh
# farm per run, alternating in each round:
#   rcc-auto        RCC_HOSTS='box1 box2 box3 localhost' (no numbers), make -j$(rcc --jobs)
#   distcc-default  DISTCC_HOSTS='box1 box2 box3' (distcc's own defaults), -j8
#   distcc-J        the distcc sweep: 'boxI/J,lzo' for J in DISTCC_SWEEP (default 2 3), with
#                   -j(3J+2), and 'boxI/2,lzo localhost/1' -j8 (distcc-2l)
#   icecc           (if installed) icecream, -j8
# Needs root, distcc, a static rcc build (cargo build --release --target x86_64-unknown-linux-musl).
#   bash tests/tools/tuning-bench.sh [ROUNDS]      (default 1; ~3 min per run)
# Results: $OUT/summary.tsv (wall, master CPU, box CPU, jobs per box, efficiency).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
bench="$here/../shared/bench"
farm="$bench/farm"
rounds="${1:-1}"
# shellcheck source=tests/tools/farm-lib.sh
. "$here/tests/tools/farm-lib.sh"
OUT="${OUT:-/var/tmp/rcc-bench/tuning-$(date +%Y%m%d-%H%M%S)}"
farm_bin "$OUT/bin"
export RCC_BIN_DIR="$OUT/bin"
trap '"$farm" down >/dev/null 2>&1 || true' EXIT
net=198.18.71
boxes=("$net.11" "$net.12" "$net.13")
variants="rcc-auto distcc-default"
for j in ${DISTCC_SWEEP:-2 3}; do variants="$variants distcc-$j"; done
variants="$variants distcc-2l"
command -v icecc >/dev/null && variants="$variants icecc"
# VARIANTS picks from the above and: rcc-l1 (localhost/1), rcc-nolocal (boxes only), both
# with -j$(rcc --jobs).
variants="${VARIANTS:-$variants}"
printf 'round\tvariant\thosts\tj\twall_s\tmaster_cpu_s\thosts_cpu_s\thost_jobs\tefficiency\tobj_cksum\n' >"$OUT/summary.tsv"
for r in $(seq 1 "$rounds"); do
    for v in $variants; do
        case $v in
            rcc-*) daemon=rcc ;;
            icecc) daemon=icecc ;;
            *) daemon=distcc ;;
        esac
        # Boxes take 2 jobs (rccd advertises it); distccd gets room for the host string to
        # decide, as a distcc user tunes it on the client.
        dj=2; [ "$daemon" = distcc ] && dj=4
        "$farm" up --daemon "$daemon" --jobs "$dj" >/dev/null
        envs=() jobs=8
        case $v in
            rcc-*)
                case $v in
                    rcc-auto) hosts="${boxes[*]} localhost" ;;
                    rcc-l1) hosts="${boxes[*]} localhost/1" ;;
                    *) hosts="${boxes[*]}" ;;
                esac
                jobs="$(RCC_HOSTS="$hosts" RCC_DIR="$OUT/rcc-dir-$r" "$farm" run -- "$OUT/bin/rcc" --jobs)"
                envs=(RCC_HOSTS="$hosts" RCC_DIR="$OUT/rcc-dir-$r") wrap="$OUT/bin/rcc" ;;
            distcc-default) hosts="${boxes[*]}"; envs=(DISTCC_HOSTS="$hosts") wrap=distcc ;;
            distcc-2l) hosts="${boxes[*]/%//2,lzo} localhost/1"; envs=(DISTCC_HOSTS="$hosts") wrap=distcc ;;
            distcc-*)
                n="${v#distcc-}"; hosts="${boxes[*]/%//$n,lzo}"; jobs=$((3 * n + 2))
                envs=(DISTCC_HOSTS="$hosts") wrap=distcc ;;
            icecc) read -r -a envs <<<"$("$farm" hosts icecc)"; hosts=icecc wrap=icecc ;;
        esac
        "$farm" run -- env "${envs[@]}" "$bench/kernel-build" --wrap "$wrap" -j "$jobs" --quiet \
            >"$OUT/$r-$v.out" 2>&1 || true
        "$farm" down --keep-logs "$OUT/$r-$v-logs" >/dev/null 2>&1 || true
        line="$(grep '^RESULT ' "$OUT/$r-$v.out" | tail -n 1 || true)"
        declare -A R=()
        for kv in $line; do case "$kv" in *=*) R["${kv%%=*}"]="${kv#*=}" ;; esac; done
        w="${R[wall_s]:-0}" m="${R[master_cpu_s]:-0}" h="${R[hosts_cpu_s]:-0}"
        eff="$(efficiency "$m" "$h" "$w")"
        hj="${R[host_jobs]:--}"
        if [ "$daemon" = rcc ]; then
            hj=""
            for i in 1 2 3; do
                c="$(grep -c ' Code(' "$OUT/$r-$v-logs/h$i/rccd.log" 2>/dev/null || true)"
                hj="$hj${hj:+/}${c:-0}"
            done
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$hosts" "$jobs" "$w" "$m" "$h" "$hj" "$eff" \
            "${R[obj_cksum]:--}" >>"$OUT/summary.tsv"
        unset R
        tail -n 1 "$OUT/summary.tsv"
    done
done
trap - EXIT
echo "summary: $OUT/summary.tsv"
