#!/usr/bin/env bash
# Fills armbian/userpatches/overlay/rccd/ with what customize-image.sh and install.sh
# install: static rccd binaries for aarch64 (the boxes) and x86_64, the systemd unit, the
# SysV script and /etc/default/rccd. Run from anywhere on the build machine; needs rustup
# targets aarch64-unknown-linux-musl and x86_64-unknown-linux-musl (no Docker: the
# project's .cargo/config.toml links them with rust-lld).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/armbian/userpatches/overlay/rccd"
cd "$root"
for t in aarch64 x86_64; do
    rustup target list --installed | grep -qx "$t-unknown-linux-musl" \
        || rustup target add "$t-unknown-linux-musl"
    cargo build --release --locked --target "$t-unknown-linux-musl" --bin rccd
    install -m 0755 "target/$t-unknown-linux-musl/release/rccd" "$out/rccd-$t"
done
install -m 0644 initscripts/rccd.service "$out/rccd.service"
install -m 0755 initscripts/rccd.init "$out/rccd.init"
install -m 0644 initscripts/rccd.default "$out/rccd.default"
echo "overlay ready in $out:"
ls -l "$out"
