#!/usr/bin/env bash
# Prints the path of a tarball of a Debian bookworm arm64 root filesystem, making it once:
# debootstrap minbase plus what an Armbian image has and the tests use (systemd, the
# compilers, passwd, adduser). tests/rootfs.sh and tests/deb.sh unpack it into throwaway
# roots. Cached in $RCC_ROOTFS_CACHE (default /var/cache/rcc-rootfs) under a name that
# carries the package list, so changing the list makes a new one. The first run downloads
# Debian packages (a few minutes); progress goes to stderr. Needs root, debootstrap and
# qemu-user-static with its binfmt_misc entry (tests/setup.sh).
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
include=systemd,gcc,g++,libc6-dev,passwd,adduser
cache=${RCC_ROOTFS_CACHE:-/var/cache/rcc-rootfs}
tarball="$cache/bookworm-arm64-$(printf %s "$include" | md5sum | cut -c1-8).tar"
if [ ! -s "$tarball" ]; then
    [ "$(id -u)" -eq 0 ] || fail "debootstrap needs root"
    command -v debootstrap >/dev/null \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    mkdir -p "$cache"
    work=$(mktemp -d /tmp/rcc-debootstrap.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    echo "rootfs: debootstrap bookworm arm64 (once; cached in $tarball)" >&2
    debootstrap --arch=arm64 --variant=minbase --include="$include" \
        bookworm "$work/root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
    tar -C "$work/root" -cf "$work/root.tar" .
    mv "$work/root.tar" "$tarball"
fi
echo "$tarball"
