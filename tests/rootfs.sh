#!/usr/bin/env bash
# The Armbian path, proven in an arm64 root filesystem: a Debian bookworm arm64 rootfs
# (debootstrap, minbase plus systemd and the compilers an Armbian image has;
# tests/rootfs-cache.sh) gets the overlay -- the rccd and rcc packages -- applied by running
# userpatches/customize-image.sh inside it exactly as the Armbian build framework does
# (chroot, overlay mounted read-only at /tmp/overlay, LC_ALL=C, the five arguments). Then:
# both packages are installed, the unit is enabled, config (a conffile) and user are in
# place, nothing was started, machine-id is empty for first boot, the binaries run (under
# qemu-user), rccd started inside the chroot answers `rcc --status` from outside with the
# box's aarch64 compiler, and the SysV script starts, reports and stops it there. The
# packages' whole life (upgrade, remove, purge) is tests/deb.sh. The first run downloads
# Debian packages (a few minutes), later runs take about a minute.
# Needs root, debootstrap, qemu-user-static with its binfmt_misc entry (tests/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (chroot, mount)"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "no qemu-aarch64 binfmt entry: run tests/setup.sh"

tarball=$(bash tests/rootfs-cache.sh)
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
mkdir -p "$root"
tar -C "$root" -xf "$tarball"

bash armbian/build-overlay.sh >/dev/null
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
mkdir -p "$root/tmp/overlay" "$root/proc"
mount --bind "$repo/armbian/userpatches/overlay" "$root/tmp/overlay"; mounts+=("$root/tmp/overlay")
mount -o remount,bind,ro "$root/tmp/overlay"
mount -t proc proc "$root/proc"; mounts+=("$root/proc")
install -m 0755 armbian/userpatches/customize-image.sh "$root/tmp/customize-image.sh"

echo "rootfs: customize-image.sh in the chroot, as Armbian runs it"
LC_ALL=C TMPDIR='' chroot "$root" /usr/bin/env bash -e -o pipefail -c \
    '/tmp/customize-image.sh bookworm meson64 aml-s9xx-box no arm64' >"$work/customize.log" 2>&1 \
    || { cat "$work/customize.log"; fail "customize-image.sh"; }

in_root() { LC_ALL=C chroot "$root" "$@"; }
# shellcheck disable=SC2016 # ${Status} and the like are dpkg-query's fields
for p in rccd rcc; do
    got=$(in_root dpkg-query -W -f '${Status} ${Version} ${Architecture}' "$p") || fail "$p not installed"
    [ "$got" = "install ok installed $version arm64" ] || fail "$p: $got"
done
[ "$(readlink "$root/etc/systemd/system/multi-user.target.wants/rccd.service")" \
    = /lib/systemd/system/rccd.service ] || fail "unit not enabled"
file "$root/usr/sbin/rccd" | grep -q 'ARM aarch64' || fail "rccd is not the aarch64 build"
grep -q '^ALLOW="private"' "$root/etc/default/rccd" || fail "config not installed"
# shellcheck disable=SC2016
in_root dpkg-query -W -f '${Conffiles}' rccd | grep -q '^ /etc/default/rccd ' \
    || fail "/etc/default/rccd is not a conffile"
in_root getent passwd rccd | grep -q ':/nonexistent:/usr/sbin/nologin$' || fail "user rccd missing"
[ ! -s "$root/etc/machine-id" ] || fail "the image carries a machine-id"
[ -x "$root/etc/init.d/rccd" ] || fail "no SysV script"
[ ! -e "$root/run/rccd.pid" ] || fail "the package started rccd in a chroot"
[ "$(in_root rccd --version)" = "rccd $version" ] || fail "rccd --version under qemu"
[ "$(in_root rcc --version)" = "rcc $version" ] || fail "rcc --version under qemu"
# (Not piped to grep -q: rccd dies of the closed pipe.)
check=$(in_root rccd --config /etc/default/rccd --check) || fail "rccd --check in the chroot"
grep -q 'listen: 0.0.0.0:3633' <<<"$check" || fail "rccd --check in the chroot: $check"

rcc=$repo/target/x86_64-unknown-linux-musl/release/rcc
cargo build --release --locked --quiet --target x86_64-unknown-linux-musl --bin rcc
status_of() { RCC_HOSTS="127.0.0.1:$1" RCC_DIR="$work/rcc" "$rcc" --status --format kv; }
# The box answers: `up`, or `mismatch` against this machine's cross compiler, which is
# another Debian revision of the same gcc (12.2.0-14 here, 12.2.0-14+deb12u1 in the root).
wait_up() {
    for _ in $(seq 150); do
        status_of "$1" 2>/dev/null | grep -Eq 'state=(up|mismatch:)' && return 0
        sleep 0.1
    done
    return 1
}

echo "rootfs: rccd in the chroot, under qemu-user"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chroot "$root" /usr/sbin/rccd --config /etc/default/rccd --listen "127.0.0.1:$port" \
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
echo "ok: customize-image.sh installed the rccd and rcc packages in an arm64 rootfs; rccd serves and the SysV script drives it"
