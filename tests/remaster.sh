#!/usr/bin/env bash
# armbian/remaster.sh on the layouts and mistakes tests/boot.sh does not cover:
#  - refusals, each with its reason, leaving the input unchanged and nothing behind: an image
#    with no root (plain and .img.xz/.img.gz, decompressed on the fly), a Fedora root, an armhf
#    root, two roots (--partition chooses), --in-place on a compressed image, a missing tool
#    (named with its Debian package);
#  - an Armbian-style image: GPT, one btrfs root with /boot inside, given as .img.gz: found,
#    grown (partition, file system and the GPT's backup header), rccd and rcc installed by the
#    image's apt under qemu-user;
#  - the result remastered again with --in-place: "already has rccd", updated in place;
#  - Ctrl-C while the image's apt installs the compilers: exit 130, no output, no loop
#    device, mount, temp dir or process left, the input unchanged.
# Needs root, qemu-user-static (binfmt), fdisk, btrfs-progs, dosfstools (tests/setup.sh).
# About three minutes once the root filesystem is cached (tests/rootfs-cache.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (loop devices, mount, chroot)"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "no qemu-aarch64 binfmt entry: run tests/setup.sh"
for t in sfdisk:fdisk mkfs.btrfs:btrfs-progs mkfs.vfat:dosfstools xz:xz-utils; do
    command -v "${t%%:*}" >/dev/null || fail "needs ${t%%:*} (apt-get install ${t#*:}; tests/setup.sh)"
done
work=$(mktemp -d /tmp/rcc-remaster-test.XXXXXX)
mounts=() loops=() bg=()
cleanup() {
    set +e
    for p in "${bg[@]}"; do kill -- "-$p" 2>/dev/null; done
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}"; done
    for p in "${loops[@]}"; do losetup -d "$p"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
remaster=$repo/armbian/remaster.sh

# An image from partition images: TABLE (dos or gpt), then TYPE:FILE per partition, 1 MiB apart.
assemble() { # IMAGE TABLE TYPE:FILE...
    local img=$1 table=$2 start=2048 script sec p
    shift 2
    script="label: $table"$'\n'
    for p in "$@"; do
        sec=$(($(stat -c %s "${p#*:}") / 512))
        script+="start=$start, size=$sec, type=${p%%:*}"$'\n'
        start=$((start + sec + 2048))
    done
    truncate -s $(((start + 2048) * 512)) "$img"
    sfdisk -q "$img" <<<"$script"
    start=2048
    for p in "$@"; do
        dd if="${p#*:}" of="$img" bs=1M seek=$((start * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
        start=$((start + $(stat -c %s "${p#*:}") / 512 + 2048))
    done
}
ext4_of() { # DIR FILE [MIB]
    mkfs.ext4 -q -d "$1" "$2" "${3:-16}M" >/dev/null
}
fake_root() { # DIR ID ELF-MACHINE-HEX: an os-release and a dpkg that is only an ELF header
    mkdir -p "$1/etc" "$1/usr/bin"
    printf 'PRETTY_NAME="%s test root"\nID=%s\n' "$2" "$2" >"$1/etc/os-release"
    # 64-bit little-endian ELF, e_machine at byte 18.
    printf '\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00%b\x00' "\\x$3" >"$1/usr/bin/dpkg"
}
# Nothing of a run left: no loop device on FILEs, no mount, no temp dir, no partial output.
nothing_left() { # FILE...
    local f
    for f in "$@"; do
        [ -z "$(losetup -j "$f")" ] || fail "a loop device is left on $f: $(losetup -j "$f")"
        [ ! -e "$f.partial" ] || fail "$f.partial is left"
    done
    if grep -q rcc-remaster /proc/mounts; then fail "mounts are left: $(grep rcc-remaster /proc/mounts)"; fi
    if ls -d /tmp/rcc-remaster.* >/dev/null 2>&1; then fail "a temp dir is left: $(ls -d /tmp/rcc-remaster.*)"; fi
    for f in /proc/[0-9]*; do
        case "$(readlink "$f/root" 2>/dev/null)" in
            /tmp/rcc-remaster.*) fail "a process is left in the image's chroot: $(tr '\0' ' ' <"$f/cmdline")" ;;
        esac
    done
}
# remaster.sh must refuse, saying WORDS, with its input unchanged and no output.
refuses() { # WORDS IMAGE ARGS...
    local words=$1 img=$2 sum out rc=0
    shift 2
    sum=$(md5sum <"$img")
    out=$("$remaster" "$img" "$@" 2>&1) || rc=$?
    [ "$rc" -ne 0 ] || fail "remaster.sh $img $* did not refuse: $out"
    grep -qF -- "$words" <<<"$out" || fail "remaster.sh $img $*: expected \"$words\", got: $out"
    [ "$(md5sum <"$img")" = "$sum" ] || fail "remaster.sh $img $* changed its input"
    local base=${img%.xz}; base=${base%.gz}; base=${base%.img}
    [ ! -e "$base-rcc.img" ] || fail "remaster.sh $img $* left $base-rcc.img"
    nothing_left "$img" "$base-rcc.img"
    echo "  refused: $(tail -n 1 <<<"$out")"
}

echo "remaster: refusals"
mkdir -p "$work/empty" "$work/fedora" "$work/armhf" "$work/deb1" "$work/deb2"
mkfs.vfat -C -n BOOT "$work/boot.fat" 8192 >/dev/null
ext4_of "$work/empty" "$work/empty.ext4"
assemble "$work/noroot.img" dos c:"$work/boot.fat" L:"$work/empty.ext4"
refuses "none of its partitions has /etc/os-release (partitions: 1 (vfat BOOT" "$work/noroot.img"
xz -T1 -k -0 "$work/noroot.img" && refuses "none of its partitions has /etc/os-release" "$work/noroot.img.xz"
gzip -k -1 "$work/noroot.img" && refuses "none of its partitions has /etc/os-release" "$work/noroot.img.gz"
refuses "--in-place needs a raw .img" "$work/noroot.img.gz" --in-place
fake_root "$work/fedora" fedora b7 && ext4_of "$work/fedora" "$work/fedora.ext4"
assemble "$work/fedora.img" gpt L:"$work/fedora.ext4"
refuses "not Debian or Ubuntu" "$work/fedora.img"
fake_root "$work/armhf" debian 28 && ext4_of "$work/armhf" "$work/armhf.ext4"
assemble "$work/armhf.img" dos L:"$work/armhf.ext4"
refuses "is 32-bit arm (armhf), not arm64" "$work/armhf.img"
fake_root "$work/deb1" debian b7 && ext4_of "$work/deb1" "$work/deb1.ext4"
fake_root "$work/deb2" debian 28 && ext4_of "$work/deb2" "$work/deb2.ext4"
assemble "$work/two.img" dos L:"$work/deb1.ext4" L:"$work/deb2.ext4"
refuses "several partitions hold a root: 1 (ext4, 16.0MiB) 2 (ext4, 16.0MiB); say which with --partition N" "$work/two.img"
refuses "is 32-bit arm (armhf)" "$work/two.img" --partition 2
# A machine without sfdisk: every program but sfdisk on PATH.
mkdir -p "$work/bin"
for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    for f in "$d"/*; do
        [ "$(basename "$f")" = sfdisk ] || [ -e "$work/bin/$(basename "$f")" ] || ln -s "$f" "$work/bin/"
    done
done
PATH=$work/bin refuses "needs sfdisk (apt-get install fdisk)" "$work/noroot.img"

echo "remaster: an Armbian-style image (GPT, one btrfs root with /boot inside) as .img.gz"
bash armbian/deb.sh -o "$work/debs" --arch arm64 >/dev/null
mkdir -p "$work/root"
tar -C "$work/root" -xf "$(bash tests/rootfs-cache.sh)"
mkfs.btrfs -q -L ROOTFS -m single -r "$work/root" --shrink "$work/root.btrfs" >/dev/null 2>&1
rm -rf "$work/root"
assemble "$work/armbian.img" gpt L:"$work/root.btrfs"
rm -f "$work/root.btrfs"
size_in=$(stat -c %s "$work/armbian.img")
gzip -1 "$work/armbian.img"
sum=$(md5sum <"$work/armbian.img.gz")
"$remaster" "$work/armbian.img.gz" --debs "$work/debs" >"$work/r1.log" 2>&1 || { cat "$work/r1.log"; fail "remaster.sh armbian.img.gz"; }
grep -v '^  |' "$work/r1.log" | sed 's/^/  /'
[ "$(md5sum <"$work/armbian.img.gz")" = "$sum" ] || fail "remaster.sh changed armbian.img.gz"
out=$work/armbian-rcc.img
nothing_left "$out"
grep -q '^remaster.sh: root file system: partition 1 (btrfs ROOTFS' "$work/r1.log" || fail "the btrfs root was not named"
grep -q '^remaster.sh: growing the image by' "$work/r1.log" || fail "the image was not grown"
[ "$(stat -c %s "$out")" -gt "$size_in" ] || fail "the image did not grow"
sfdisk --verify "$out" 2>&1 | grep -qi 'no errors detected' || fail "the GPT is not valid: $(sfdisk --verify "$out" 2>&1)"
read -r start size < <(sfdisk -d "$out" | sed -nE 's/.*1 : start= *([0-9]+), size= *([0-9]+).*/\1 \2/p')
dev=$(losetup -f --show -r -o $((start * 512)) --sizelimit $((size * 512)) "$out"); loops+=("$dev")
mkdir -p "$work/mnt" && mount -o ro "$dev" "$work/mnt" && mounts+=("$work/mnt")
fs_bytes=$(btrfs filesystem show --raw "$work/mnt" | sed -nE 's/.*devid +1 size ([0-9]+) .*/\1/p')
# btrfs takes whole 4 KiB blocks of its partition.
[ $((size * 512 - fs_bytes)) -lt 4096 ] || fail "btrfs is $fs_bytes bytes, its partition $((size * 512))"
for p in rccd rcc; do
    grep -A1 "^Package: $p\$" "$work/mnt/var/lib/dpkg/status" | grep -q '^Status: install ok installed' \
        || fail "$p is not installed"
done
[ ! -s "$work/mnt/etc/machine-id" ] || fail "the image carries a machine-id"
umount "$work/mnt" && unset 'mounts[-1]'
losetup -d "$dev" && unset 'loops[-1]'

echo "remaster: the result again, --in-place"
"$remaster" "$out" --in-place --debs "$work/debs" >"$work/r2.log" 2>&1 || { cat "$work/r2.log"; fail "remaster.sh --in-place"; }
grep -q '^remaster.sh: this image already has rccd .*: updating it in place' "$work/r2.log" \
    || fail "remaster.sh did not say the image had rccd: $(cat "$work/r2.log")"
if grep -q '^remaster.sh: growing' "$work/r2.log"; then fail "grew again"; fi
nothing_left "$out"
echo "  $(grep 'already has rccd' "$work/r2.log")"

echo "remaster: Ctrl-C while it installs the compilers (an ext4 root without them, tests/boot-cache.sh)"
mkdir -p "$work/root"
tar -C "$work/root" -xf "$(bash tests/boot-cache.sh)"
ext4_of "$work/root" "$work/root.ext4" 1200
rm -rf "$work/root"
assemble "$work/nocc.img" dos L:"$work/root.ext4"
rm -f "$work/root.ext4"
sum=$(md5sum <"$work/nocc.img")
# Job control: the run gets its own process group, as a command at a terminal does, and
# keeps SIGINT (a script's background jobs otherwise start with it ignored).
set -m
"$remaster" "$work/nocc.img" -o "$work/int.img" --debs "$work/debs" >"$work/r3.log" 2>&1 &
pid=$!
set +m
bg+=("$pid")
for _ in $(seq 600); do grep -q '^remaster.sh: installing' "$work/r3.log" && break; sleep 0.2; done
grep -q '^remaster.sh: installing' "$work/r3.log" || { cat "$work/r3.log"; fail "never got to the installation"; }
sleep 5
kill -INT -- "-$pid"   # what Ctrl-C does: SIGINT to the whole foreground process group
for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { cat "$work/r3.log"; fail "remaster.sh still runs 60 s after Ctrl-C"; }
rc=0; wait "$pid" || rc=$?
bg=()
[ "$rc" -eq 130 ] || { cat "$work/r3.log"; fail "interrupted, remaster.sh exited $rc, not 130"; }
grep -q '^remaster.sh: interrupted: cleaning up' "$work/r3.log" || fail "it did not say it was interrupted"
[ ! -e "$work/int.img" ] || fail "an interrupted run left its output"
[ "$(md5sum <"$work/nocc.img")" = "$sum" ] || fail "an interrupted run changed its input"
nothing_left "$work/int.img"
echo "ok: remaster.sh refuses what it cannot do and leaves nothing; grows a GPT btrfs image from .img.gz; updates in place; cleans up after Ctrl-C"
