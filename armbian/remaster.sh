#!/usr/bin/env bash
# Puts rcc into a released TV-box image: takes the image file as downloaded (.img, or
# .img.xz/.img.gz, decompressed on the fly) and writes a flashable image whose boxes come up
# serving compile jobs -- without the Armbian build framework and without Docker.
#
#   armbian/remaster.sh IMAGE [-o OUT] [--in-place] [--debs DIR] [--partition N] [--free MIB]
#
# It finds the root file system among the image's partitions whatever the layout (Armbian:
# one ext4 root with /boot inside, or a separate boot partition; ophub's Amlogic images: a
# FAT BOOT partition and an ext4 or btrfs ROOTFS) by looking for /etc/os-release, and
# installs exactly what the Armbian build's customize-image.sh installs: it runs that very
# script in the image's chroot (under qemu-user on an x86 machine) with the rccd and rcc
# .deb packages for the image's architecture (armbian/deb.sh builds them when missing), so
# the image's own apt installs them and gcc, g++ and libc6-dev, and empties /etc/machine-id
# so each box makes its own at first boot. When that does not fit, the image file, its root
# partition and the file system grow (ext2/3/4; btrfs too). An image that already has rccd
# is updated to these packages.
#
#   -o OUT         where the new image goes (default: IMAGE's name with -rcc, next to it);
#                  OUT ending in .xz or .gz is compressed
#   --in-place     change IMAGE itself (a raw .img only); if this fails half-way, the image
#                  may be left half-changed
#   --debs DIR     take rccd_*_ARCH.deb and rcc_*_ARCH.deb from DIR
#   --partition N  the root is partition N (when several partitions hold a root)
#   --free MIB     leave at least MIB free in the root after installing (default 256; rccd's
#                  file cache and job dirs live there until the box grows its root to the
#                  whole card, as Armbian's first boot does)
#
# Needs root (loop devices, mount, chroot). The input is only read, unless --in-place; the
# only devices it touches are the loop devices it makes for the image, and on every exit
# (success, error, Ctrl-C) it unmounts what it mounted, detaches its loop devices, and
# removes what it put into the image for the installation (its qemu binfmt entry, if it
# had to make one, too). Tools it needs, and their Debian packages, are named when missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
me=remaster.sh
say() { echo "$me: $*" >&2; }
die() { say "$*"; exit 1; }

# --- options -----------------------------------------------------------------------------
image="" out="" in_place=no debs="" want_part="" free_mib=256
while [ $# -gt 0 ]; do
    case "$1" in
        -o) out=${2:?-o needs a file name}; shift ;;
        --in-place) in_place=yes ;;
        --debs) debs=${2:?--debs needs a directory}; shift ;;
        --partition) want_part=${2:?--partition needs a number}; shift ;;
        --free) free_mib=${2:?--free needs a size in MiB}; shift ;;
        -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$image" ] || die "one image at a time (got $image and $1)"; image=$1 ;;
    esac
    shift
done
[ -n "$image" ] || die "usage: $me IMAGE [-o OUT] [--in-place] (see --help)"
[ -f "$image" ] || die "$image: no such file"
[[ "$free_mib" =~ ^[0-9]+$ ]] || die "--free takes a number of MiB, not \"$free_mib\""
[[ -z "$want_part" || "$want_part" =~ ^[0-9]+$ ]] || die "--partition takes a number"
[ "$(id -u)" -eq 0 ] || die "run it as root: it needs loop devices, mount and chroot"

# The tools, each with the Debian package that has it.
need_tools() { # TOOL:PACKAGE...
    local missing=() t
    for t in "$@"; do command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("$t"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    local pkgs
    pkgs=$(printf '%s\n' "${missing[@]}" | cut -d: -f2 | sort -u | tr '\n' ' ')
    die "needs $(printf '%s\n' "${missing[@]}" | cut -d: -f1 | tr '\n' ' ')(apt-get install ${pkgs% })"
}
need_tools losetup:mount mount:mount umount:mount blkid:util-linux unshare:util-linux \
    sfdisk:fdisk e2fsck:e2fsprogs resize2fs:e2fsprogs chroot:coreutils truncate:coreutils \
    od:coreutils numfmt:coreutils mountpoint:util-linux

# What the input is, by its first bytes rather than its name.
magic=$(od -An -tx1 -N6 "$image" | tr -d ' \n')
case "$magic" in
    fd377a585a00) kind=xz; need_tools xz:xz-utils ;;
    1f8b*) kind=gz; need_tools gzip:gzip ;;
    *) kind=raw ;;
esac
if [ "$in_place" = yes ]; then
    [ "$kind" = raw ] || die "--in-place needs a raw .img, and $image is $kind-compressed: give -o OUT instead"
    [ -z "$out" ] || die "--in-place and -o exclude each other"
    out=$image
elif [ -z "$out" ]; then
    base=${image%.xz}; base=${base%.gz}; base=${base%.img}
    out="$base-rcc.img"
fi
case "$out" in *.xz) pack=xz; need_tools xz:xz-utils ;; *.gz) pack=gz ;; *) pack=raw ;; esac
if [ "$in_place" = no ] && [ -e "$out" ]; then
    die "$out exists: remove it or name another with -o"
fi
image=$(realpath "$image")
outdir=$(cd "$(dirname "$out")" && pwd) || die "$(dirname "$out"): no such directory"
out="$outdir/$(basename "$out")"

# --- the undo stack: every step that changes something registers how to take it back -----
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rcc-remaster.XXXXXX")
undo=()
defer() { undo+=("$(printf '%q ' "$@")"); }
unwind() { # [DEPTH]: take back what was done, newest first, down to DEPTH entries
    local cmd
    while [ ${#undo[@]} -gt "${1:-0}" ]; do
        cmd=${undo[-1]}
        unset 'undo[-1]'
        eval "$cmd" || say "cleanup: \"$cmd\" failed"
    done
}
work="" done=no
cleanup() {
    local rc=$?
    trap '' INT TERM HUP
    set +e
    unwind 0
    if [ "$done" != yes ] && [ "$in_place" = no ] && [ -n "$work" ]; then rm -f "$work"; fi
    rm -rf "$tmp"
    [ "$rc" -eq 0 ] || [ "$in_place" = no ] || say "$image may be half-changed (--in-place)"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted: cleaning up"; exit 130' INT TERM HUP
# A step that fails without saying why (a bug here) still says where.
set -E
trap 'say "unexpected failure (line $LINENO): $BASH_COMMAND"' ERR

# A loop device for a byte range of a file; its name in $loop. Only devices made here are
# ever detached, and only while they still show this file.
attach() { # FILE OFFSET SIZE [ro]
    local opt=()
    [ "${4:-}" = ro ] && opt=(-r)
    loop=$(losetup -f --show "${opt[@]}" -o "$2" --sizelimit "$3" "$1") \
        || die "cannot make a loop device for $1 (is the loop module loaded? modprobe loop)"
    defer detach "$loop" "$1"
}
detach() { # DEV FILE
    local back
    back=$(losetup -n -O BACK-FILE "$1" 2>/dev/null | sed 's/ *$//') || return 0
    [ "$back" = "$(realpath "$2")" ] || return 0
    losetup -d "$1"
}
# Unmounts, waiting a little for a busy file system; lazily as a last resort.
unmount() { # DIR
    mountpoint -q "$1" || return 0
    local i
    for i in 1 2 3 4 5; do umount "$1" 2>/dev/null && return 0; sleep "0.$i"; done
    say "$1 is still busy: detaching it lazily"
    umount -l "$1"
}
mount_at() { # DIR MOUNT-ARGS...: mounts and registers the unmount
    local dir=$1; shift
    mount "$@" "$dir" || die "cannot mount $* on $dir"
    defer unmount "$dir"
}

# --- the image's partitions ------------------------------------------------------------------
# Reads the partition table of $1 into parallel arrays: number, start and size (sectors of
# 512 bytes), file system type and label; also label (dos/gpt/none) and each's PARTUUID.
read_table() { # FILE
    local dump line n
    p_num=() p_start=() p_size=() p_fs=() p_label=() p_uuid=() p_partuuid=()
    table=none
    if dump=$(sfdisk -d "$1" 2>/dev/null) && grep -q ' : start=' <<<"$dump"; then
        table=$(sed -n 's/^label: //p' <<<"$dump")
        local ss diskid
        ss=$(sed -n 's/^sector-size: //p' <<<"$dump")
        [ -z "$ss" ] || [ "$ss" = 512 ] || die "$1: sectors of $ss bytes are not supported"
        diskid=$(sed -n 's/^label-id: 0x//p' <<<"$dump")
        while read -r line; do
            n=$(sed -E 's/^[^ ]*[^0-9]([0-9]+) : .*/\1/' <<<"$line")
            p_num+=("$n")
            p_start+=("$(sed -E 's/.*start= *([0-9]+).*/\1/' <<<"$line")")
            p_size+=("$(sed -E 's/.*size= *([0-9]+).*/\1/' <<<"$line")")
            if [ "$table" = gpt ]; then
                p_partuuid+=("$(sed -nE 's/.*uuid=([0-9A-Fa-f-]+).*/\1/p' <<<"$line" | tr A-F a-f)")
            else
                p_partuuid+=("$diskid-$(printf %02x "$n")")
            fi
        done < <(grep ' : start=' <<<"$dump")
    else
        # No partition table: the whole file is one file system.
        p_num=(0) p_start=(0) p_size=($(($(stat -c %s "$1") / 512))) p_partuuid=("")
    fi
    local i info
    for i in "${!p_num[@]}"; do
        info=$(blkid -p -o export -O $((p_start[i] * 512)) -S $((p_size[i] * 512)) "$1" 2>/dev/null || true)
        p_fs+=("$(sed -n 's/^TYPE=//p' <<<"$info")")
        p_label+=("$(sed -n 's/^LABEL=//p' <<<"$info")")
        p_uuid+=("$(sed -n 's/^UUID=//p' <<<"$info")")
    done
}
describe() { # INDEX: "2 (ext4 ROOTFS, 1.2 GiB)"
    local i=$1 what=${p_fs[$1]:-no file system}
    [ -n "${p_label[i]}" ] && what="$what ${p_label[i]}"
    echo "${p_num[i]} ($what, $(human $((p_size[i] * 512))))"
}
human() { numfmt --to=iec-i --suffix=B --format=%.1f "$1"; }

# --- which partition is the root ------------------------------------------------------------
# A path inside a mounted image, following a symbolic link the way the image would (an
# absolute link points into the image, not into this machine).
in_image() { # MNT PATH
    local f=$1$2 t
    if [ -L "$f" ]; then
        t=$(readlink "$f")
        case "$t" in /*) f=$1$t ;; *) f=$(dirname "$f")/$t ;; esac
    fi
    echo "$f"
}
# A value from a KEY=value file of the image (os-release, armbian-release): read, never sourced.
field() { # FILE KEY
    [ -f "$1" ] || return 0
    sed -n "s/^$2=//p" "$1" | head -1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}
# Debian's name for the architecture of an ELF file (its e_machine).
elf_arch() { # FILE
    case "$(od -An -tx1 -j18 -N2 "$1" 2>/dev/null | tr -d ' \n')" in
        b700) echo arm64 ;; 3e00) echo amd64 ;; 2800) echo "32-bit arm (armhf)" ;; *) echo unknown ;;
    esac
}
# Mounts partition index $2 of file $1 read-only at $3 (from a read-only loop device: nothing
# is written, not even a journal replay); the btrfs subvolume holding a root, if not the top,
# is in $sub. Returns 1 when it cannot be mounted or holds no /etc/os-release.
look_in() { # FILE INDEX DIR
    local i=$2 opts=ro
    sub=
    case "${p_fs[i]}" in ext2|ext3|ext4) opts=ro,noload ;; btrfs|xfs|f2fs) ;; *) return 1 ;; esac
    attach "$1" $((p_start[i] * 512)) $((p_size[i] * 512)) ro
    mount -t "${p_fs[i]}" -o "$opts" "$loop" "$3" 2>/dev/null || return 1
    defer unmount "$3"
    [ -e "$(in_image "$3" /etc/os-release)" ] && return 0
    if [ "${p_fs[i]}" = btrfs ] && [ -e "$(in_image "$3/@" /etc/os-release)" ]; then sub=@; return 0; fi
    return 1
}
# Finds the root among the partitions: $root_i, its btrfs subvolume $root_sub.
find_root() { # FILE
    local i depth mnt=$tmp/probe found=() subs=() names=()
    mkdir -p "$mnt"
    for i in "${!p_num[@]}"; do
        depth=${#undo[@]}
        if look_in "$1" "$i" "$mnt"; then found+=("$i") subs+=("$sub") names+=("$(describe "$i")"); fi
        unwind "$depth"
    done
    if [ ${#found[@]} -eq 0 ]; then
        local all=() 
        for i in "${!p_num[@]}"; do all+=("$(describe "$i")"); done
        die "no root file system in $image: none of its partitions has /etc/os-release (partitions: ${all[*]:-none})"
    fi
    root_i=
    for i in "${!found[@]}"; do
        if [ -z "$want_part" ] && [ ${#found[@]} -eq 1 ] || [ "${p_num[found[i]]}" = "$want_part" ]; then
            root_i=${found[i]} root_sub=${subs[i]}
        fi
    done
    if [ -z "$root_i" ] && [ -n "$want_part" ]; then
        die "--partition $want_part holds no root; the roots are on partitions ${names[*]}"
    fi
    [ -n "$root_i" ] || die "several partitions hold a root: ${names[*]}; say which with --partition N"
}
# What the root is, read from its files: sets os_*, arch, board, family, boot_spec, old_rccd.
read_root() { # MNT
    local m=$1 osr
    osr=$(in_image "$m" /etc/os-release)
    os_id=$(field "$osr" ID) os_like=$(field "$osr" ID_LIKE) os_name=$(field "$osr" PRETTY_NAME)
    os_codename=$(field "$osr" VERSION_CODENAME)
    [ -n "$os_codename" ] || os_codename=$(field "$osr" UBUNTU_CODENAME)
    arch=unknown
    [ -e "$(in_image "$m" /usr/bin/dpkg)" ] && arch=$(elf_arch "$(in_image "$m" /usr/bin/dpkg)")
    has_apt=no
    [ -e "$(in_image "$m" /usr/bin/apt-get)" ] && [ -e "$(in_image "$m" /bin/bash)" ] && has_apt=yes
    hostname=$( (head -n 1 "$m/etc/hostname" 2>/dev/null || true) | tr -cd 'A-Za-z0-9.-')
    board=$(field "$m/etc/armbian-release" BOARD) family=$(field "$m/etc/armbian-release" LINUXFAMILY)
    boot_spec=$(awk '$1 !~ /^#/ && $2 == "/boot" { print $1; exit }' "$m/etc/fstab" 2>/dev/null || true)
    old_rccd=$(awk '/^Package: /{p=$2} /^Status: /{s=$0} /^Version: /{v=$2}
        /^$/{ if (p=="rccd" && s ~ / installed$/) print v; p=s=v="" }
        END { if (p=="rccd" && s ~ / installed$/) print v }' "$m/var/lib/dpkg/status" 2>/dev/null || true)
}
# Refuses a root rcc cannot go into, saying why.
judge_root() {
    local what
    what="partition $(describe "$root_i")${root_sub:+, subvolume $root_sub}"
    [ "${p_num[root_i]}" = 0 ] && what="the image (one file system, no partition table)"
    say "root file system: $what: ${os_name:-unnamed system}, $arch"
    case " $os_id $os_like " in
        *" debian "*|*" ubuntu "*) ;;
        *) die "refusing: the root is ${os_name:-$os_id}, not Debian or Ubuntu (rccd comes as a .deb for apt)" ;;
    esac
    [ "$arch" = arm64 ] || die "refusing: the root is $arch, not arm64 (rcc's box packages are for arm64: S905/S905X/S912 boxes)"
    [ "$has_apt" = yes ] || die "refusing: the root has no apt-get or no bash to install packages with"
    if [ -n "$old_rccd" ]; then
        say "this image already has rccd $old_rccd: updating it in place to the packages below"
    fi
}

# --- the packages ---------------------------------------------------------------------------------
newest() { # DIR PKG ARCH [VERSION]
    local f
    for f in "$1/$2"_*"_$3.deb"; do
        [ -e "$f" ] || continue
        [ -z "${4:-}" ] || [ "$(basename "$f")" = "$2_$4_$3.deb" ] || continue
        echo "$f"
    done | sort -V | tail -n 1
}
# Sets deb_rccd and deb_rcc: from --debs, else this repository's (building them if missing).
find_debs() {
    local version d
    if [ -n "$debs" ]; then
        deb_rccd=$(newest "$debs" rccd "$arch") deb_rcc=$(newest "$debs" rcc "$arch")
        if [ -z "$deb_rccd" ] || [ -z "$deb_rcc" ]; then
            die "no rccd_*_$arch.deb and rcc_*_$arch.deb in $debs"
        fi
        return 0
    fi
    [ -f "$repo/Cargo.toml" ] || die "not in an rcc checkout: give --debs DIR with rccd_*_$arch.deb and rcc_*_$arch.deb"
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -1)
    for d in "$repo/target/deb" "$here/userpatches/overlay/rccd"; do
        deb_rccd=$(newest "$d" rccd "$arch" "$version") deb_rcc=$(newest "$d" rcc "$arch" "$version")
        [ -n "$deb_rccd" ] && [ -n "$deb_rcc" ] && return 0
    done
    command -v cargo >/dev/null \
        || die "no rcc $version packages for $arch, and no cargo to build them (https://rustup.rs); or give --debs DIR"
    say "no rcc $version packages for $arch yet: building them (armbian/deb.sh --arch $arch)"
    bash "$here/deb.sh" --arch "$arch" >&2 || die "armbian/deb.sh failed (above)"
    deb_rccd=$(newest "$repo/target/deb" rccd "$arch" "$version")
    deb_rcc=$(newest "$repo/target/deb" rcc "$arch" "$version")
    if [ -z "$deb_rccd" ] || [ -z "$deb_rcc" ]; then die "armbian/deb.sh made no $arch packages"; fi
}

# --- the chroot -----------------------------------------------------------------------------------
# Puts stdin at FILE in the image for the installation; the image's own file (or link, or
# nothing) comes back afterwards.
replace() { # FILE MODE
    local f=$1
    if [ -e "$f" ] || [ -L "$f" ]; then
        mv -T "$f" "$f.rcc-remaster-saved"
        defer mv -fT "$f.rcc-remaster-saved" "$f"
    else
        defer rm -f "$f"
    fi
    cat >"$f"
    chmod "$2" "$f"
}
# The image's programs are arm64: on another machine they run under qemu-user through
# binfmt_misc. An entry with the F flag (qemu-user-static's) works in any chroot; without
# it, the interpreter is copied into the image; with none, one is registered for the run.
setup_qemu() {
    [ "$(uname -m)" = aarch64 ] && return 0
    need_tools qemu-aarch64-static:qemu-user-static
    local misc=/proc/sys/fs/binfmt_misc e entry="" interp
    if [ ! -e "$misc/register" ]; then
        mount_at "$misc" -t binfmt_misc binfmt_misc
    fi
    for e in "$misc"/*; do
        if grep -qx 'magic 7f454c460201010000000000000000000200b700' "$e" 2>/dev/null \
            && grep -qx enabled "$e"; then entry=$e; break; fi
    done
    if [ -z "$entry" ]; then
        say "no binfmt_misc entry for arm64 programs: registering one for this run"
        entry=$misc/rcc-remaster-aarch64
        printf ':rcc-remaster-aarch64:M::%s:%s:%s:F\n' \
            '\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00' \
            '\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' \
            "$(command -v qemu-aarch64-static)" >"$misc/register" || die "cannot register qemu in binfmt_misc"
        defer sh -c "echo -1 > $entry"
    elif ! grep -q '^flags: .*F' "$entry"; then
        interp=$(sed -n 's/^interpreter //p' "$entry")
        if [ ! -e "$root$interp" ]; then
            mkdir -p "$root$(dirname "$interp")"
            defer rm -f "$root$interp"
            cp "$(command -v qemu-aarch64-static)" "$root$interp"
        fi
    fi
}
# Everything the installation runs in the image: proc, sys, a private /dev holding only the
# harmless devices (no disk of this machine is visible), name resolution, a policy-rc.d
# that starts no service, qemu, and the overlay as the Armbian build mounts it.
setup_chroot() {
    local r=$root d
    for d in proc sys dev tmp etc usr/sbin; do [ -d "$r/$d" ] || die "the root has no /$d"; done
    mount_at "$r/proc" -t proc proc
    mount_at "$r/sys" -t sysfs -o ro sysfs
    mount_at "$r/dev" -t tmpfs -o mode=755,size=1m,nosuid rcc-remaster-dev
    mknod -m 666 "$r/dev/null" c 1 3 && mknod -m 666 "$r/dev/zero" c 1 5
    mknod -m 666 "$r/dev/full" c 1 7 && mknod -m 666 "$r/dev/random" c 1 8
    mknod -m 666 "$r/dev/urandom" c 1 9 && mknod -m 666 "$r/dev/tty" c 5 0
    mkdir -m 755 "$r/dev/pts" && mkdir -m 1777 "$r/dev/shm"
    ln -s pts/ptmx "$r/dev/ptmx" && ln -s /proc/self/fd "$r/dev/fd"
    ln -s /proc/self/fd/0 "$r/dev/stdin" && ln -s /proc/self/fd/1 "$r/dev/stdout"
    ln -s /proc/self/fd/2 "$r/dev/stderr"
    mount_at "$r/dev/pts" -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts
    replace "$r/etc/resolv.conf" 644 </etc/resolv.conf
    replace "$r/usr/sbin/policy-rc.d" 755 \
        < <(printf '#!/bin/sh\n# remaster.sh: no service starts in the chroot\nexit 101\n')
    setup_qemu
    if [ ! -d "$r/tmp/overlay" ]; then mkdir "$r/tmp/overlay"; defer rmdir "$r/tmp/overlay"; fi
    mount_at "$r/tmp/overlay" --bind "$tmp/overlay"
    mount -o remount,bind,ro "$r/tmp/overlay"
    replace "$r/tmp/customize-image.sh" 755 <"$here/userpatches/customize-image.sh"
    defer stop_chroot_procs
    [ "$(in_chroot dpkg --print-architecture 2>&1)" = "$arch" ] \
        || die "cannot run the image's programs (dpkg --print-architecture): is qemu-user-static's binfmt entry working?"
}
# Ends what is still running in the chroot (a daemon a package script left behind).
stop_chroot_procs() {
    local p pids=()
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids+=("${p#/proc/}")
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    say "stopping what the installation left running in the image: ${pids[*]}"
    kill "${pids[@]}" 2>/dev/null; sleep 1; kill -9 "${pids[@]}" 2>/dev/null
    return 0
}
# Runs a command in the image: a clean environment, the image's host name, its own PID
# namespace (whatever it starts ends with it). This machine's sh is the namespace's PID 1,
# not the image's command: PID 1 ignores signals it has no handler for, and a program
# under qemu-user that dies of one (Ctrl-C) would wait forever for it.
# shellcheck disable=SC2016 # $1 and $@ are the inner sh's
in_chroot() {
    env -i LC_ALL=C LANG=C DEBIAN_FRONTEND=noninteractive HOME=/root TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        unshare --uts --pid --fork --kill-child -- \
        sh -c 'hostname "$1" 2>/dev/null; shift; chroot "$@"' sh "$hostname" "$root" "$@"
}

# --- room for the installation ----------------------------------------------------------------
MiB=$((1024 * 1024))
bytes() { # "60.1 MB" (apt's units: SI) -> bytes
    awk -v s="${1:-0 B}" 'BEGIN { split(s, a, " "); gsub(",", "", a[1]); m = 1
        if (a[2] == "kB") m = 1e3; else if (a[2] == "MB") m = 1e6; else if (a[2] == "GB") m = 1e9
        printf "%d\n", a[1] * m }'
}
# Sets $need: the bytes the installation takes in the root, by apt's own figures (what it
# downloads into its cache and what the packages take unpacked) for install.sh's command.
apt_need() {
    local text get after dir=/tmp/overlay/rccd
    local cmd=(apt-get install --assume-no "$dir/$(basename "$deb_rccd")" "$dir/$(basename "$deb_rcc")"
        gcc g++ libc6-dev)
    text=$(in_chroot "${cmd[@]}" 2>&1 || true)
    if grep -q '^E: ' <<<"$text"; then
        say "the image's package lists lack what rccd needs: apt-get update in the image"
        in_chroot apt-get update -q >"$tmp/update.log" 2>&1 \
            || { tail -n 20 "$tmp/update.log" >&2; die "apt-get update in the image failed (above): is this machine online?"; }
        text=$(in_chroot "${cmd[@]}" 2>&1 || true)
    fi
    if grep '^E: ' <<<"$text" >&2; then die "the image's apt cannot install the packages (above)"; fi
    get=$(sed -nE 's/^Need to get ([0-9.,]+ [kMG]?B).* of archives.*/\1/p' <<<"$text")
    after=$(sed -nE 's/^After this operation, ([0-9.,]+ [kMG]?B) of additional disk space will be used.*/\1/p' <<<"$text")
    need=$(($(bytes "$get") + $(bytes "$after")))
}
# Grows the image file, its root partition (which must be the last) and the root's file
# system by $1 bytes, with everything unmounted.
grow_root() { # BYTES
    local i=$root_i add=$1 fs=${p_fs[root_i]} j depth room
    local short
    short="no space left: the root needs $(human "$add") more"
    case "$fs" in
        ext2|ext3|ext4) ;;
        btrfs) command -v btrfs >/dev/null || die "$short, and growing btrfs needs btrfs (apt-get install btrfs-progs)" ;;
        *) die "$short, and growing a $fs file system is not supported: grow it by hand and run this again" ;;
    esac
    for j in "${!p_num[@]}"; do
        [ "${p_start[j]}" -le "${p_start[i]}" ] \
            || die "$short, and partition $(describe "$j") lies after it: grow the root by hand (e.g. gparted) and run this again"
    done
    [ "$table" != dos ] || [ "${p_num[i]}" -lt 5 ] \
        || die "$short, and it is a logical partition: grow it by hand (e.g. gparted) and run this again"
    room=$(df -B1 --output=avail "$outdir" | tail -n 1)
    [ "$room" -gt $((add + 64 * MiB)) ] || die "no space left on $outdir for the grown image ($(human "$add") more)"
    say "growing the image by $(human "$add"): partition ${p_num[i]} and its $fs file system"
    truncate -s +"$add" "$work"
    # GPT keeps a backup of itself at the end of the disk: move it to the new end.
    if [ "$table" = gpt ]; then
        sfdisk -q --relocate gpt-bak-std "$work" >"$tmp/sfdisk.log" 2>&1 \
            || { cat "$tmp/sfdisk.log" >&2; die "sfdisk could not move the GPT's backup to the new end (above)"; }
    fi
    if [ "$table" != none ]; then
        echo ', +' | sfdisk -q --no-reread --no-tell-kernel -N "${p_num[i]}" "$work" >"$tmp/sfdisk.log" 2>&1 \
            || { cat "$tmp/sfdisk.log" >&2; die "sfdisk could not grow partition ${p_num[i]} (above)"; }
    fi
    read_table "$work"
    depth=${#undo[@]}
    attach "$work" $((p_start[i] * 512)) $((p_size[i] * 512))
    case "$fs" in
        btrfs)
            mkdir -p "$tmp/grow"
            mount_at "$tmp/grow" -t btrfs "$loop"
            btrfs filesystem resize max "$tmp/grow" >"$tmp/resize.log" 2>&1 \
                || { cat "$tmp/resize.log" >&2; die "btrfs could not grow the root (above)"; } ;;
        *)
            # resize2fs wants a file system just checked; 1 is "errors fixed".
            e2fsck -f -p "$loop" >"$tmp/fsck.log" 2>&1 \
                || [ $? -le 1 ] || { cat "$tmp/fsck.log" >&2; die "e2fsck found errors in the root it could not fix (above)"; }
            resize2fs "$loop" >"$tmp/resize.log" 2>&1 \
                || { cat "$tmp/resize.log" >&2; die "resize2fs could not grow the root (above)"; } ;;
    esac
    unwind "$depth"
}

# --- mounting the image read-write ------------------------------------------------------------
mount_root() {
    root=$tmp/root
    mkdir -p "$root"
    attach "$work" $((p_start[root_i] * 512)) $((p_size[root_i] * 512))
    mount_at "$root" -t "${p_fs[root_i]}" -o "rw${root_sub:+,subvol=$root_sub}" "$loop"
    mount_boot
}
# A separate boot partition named in the root's fstab goes to /boot, as on the box, so that
# whatever a package writes there lands where the box reads it.
mount_boot() {
    [ -n "$boot_spec" ] || return 0
    local j key=${boot_spec%%=*} val=${boot_spec#*=}
    val=${val//\"/}
    for j in "${!p_num[@]}"; do
        [ "$j" != "$root_i" ] || continue
        case "$key" in
            LABEL) [ "${p_label[j]}" = "$val" ] || continue ;;
            UUID) [ "${p_uuid[j],,}" = "${val,,}" ] || continue ;;
            PARTUUID) [ "${p_partuuid[j],,}" = "${val,,}" ] || continue ;;
            *) break ;;
        esac
        attach "$work" $((p_start[j] * 512)) $((p_size[j] * 512))
        if [ -d "$root/boot" ] && mount -t "${p_fs[j]}" "$loop" "$root/boot" 2>"$tmp/boot.err"; then
            defer unmount "$root/boot"
            once "boot partition: $(describe "$j"), mounted at /boot"
        else
            once "note: the boot partition $(describe "$j") cannot be mounted at /boot here ($(head -n 1 "$tmp/boot.err" | sed 's/^mount: [^ ]*: //')); nothing is installed there"
        fi
        return 0
    done
    once "note: the image's fstab mounts $boot_spec at /boot, which is not in this image; /boot left as it is"
}
declare -A said=()
once() { # MESSAGE: said once per run
    [ -z "${said[$1]:-}" ] || return 0
    said[$1]=1
    say "$1"
}

# --- installing and checking ------------------------------------------------------------------
install_rcc() {
    say "installing rccd, rcc and the compilers with the image's apt, as customize-image.sh does (minutes under qemu-user)"
    # In the background, waited for: a signal (Ctrl-C) interrupts the wait at once, and the
    # cleanup ends what runs in the image, whatever state it is in.
    { in_chroot /bin/bash /tmp/customize-image.sh "${os_codename:-unknown}" "${family:-unknown}" \
        "${board:-unknown}" no "$arch" 2>&1 | tee "$tmp/install.log" | sed -u 's/^/  | /' >&2; } &
    wait $! || die "customize-image.sh failed in the image (above)"
    # Downloaded packages need not ship in the image.
    in_chroot apt-get clean
}
check_result() {
    local p st
    for p in rccd rcc; do
        # shellcheck disable=SC2016 # dpkg-query's fields
        st=$(in_chroot dpkg-query -W -f '${Status} ${Version}' "$p" 2>/dev/null || true)
        [[ "$st" == "install ok installed "* ]] || die "$p is not installed in the image (dpkg: ${st:-unknown})"
        versions="${versions:+$versions, }$p ${st##* }"
    done
    gcc_line=$(in_chroot gcc --version 2>/dev/null | head -n 1 || true)
    [ -n "$gcc_line" ] || die "gcc is not in the image: its apt installed none of rccd's recommended compilers"
    [ ! -s "$root/etc/machine-id" ] || die "the image still carries a machine-id"
    [ -d "$root/run/systemd/system" ] || [ ! -e "$root/lib/systemd/system/rccd.service" ] \
        || [ -L "$root/etc/systemd/system/multi-user.target.wants/rccd.service" ] \
        || say "note: rccd.service is not enabled in the image"
    free_after=$(df -B1 --output=avail "$root" | tail -n 1)
}

# --- the run ------------------------------------------------------------------------------------
size_before=0
if [ "$in_place" = yes ]; then
    work=$image
elif [ "$pack" = raw ]; then
    work="$out.partial"
else
    work="$outdir/.$(basename "$out").partial.img"
fi
[ "$in_place" = yes ] || [ ! -e "$work" ] || die "$work exists (left by an earlier run?): remove it"
room=$(df -B1 --output=avail "$outdir" | tail -n 1)
case "$kind" in
    raw)
        src=$image size_before=$(stat -c %s "$image")
        if [ "$in_place" = no ] && [ "$room" -lt $(($(du -B1 "$image" | cut -f1) + 64 * MiB)) ]; then
            die "no space left on $outdir for a copy of the image ($(human "$(du -B1 "$image" | cut -f1)"))"
        fi ;;
    xz|gz)
        if [ "$kind" = xz ]; then
            size_before=$(xz --robot -l "$image" | awk '$1 == "totals" { print $5 }')
            [ "$room" -gt $((size_before + 64 * MiB)) ] \
                || die "no space left on $outdir for the decompressed image ($(human "$size_before"))"
        fi
        say "decompressing $image ($kind)"
        : >"$work"
        "${kind/gz/gzip}" -dc "$image" | dd of="$work" bs=1M iflag=fullblock conv=sparse status=none \
            || die "cannot decompress $image (a damaged download?)"
        src=$work size_before=$(stat -c %s "$work") ;;
esac

read_table "$src"
find_root "$src"
depth=${#undo[@]}
look_in "$src" "$root_i" "$tmp/probe"
read_root "$tmp/probe${root_sub:+/$root_sub}"
unwind "$depth"
judge_root

find_debs
say "packages: $(basename "$deb_rccd") and $(basename "$deb_rcc")"
mkdir -p "$tmp/overlay/rccd"
cp "$deb_rccd" "$deb_rcc" "$here/userpatches/overlay/rccd/install.sh" "$tmp/overlay/rccd/"

if [ "$src" != "$work" ]; then
    say "copying the image to $work"
    cp --sparse=always "$image" "$work"
fi

depth=${#undo[@]}
mount_root
setup_chroot
apt_need
avail=$(df -B1 --output=avail "$root" | tail -n 1)
want=$((need + need / 10 + free_mib * MiB))
say "the root has $(human "$avail") free; the installation takes $(human "$need"), and $(human $((free_mib * MiB))) should stay free"
if [ "$avail" -lt "$want" ]; then
    grow=$(( (want - avail + 16 * MiB - 1) / (16 * MiB) * (16 * MiB) ))
    unwind "$depth"
    grow_root "$grow"
    mount_root
    setup_chroot
fi
install_rcc
check_result
unwind 0

size_after=$(stat -c %s "$work")
case "$pack" in
    raw) [ "$work" = "$out" ] || mv "$work" "$out" ;;
    *)
        say "compressing $out"
        if ! "${pack/gz/gzip}" -c "$work" >"$out.partial"; then rm -f "$out.partial"; die "cannot compress $out"; fi
        mv "$out.partial" "$out"
        rm -f "$work" ;;
esac
done=yes
say "wrote $out: $(human "$size_after") (was $(human "$size_before")); $versions, $gcc_line; $(human "$free_after") free in the root"
say "flash it (dd if=$out of=/dev/sdX bs=4M conv=fsync status=progress, or balenaEtcher), boot the box, and from the master: RCC_HOSTS='BOX-ADDRESS' rcc --status"
