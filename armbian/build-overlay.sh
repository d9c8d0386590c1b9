#!/usr/bin/env bash
# Fills armbian/userpatches/overlay/rccd/ with what customize-image.sh and install.sh
# install: the packages rccd_<version>_<arch>.deb and rcc_<version>_<arch>.deb for arm64
# (the boxes) and amd64, made by armbian/deb.sh from the static binaries. Run from
# anywhere on the build machine; needs rustup targets aarch64-unknown-linux-musl and
# x86_64-unknown-linux-musl (no Docker: the project's .cargo/config.toml links them with
# rust-lld), dpkg-deb and qemu-user (the man pages come from the arm64 binaries' --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/armbian/userpatches/overlay/rccd"
# Only this version's packages: install.sh takes the newest, an image wants no leftovers.
rm -f "$out"/*.deb
bash "$root/armbian/deb.sh" -o "$out" --arch all >/dev/null
echo "overlay ready in $out:"
ls -l "$out"
