#!/usr/bin/env bash
# The Armbian path, proven in an arm64 root filesystem: a Debian bookworm arm64 rootfs
# (debootstrap, minbase plus systemd and the compilers an Armbian image has) gets the overlay
# applied by running userpatches/customize-image.sh inside it exactly as the Armbian build
# framework does (chroot, overlay mounted read-only at /tmp/overlay, LC_ALL=C, the five
# arguments). Then: the unit is enabled, config and user are in place, machine-id is empty
# for first boot, rccd started inside the chroot (under qemu-user) answers `rcc --status`
# from outside with the box's aarch64 compiler, and the SysV script starts, reports and stops
# it there. The rootfs is cached in $RCC_ROOTFS_CACHE (default /var/cache/rcc-rootfs); the
# first run downloads Debian packages (~10 min), later runs take about a minute.
# Needs root, debootstrap, qemu-user-static with its binfmt_misc entry (tests/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (chroot, mount)"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "no qemu-aarch64 binfmt entry: run tests/setup.sh"
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null

cache=${RCC_ROOTFS_CACHE:-/var/cache/rcc-rootfs}
tarball="$cache/bookworm-arm64.tar"
work=$(mktemp -d /tmp/rcc-rootfs.XXXXXX)
root="$work/root"
mounts=()
cleanup() {
    set +e
    if [ -f "$root/run/rccd-test.pid" ]; then kill "$(cat "$root/run/rccd-test.pid")" 2>/dev/null; fi
    [ -x "$root/etc/init.d/rccd" ] && chroot "$root" /etc/init.d/rccd stop >/dev/null 2>&1
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    echo "rootfs: debootstrap bookworm arm64 (once; cached in $tarball)"
    debootstrap --arch=arm64 --variant=minbase --include=systemd,gcc,g++,libc6-dev,passwd \
        bookworm "$work/fresh" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
    tar -C "$work/fresh" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$work/fresh"
fi
mkdir -p "$root"
tar -C "$root" -xf "$tarball"

bash armbian/build-overlay.sh >/dev/null
mkdir -p "$root/tmp/overlay" "$root/proc"
mount --bind "$repo/armbian/userpatches/overlay" "$root/tmp/overlay"; mounts+=("$root/tmp/overlay")
mount -o remount,bind,ro "$root/tmp/overlay"
mount -t proc proc "$root/proc"; mounts+=("$root/proc")
install -m 0755 armbian/userpatches/customize-image.sh "$root/tmp/customize-image.sh"

echo "rootfs: customize-image.sh in the chroot, as Armbian runs it"
LC_ALL=C TMPDIR='' chroot "$root" /usr/bin/env bash -e -o pipefail -c \
    '/tmp/customize-image.sh bookworm meson64 aml-s9xx-box no arm64'

[ -L "$root/etc/systemd/system/multi-user.target.wants/rccd.service" ] || fail "unit not enabled"
[ -x "$root/usr/local/sbin/rccd" ] || fail "no rccd"
file "$root/usr/local/sbin/rccd" | grep -q 'ARM aarch64' || fail "rccd is not the aarch64 build"
grep -q '^ALLOW="private"' "$root/etc/default/rccd" || fail "config not installed"
grep -q '^rccd:' "$root/etc/passwd" || fail "user rccd missing"
[ ! -s "$root/etc/machine-id" ] || fail "the image carries a machine-id"
[ -x "$root/etc/init.d/rccd" ] || fail "no SysV script"

rcc=$repo/target/x86_64-unknown-linux-musl/release/rcc
cargo build --release --locked --quiet --target x86_64-unknown-linux-musl --bin rcc
status_of() { RCC_HOSTS="127.0.0.1:$1" RCC_DIR="$work/rcc" "$rcc" --status --format kv; }
wait_up() {
    for _ in $(seq 150); do status_of "$1" 2>/dev/null | grep -q 'state=up' && return 0; sleep 0.1; done
    return 1
}

echo "rootfs: rccd in the chroot, under qemu-user"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chroot "$root" /usr/local/sbin/rccd --config /etc/default/rccd --listen "127.0.0.1:$port" \
    --pid-file /run/rccd-test.pid 2>"$work/rccd.log" &
wait_up "$port" || fail "rccd in the chroot does not answer: $(cat "$work/rccd.log")"
line=$(status_of "$port")
echo "$line" | grep -q 'compiler=gcc_(Debian_12[^ ]*for_aarch64-linux-gnu' \
    || fail "status does not show the box's aarch64 gcc: $line"
kill "$(cat "$root/run/rccd-test.pid")"
for _ in $(seq 100); do [ -f "$root/run/rccd-test.pid" ] || break; sleep 0.1; done

echo "rootfs: the SysV script in the chroot"
chroot "$root" /etc/init.d/rccd start >/dev/null || fail "init.d start"
wait_up 3633 || fail "rccd from init.d does not answer: $(cat "$root/var/log/rccd.log")"
chroot "$root" /etc/init.d/rccd status | grep -q 'is running' || fail "init.d status"
chroot "$root" /etc/init.d/rccd stop >/dev/null || fail "init.d stop"
code=0; chroot "$root" /etc/init.d/rccd status >/dev/null || code=$?
[ "$code" -eq 3 ] || fail "init.d status after stop gave $code, not 3"
[ -s "$root/etc/machine-id" ] || fail "the SysV script did not give the box a machine-id"
echo "ok: customize-image.sh installed rccd in an arm64 rootfs; it serves and the SysV script drives it"
