#!/bin/bash
# zstd's library (C and one .S), object for object: builds it with plain gcc, then through
# rcc and one rccd on 127.0.0.1, compares every object and prints how the jobs went
# (on the box, shipped, and what rcc kept here). The sources come from the zstd-sys crate
# (fetched by cargo into its registry; nothing of it is kept in this repository).
#   bash tests/tools/zstd-check.sh [BIN_DIR]     (BIN_DIR: rcc and rccd, default target/release)
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
[ -n "${1:-}" ] || cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin="$(cd "${1:-$here/target/release}" && pwd)"
work="$(mktemp -d /tmp/rcc-zstd.XXXXXX)"
# rccd started as root gives root up (to rccd or nobody) and must reach its temp dir.
chmod 755 "$work"
cleanup() {
    [ -n "${rccd_pid:-}" ] && kill "$rccd_pid" 2>/dev/null && wait "$rccd_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/fetch"
cat >"$work/fetch/Cargo.toml" <<'TOML'
[package]
name = "zstd-src-fetch"
version = "0.0.0"
edition = "2021"
[dependencies]
zstd-sys = { version = "=2.0.13", default-features = false }
[lib]
path = "lib.rs"
TOML
touch "$work/fetch/lib.rs"
src="$(cd "$work/fetch" && cargo fetch --quiet && cargo metadata --format-version 1 | python3 -c '
import json, sys, os
m = json.load(sys.stdin)
p = [p for p in m["packages"] if p["name"] == "zstd-sys"][0]
print(os.path.join(os.path.dirname(p["manifest_path"]), "zstd", "lib"))')"
cat >"$work/Makefile" <<'MK'
SRCS := $(wildcard $(SRC)/common/*.c $(SRC)/compress/*.c $(SRC)/decompress/*.c $(SRC)/dictBuilder/*.c) $(SRC)/decompress/huf_decompress_amd64.S
OBJS := $(patsubst $(SRC)/%,obj/%.o,$(SRCS))
all: $(OBJS)
obj/%.o: $(SRC)/%
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -DXXH_NAMESPACE=ZSTD_ -DZSTD_MULTITHREAD -I$(SRC) -I$(SRC)/common -MMD -MP -c $< -o $@
MK
# Both builds in one directory, as the debug info names it.
mkdir -p "$work/b" "$work/tmp"
make -C "$work/b" -f "$work/Makefile" SRC="$src" CC=gcc -j4 --quiet >/dev/null
mv "$work/b/obj" "$work/plain"
"$bin/rccd" --listen 127.0.0.1:0 --port-file "$work/port" --jobs 4 --temp-dir "$work/tmp" \
    --log-level warn --no-thermal &
rccd_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
export RCC_HOSTS="127.0.0.1:$(cat "$work/port")/4" RCC_DIR="$work/rcc-dir"
make -C "$work/b" -f "$work/Makefile" SRC="$src" CC="$bin/rcc gcc" -j8 --quiet >/dev/null
n=0 differ=0
while IFS= read -r o; do
    n=$((n + 1))
    cmp -s "$work/plain/$o" "$work/b/obj/$o" || { differ=$((differ + 1)); echo "DIFFERS: $o"; }
done < <(cd "$work/plain" && find . -name '*.o' -o -name '*.d' | sort)
kv="$("$bin/rcc" --status --format kv)"
done_jobs="$(sed -n 's/.* done=\([0-9]*\).*/\1/p' <<<"$kv")"
shipped="$(sed -n 's/.* sources=\([0-9]*\).*/\1/p' <<<"$kv")"
total="$(find "$work/plain" -name '*.o' | wc -l)"
echo "== zstd: $n files compared, $differ differ; $done_jobs of $total jobs on the box, $shipped shipped their sources"
[ "$differ" = 0 ]
