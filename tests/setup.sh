#!/usr/bin/env bash
# Installs what the tests need and a fresh Debian/Ubuntu machine lacks (as root; otherwise
# it says what is missing): gcc, g++, make, the aarch64 cross gcc and its C library's
# headers (without them it reads the host's), qemu-user-static,
# cmake, ccache, shellcheck, systemd-analyze, lintian (tests/deb.sh checks the packages with
# it), qemu-system-arm and the disk tools remaster.sh and tests/boot.sh use (fdisk,
# dosfstools, mtools, btrfs-progs), the musl targets, and qemu's binfmt_misc entry
# so aarch64 binaries run like native ones. Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

pkgs=(gcc g++ make binutils python3 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
      cmake ccache shellcheck systemd debootstrap linux-source flex bison bc xz-utils file lintian
      qemu-system-arm ipxe-qemu fdisk dosfstools mtools btrfs-progs e2fsprogs)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages: ${missing[*]} (run as root, or apt-get install them)" >&2
        exit 1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done

# aarch64 binaries (the box's rccd, the aarch64 test suite) run under qemu-user through
# binfmt_misc; the F flag lets it work inside chroots too.
misc=/proc/sys/fs/binfmt_misc
if [ ! -e "$misc/qemu-aarch64" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        [ -e "$misc/register" ] || mount -t binfmt_misc binfmt_misc "$misc"
        cat /usr/lib/binfmt.d/qemu-aarch64.conf > "$misc/register"
    else
        echo "setup: aarch64 binaries need qemu's binfmt_misc entry (run this as root once)" >&2
        exit 1
    fi
fi
echo "setup: ready"
