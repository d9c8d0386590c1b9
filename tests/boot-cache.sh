#!/usr/bin/env bash
# Prints the path of a tarball of a bootable Debian bookworm arm64 root file system laid out
# like a released TV-box image before rcc is put into it, making it once: the cached
# debootstrap root (tests/rootfs-cache.sh) plus Debian's arm64 kernel (linux-image-arm64),
# udev and systemd-networkd (DHCP on the wired interface), an fstab for a FAT `BOOT` and an
# ext4 `ROOTFS` partition (ophub's names), and without the compilers: gcc, g++ and libc6-dev
# and everything only they need are purged, their .deb files left in apt's cache so that
# remaster.sh installs them -- the very versions the debootstrap root has, the master's --
# without a download. tests/boot.sh makes a disk image from it.
#
# Cached in $RCC_ROOTFS_CACHE (default /var/cache/rcc-rootfs) under a name that carries the
# recipe below. The first run downloads the kernel and builds its initramfs under qemu-user
# (about 10 minutes here, most of it the initramfs); progress goes to stderr. Needs root and
# qemu-user-static with its binfmt_misc entry (tests/setup.sh).
# shellcheck disable=SC2016 # ${Package} and the like are dpkg-query's fields
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "FAIL: $*" >&2; exit 1; }
# Change this when the recipe changes: it names the cached tarball.
recipe="kernel=linux-image-arm64,udev,systemd-sysv initramfs=list:virtio,ext4 no-compilers networkd v1"
cache=${RCC_ROOTFS_CACHE:-/var/cache/rcc-rootfs}
base=$(bash tests/rootfs-cache.sh)
tarball="$cache/boot-$(basename "$base" .tar)-$(printf %s "$recipe" | md5sum | cut -c1-8).tar"
if [ -s "$tarball" ]; then echo "$tarball"; exit 0; fi

[ "$(id -u)" -eq 0 ] || fail "needs root (chroot, mount)"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "no qemu-aarch64 binfmt entry: run tests/setup.sh"
work=$(mktemp -d /tmp/rcc-boot-cache.XXXXXX)
root=$work/root
mounts=()
cleanup() {
    set +e
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "boot-cache: $*" >&2; }

log "a bootable arm64 root: kernel, udev, networkd, no compilers (once; cached in $tarball)"
mkdir -p "$root"
tar -C "$root" -xf "$base"
mount -t proc proc "$root/proc"; mounts+=("$root/proc")
mount -t sysfs sysfs "$root/sys"; mounts+=("$root/sys")
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Nothing may start in the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
in_root() {
    LC_ALL=C DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" "$@"
}

# An initramfs with the few modules qemu's virt machine needs to mount the root, instead of
# "most" of them: a small image, built in a fraction of the time under qemu-user.
mkdir -p "$root/etc/initramfs-tools/conf.d"
echo MODULES=list >"$root/etc/initramfs-tools/conf.d/rcc-boot-test.conf"
printf '%s\n' virtio_mmio virtio_pci virtio_blk virtio_net ext4 crc32c_generic \
    >>"$root/etc/initramfs-tools/modules"

log "apt-get install linux-image-arm64 udev systemd-sysv (downloads; the initramfs takes minutes)"
in_root apt-get install -y -q --no-install-recommends linux-image-arm64 udev kmod systemd-sysv \
    >"$work/kernel.log" 2>&1 || { tail -30 "$work/kernel.log" >&2; fail "installing the kernel"; }
ls "$root"/boot/vmlinuz-* "$root"/boot/initrd.img-* >/dev/null || fail "no kernel or initrd in /boot"

log "purging the compilers (their .deb files stay in apt's cache)"
# Everything but the base system becomes "automatically installed", so that apt takes
# whatever only gcc, g++ and libc6-dev needed along with them.
# shellcheck disable=SC2046 # one package name per word
in_root apt-mark auto $(in_root dpkg-query -W -f '${Package}\n') >/dev/null
# shellcheck disable=SC2046 # one package name per word
in_root apt-mark manual $(in_root dpkg-query -W -f '${Package} ${Priority}\n' \
    | awk '$2 == "required" || $2 == "important" { print $1 }') \
    apt systemd systemd-sysv udev kmod passwd adduser linux-image-arm64 initramfs-tools >/dev/null
in_root apt-get purge -y -q --autoremove gcc g++ libc6-dev >"$work/purge.log" 2>&1 \
    || { tail -30 "$work/purge.log" >&2; fail "purging the compilers"; }
for p in gcc g++ libc6-dev gcc-12 cpp binutils; do
    if in_root dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q ' installed'; then
        fail "$p is still installed"
    fi
done
ls "$root"/var/cache/apt/archives/gcc-12_*.deb >/dev/null || fail "gcc-12's .deb left apt's cache"
# The kernel's own packages need not stay in the cache.
rm -f "$root"/var/cache/apt/archives/linux-image-*.deb "$root"/var/cache/apt/archives/firmware-*.deb

log "fstab, hostname, DHCP by systemd-networkd"
cat >"$root/etc/fstab" <<'EOF'
# <file system>  <mount point>  <type>  <options>              <dump> <pass>
LABEL=ROOTFS     /              ext4    defaults,noatime       0      1
LABEL=BOOT       /boot          vfat    defaults,umask=0077    0      2
EOF
echo rcc-box >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\trcc-box\n' >"$root/etc/hosts"
cat >"$root/etc/systemd/network/20-wired.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1 || fail "enabling systemd-networkd"
# A root password a person at the serial console can use (the test never logs in).
echo 'root:rcc' | in_root chpasswd
rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
: >"$root/etc/machine-id"

for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}"; done
mounts=()
mkdir -p "$cache"
tar -C "$root" -cf "$work/root.tar" .
mv "$work/root.tar" "$tarball"
log "done: $(du -sh --apparent-size "$tarball" | cut -f1)"
echo "$tarball"
