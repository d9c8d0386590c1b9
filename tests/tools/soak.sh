#!/bin/bash
# Soak and load against one release rccd on 127.0.0.1 (tests/tools/MEASURED.md): 5,000 sequential
# jobs, then 20,000 from 32 concurrent clients; prints the daemon's open fds, RSS and job
# dirs before and after each. About 10 minutes on 2 cores (every job is a real gcc).
#   bash tests/tools/soak.sh [SEQUENTIAL] [CONCURRENT] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seq_jobs="${1:-5000}" conc_jobs="${2:-20000}" clients="${3:-32}"
cargo build --release --bin rccd --example soak >/dev/null
dir="$(mktemp -d /tmp/rcc-soak.XXXXXX)"
# rccd started as root gives root up (to rccd or nobody) and must reach its temp dir.
chmod 755 "$dir"
mkdir -p "$dir/tmp"
target/release/rccd --listen 127.0.0.1:0 --port-file "$dir/port" --temp-dir "$dir/tmp" \
    --jobs 2 --queue 64 --log-level warn --thermal-root "$dir" --cpufreq-root "$dir" \
    2>"$dir/rccd.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
addr="127.0.0.1:$(cat "$dir/port")"
echo "rccd pid $pid on $addr, --jobs 2 --queue 64"
target/release/examples/soak "$addr" "$pid" "$dir/tmp" "$seq_jobs" 1
target/release/examples/soak "$addr" "$pid" "$dir/tmp" "$conc_jobs" "$clients"
echo "rccd log lines (warn and above): $(wc -l <"$dir/rccd.log")"
