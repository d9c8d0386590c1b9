#!/usr/bin/env bash
# The main job, end to end on this machine: build rcc and rccd, start rccd on 127.0.0.1,
# build Lua (a real multi-file C project) with `make -j8 CC="rcc gcc"` through it, show
# `rcc --status`, and check every object equals a plain gcc build's.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release
lua=$(cargo metadata --format-version 1 | python3 -c '
import json, sys, os
m = json.load(sys.stdin)
p = [p for p in m["packages"] if p["name"] == "lua-src"][0]
print(os.path.join(os.path.dirname(p["manifest_path"]), "lua-5.4.7"))')
work=$(mktemp -d /tmp/rcc-demo.XXXXXX)
# rccd started as root gives root up (to rccd or nobody) and must reach its temp dir.
chmod 755 "$work"
cleanup() {
  [ -n "${rccd_pid:-}" ] && kill "$rccd_pid" 2>/dev/null && wait "$rccd_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/tmp" "$work/rcc" "$work/plain"
"$bin/rccd" --listen 127.0.0.1:0 --port-file "$work/port" --jobs 4 \
  --temp-dir "$work/tmp" --log-level warn &
rccd_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
export RCC_HOSTS="127.0.0.1:$port/4,lzo" RCC_DIR="$work/rcc-dir" PATH="$bin:$PATH"

echo "== rccd listening on 127.0.0.1:$port; building Lua with make -j8 CC=\"rcc gcc\""
make -C "$work/rcc" -f "$PWD/tests/fixtures/lua.mk" SRC="$lua" CC="rcc gcc" -j8 --no-print-directory
echo "== rcc --status"
rcc --status
echo "== the same build with plain gcc, compared object by object"
make -C "$work/plain" -f "$PWD/tests/fixtures/lua.mk" SRC="$lua" CC=gcc -j8 --no-print-directory >/dev/null
n=0
for o in "$work/plain"/obj/*.o; do
  cmp -s "$o" "$work/rcc/obj/$(basename "$o")" || { echo "DIFFERS: $(basename "$o")"; exit 1; }
  n=$((n + 1))
done
done_jobs=$(rcc --status --format kv | sed -n 's/.* done=\([0-9]*\).*/\1/p')
echo "== $n objects identical to plain gcc's; $done_jobs compiled by rccd"
