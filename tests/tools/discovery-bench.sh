#!/bin/bash
# The discovery figures of tests/tools/MEASURED.md: what finding the boxes costs a build.
# A LAN of network namespaces on one bridge (a master and BOXES boxes, each rccd with its
# own host name), then, ROUNDS times: `rcc --discover`, the first compile of a build with
# no host list (it probes), the next one (it reads the build's shared finding), and the
# same compile with the boxes listed in RCC_HOSTS. Needs root; builds nothing itself:
#   cargo build && bash tests/tools/discovery-bench.sh [BOXES] [ROUNDS]   (default: 3 3)
# The flood figure (rccd's CPU under a probe flood while it serves jobs) is printed by
#   cargo test --test tests discovery::a_probe_flood -- --nocapture
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
boxes="${1:-3}"; rounds="${2:-3}"
RCC="${RCC:-$here/target/debug/rcc}"; RCCD="${RCCD:-$here/target/debug/rccd}"
T="rdb$$"; work="$(mktemp -d)"; pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for n in m $(seq 1 "$boxes") sw; do ip netns del "$T$n" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "${T}sw"
ip -n "${T}sw" link add br0 type bridge
ip -n "${T}sw" link set br0 up
k=0
for n in m $(seq 1 "$boxes"); do
    k=$((k + 1))
    ip netns add "$T$n"
    ip -n "$T$n" link set lo up
    ip -n "${T}sw" link add "v$k" type veth peer name eth0 netns "$T$n"
    ip -n "${T}sw" link set "v$k" master br0
    ip -n "${T}sw" link set "v$k" up
    ip -n "$T$n" addr add "198.18.100.$((k + 10))/24" brd + dev eth0
    ip -n "$T$n" link set eth0 up
done
listed=""
for n in $(seq 1 "$boxes"); do
    ip netns exec "$T$n" unshare --uts sh -c "hostname box$n; exec $RCCD --listen 0.0.0.0:3633 \
        --allow 198.18.0.0/16 --temp-dir $work --no-thermal --user root" 2>/dev/null &
    pids+=($!)
    listed="$listed 198.18.100.$((n + 11))"
done
sleep 1
echo 'int a(void) { return 1; }' > "$work/a.c"
cd "$work"
master=(ip netns exec "${T}m" env)
found=$("${master[@]}" -u RCC_HOSTS RCC_DIR="$work/found" "$RCC" --discover | grep -c '^[^#]' || true)
echo "boxes found by rcc --discover: $found of $boxes"
for i in $(seq 1 "$rounds"); do
    /usr/bin/time -f "rcc --discover:            %e s" "${master[@]}" -u RCC_HOSTS RCC_DIR="$work/d$i" "$RCC" --discover >/dev/null
    /usr/bin/time -f "first job, no list (probe): %e s" "${master[@]}" -u RCC_HOSTS RCC_DIR="$work/r$i" "$RCC" gcc -c a.c
    /usr/bin/time -f "next job, no list (shared): %e s" "${master[@]}" -u RCC_HOSTS RCC_DIR="$work/r$i" "$RCC" gcc -c a.c
    /usr/bin/time -f "job, RCC_HOSTS listed:      %e s" "${master[@]}" RCC_HOSTS="$listed" RCC_DIR="$work/l$i" "$RCC" gcc -c a.c
done
