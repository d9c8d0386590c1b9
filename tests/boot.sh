#!/usr/bin/env bash
# "Flash and go", proven on an emulated box: a disk image laid out like a released TV-box
# image (an MBR, a FAT `BOOT` partition with the kernel and initrd, an ext4 `ROOTFS` with
# Debian bookworm arm64, systemd, udev, networkd and no compilers; tests/boot-cache.sh) goes
# through armbian/remaster.sh, and the result boots under qemu-system-aarch64 (-M virt,
# cortex-a53, TCG) with the kernel and initrd read from its boot partition and user
# networking forwarding a port of 127.0.0.1 to rccd's 3633. Then:
#  - remaster.sh found the root, grew the image (the compilers did not fit), left the
#    input unchanged and its own loop devices and mounts gone;
#  - rccd was started by systemd at boot, as the user rccd, with the unit's hardening (a
#    socket-activated report unit the test adds to the image answers on a forwarded port:
#    systemctl show, /proc/PID/status, systemd-analyze security -- no ssh needed);
#  - rcc --status reaches it, with the machine-id the box made at first boot and its gcc;
#  - a second VM booted from the same image made another machine-id, shares qemu's
#    default MAC, and rcc --status names the duplicate;
#  - an arm64 master (the cached debootstrap root in a chroot, under qemu-user, running the
#    static arm64 rcc and the same gcc as the image) builds Lua through the VM: every job ran
#    there (its done counter), every object equals the master's own gcc's;
#  - the same build from this x86 machine with aarch64-linux-gnu-gcc is refused by the
#    identity check (one message) and compiled here, objects equal to the cross gcc's.
# The VMs are shut down from a forwarded port (a socket unit running systemctl poweroff).
# rccd's packaged /etc/default/rccd (ALLOW="private") already admits qemu's user-net
# gateway 10.0.2.2; a real LAN is admitted the same way (see armbian/README.md).
#
# The Lua build is all of its 32 files (RCC_BOOT_LUA=libs: its 12 standard-library files, two
# minutes less: a TCG box compiles an -O2 file in about 10 s per vCPU).
# Needs root, qemu-system-arm, qemu-user-static (binfmt), fdisk, dosfstools, mtools
# (tests/setup.sh). Timings: see armbian/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (loop devices, mount, chroot)"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "no qemu-aarch64 binfmt entry: run tests/setup.sh"
for t in qemu-system-aarch64:qemu-system-arm sfdisk:fdisk mkfs.vfat:dosfstools mcopy:mtools \
    mkfs.ext4:e2fsprogs aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu make:make; do
    command -v "${t%%:*}" >/dev/null || fail "needs ${t%%:*} (apt-get install ${t#*:}; tests/setup.sh)"
done
t0=$(date +%s)
phase() { echo "boot: [$(($(date +%s) - t0)) s] $*"; }

work=$(mktemp -d /tmp/rcc-boot.XXXXXX)
chmod 755 "$work"
vms=() mounts=() loops=()
cleanup() {
    set +e
    local p
    for p in "${vms[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${vms[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}"; done
    for p in "${loops[@]}"; do losetup -d "$p"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
indent() { sed "s/^/  /"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- a released image: MBR, FAT BOOT (kernel, initrd, extlinux.conf), ext4 ROOTFS ------------
# The root gets about 10 % free, as released images have before their first boot grows
# them: the compilers do not fit, and remaster.sh must grow the image.
make_image() { # ROOT-TARBALL IMAGE
    local r=$work/mkimg/root b=$work/mkimg/boot kver used root_mib boot_sec=$((128 * 2048)) root_sec
    mkdir -p "$r" "$b/extlinux"
    tar -C "$r" -xf "$1"
    mv "$r"/boot/* "$b/"
    kver=$(basename "$b"/vmlinuz-* | sed 's/^vmlinuz-//')
    # What u-boot's distro boot reads on a real box (the test boots with -kernel/-initrd).
    printf 'LABEL rcc\n  LINUX /vmlinuz-%s\n  INITRD /initrd.img-%s\n  APPEND root=LABEL=ROOTFS rw console=ttyAMA0\n' \
        "$kver" "$kver" >"$b/extlinux/extlinux.conf"
    mkfs.vfat -n BOOT -C "$work/mkimg/boot.fat" $((boot_sec / 2)) >/dev/null
    mcopy -s -i "$work/mkimg/boot.fat" "$b"/* ::/
    used=$(du -sm "$r" | cut -f1)
    root_mib=$((used + used / 10 + 16))
    mkfs.ext4 -q -L ROOTFS -d "$r" "$work/mkimg/root.ext4" "${root_mib}M" >/dev/null
    root_sec=$((root_mib * 2048))
    truncate -s $(((2048 + boot_sec + root_sec) * 512)) "$2"
    printf 'label: dos\nstart=2048, size=%d, type=c, bootable\nstart=%d, size=%d, type=83\n' \
        "$boot_sec" $((2048 + boot_sec)) "$root_sec" | sfdisk -q "$2"
    dd if="$work/mkimg/boot.fat" of="$2" bs=1M seek=1048576 oflag=seek_bytes conv=notrunc,sparse status=none
    dd if="$work/mkimg/root.ext4" of="$2" bs=1M seek=$(((2048 + boot_sec) * 512)) oflag=seek_bytes \
        conv=notrunc,sparse status=none
    rm -rf "$work/mkimg"
}

# A partition's offset and size in bytes: "OFFSET SIZE".
part() { # IMAGE N
    sfdisk -d "$1" | sed -nE "s/^[^ ]*[^0-9]$2 : start= *([0-9]+), size= *([0-9]+).*/\1 \2/p" \
        | awk '{ print $1 * 512, $2 * 512 }'
}
# Mounts partition N of IMAGE at DIR through a loop device of that byte range.
mount_part() { # IMAGE N DIR
    local off size dev
    read -r off size < <(part "$1" "$2")
    dev=$(losetup -f --show -o "$off" --sizelimit "$size" "$1")
    loops+=("$dev")
    mkdir -p "$3"
    mount "$dev" "$3"
    mounts+=("$3")
}
unmount_last() { # unmounts the last mount_part and detaches its loop device
    umount "${mounts[-1]}"; unset 'mounts[-1]'
    losetup -d "${loops[-1]}"; unset 'loops[-1]'
}

# --- what the test adds to the remastered image: two socket units, no ssh ---------------------
# Port 7000 answers with what systemd says about rccd; a connection to 7001 powers off.
instrument() { # ROOT-DIR
    local r=$1
    cat >"$r/usr/local/sbin/rcc-test-report" <<'EOS'
#!/bin/sh
# rcc's boot test (tests/boot.sh): what systemd says about rccd, read from a forwarded port.
systemctl show rccd.service -p ActiveState -p SubState -p UnitFileState -p User -p Group \
    -p MainPID -p NRestarts -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp \
    -p PrivateDevices -p CapabilityBoundingSet -p RestrictAddressFamilies
pid=$(systemctl show rccd.service -p MainPID --value)
echo "process_user=$(stat -c %U "/proc/$pid")"
awk '/^(Uid|NoNewPrivs|CapEff|CapBnd):/ { sub(":", "", $1); print "proc_" $1 "=" $2 }' "/proc/$pid/status"
echo "machine_id=$(cat /etc/machine-id)"
echo "boot_time=$(systemd-analyze time 2>&1 | head -n 1)"
echo "security=$(systemd-analyze security rccd.service --no-pager 2>&1 | tail -n 1)"
journalctl -b -u rccd.service --no-pager -o short-monotonic | head -n 6 | sed 's/^/journal: /'
EOS
    chmod 755 "$r/usr/local/sbin/rcc-test-report"
    local name port cmd
    for name in report poweroff; do
        case "$name" in
            report) port=7000 cmd=/usr/local/sbin/rcc-test-report ;;
            poweroff) port=7001 cmd='/bin/systemctl --no-block poweroff' ;;
        esac
        printf '[Unit]\nDescription=rcc boot test: %s\n[Socket]\nListenStream=%s\nAccept=yes\n[Install]\nWantedBy=sockets.target\n' \
            "$name" "$port" >"$r/etc/systemd/system/rcc-test-$name.socket"
        printf '[Unit]\nDescription=rcc boot test: %s\n[Service]\nExecStart=%s\nStandardInput=socket\nStandardOutput=socket\nStandardError=socket\n' \
            "$name" "$cmd" >"$r/etc/systemd/system/rcc-test-$name@.service"
        mkdir -p "$r/etc/systemd/system/sockets.target.wants"
        ln -sf "../rcc-test-$name.socket" "$r/etc/systemd/system/sockets.target.wants/"
    done
}

# --- the VMs ----------------------------------------------------------------------------------------
declare -A vm_pid vm_rccd vm_report vm_off vm_start
boot_vm() { # NAME CPUS: boots the remastered image (copy-on-write: every VM sees it unbooted)
    local n=$1
    vm_rccd[$n]=$(free_port) vm_report[$n]=$(free_port) vm_off[$n]=$(free_port)
    vm_start[$n]=$(date +%s.%N)
    qemu-system-aarch64 -M virt -cpu cortex-a53 -smp "$2" -m 1024 -display none -monitor none \
        -no-reboot -serial "file:$work/$n.serial" -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
        -append "root=LABEL=ROOTFS rw console=ttyAMA0" \
        -drive "if=none,file=$work/box.img,format=raw,id=hd,snapshot=on" -device virtio-blk-device,drive=hd \
        -netdev "user,id=net,hostfwd=tcp:127.0.0.1:${vm_rccd[$n]}-:3633,hostfwd=tcp:127.0.0.1:${vm_report[$n]}-:7000,hostfwd=tcp:127.0.0.1:${vm_off[$n]}-:7001" \
        -device virtio-net-device,netdev=net >"$work/$n.qemu" 2>&1 &
    vm_pid[$n]=$!
    vms+=("$!")
}
rcc=$repo/target/x86_64-unknown-linux-musl/release/rcc
status_kv() { # HOSTS: rcc --status --format kv from this machine
    RCC_HOSTS=$1 RCC_DIR=$work/rcc-x86 RCC_CONNECT_TIMEOUT=5 "$rcc" --status --format kv 2>/dev/null || true
}
wait_rccd() { # NAME: until rccd in the VM answers; prints the seconds the boot took
    local n=$1 kv
    for _ in $(seq 300); do
        kill -0 "${vm_pid[$n]}" 2>/dev/null || { tail -n 30 "$work/$n.serial"; fail "VM $n ended"; }
        kv=$(status_kv "127.0.0.1:${vm_rccd[$n]}")
        case "$kv" in *state=down* | "") sleep 1 ;; *) echo "$(date +%s.%N) ${vm_start[$n]}" | awk '{ printf "%.0f\n", $1 - $2 }'; return 0 ;; esac
    done
    tail -n 30 "$work/$n.serial"
    fail "rccd in VM $n did not answer within 300 s (serial console above)"
}
report() { # NAME: what the report unit says (retried: user-net accepts before the guest listens)
    local out
    for _ in $(seq 30); do
        out=$(timeout 120 bash -c "cat </dev/tcp/127.0.0.1/${vm_report[$1]}" 2>/dev/null || true)
        [ -n "$out" ] && { echo "$out"; return 0; }
        sleep 1
    done
    fail "VM $1: no report on its forwarded port"
}
poweroff_vm() { # NAME: systemctl poweroff in the VM, then wait for qemu to end
    local n=$1
    timeout 10 bash -c ": </dev/tcp/127.0.0.1/${vm_off[$n]}" 2>/dev/null || true
    for _ in $(seq 120); do kill -0 "${vm_pid[$n]}" 2>/dev/null || return 0; sleep 1; done
    fail "VM $n did not power off within 120 s"
}
kv_of() { # KV-LINE KEY
    tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n 1
}

# --- 1. the released image and its remastering --------------------------------------------------
phase "caches: the debootstrap root and the bootable root (built once per machine)"
base=$(bash tests/rootfs-cache.sh)
bootroot=$(bash tests/boot-cache.sh)
phase "binaries and packages"
cargo build --release --locked --quiet --target x86_64-unknown-linux-musl --bin rcc
cargo build --release --locked --quiet --target aarch64-unknown-linux-musl --bin rcc --bin rccd
bash armbian/deb.sh -o "$work/debs" --arch arm64 >/dev/null
phase "a released image: MBR, FAT BOOT, ext4 ROOTFS without compilers"
make_image "$bootroot" "$work/released.img"
size_in=$(stat -c %s "$work/released.img")
sum_in=$(md5sum <"$work/released.img")

phase "remaster.sh released.img -o box.img"
s=$(date +%s)
armbian/remaster.sh "$work/released.img" -o "$work/box.img" --debs "$work/debs" >"$work/remaster.log" 2>&1 \
    || { cat "$work/remaster.log"; fail "remaster.sh"; }
remaster_s=$(($(date +%s) - s))
grep -v '^  |' "$work/remaster.log" | indent
grep -q '^remaster.sh: root file system: partition 2 (ext4 ROOTFS' "$work/remaster.log" \
    || fail "remaster.sh did not name partition 2 (ext4 ROOTFS) as the root"
grep -q '^remaster.sh: growing the image by' "$work/remaster.log" || fail "remaster.sh did not grow the image"
[ "$(md5sum <"$work/released.img")" = "$sum_in" ] || fail "remaster.sh changed its input"
size_out=$(stat -c %s "$work/box.img")
[ "$size_out" -gt "$size_in" ] || fail "box.img is not larger than released.img"
[ -z "$(losetup -j "$work/box.img")$(losetup -j "$work/released.img")" ] || fail "remaster.sh left loop devices: $(losetup -a)"
if grep -q rcc-remaster /proc/mounts; then fail "remaster.sh left mounts: $(grep rcc-remaster /proc/mounts)"; fi
if ls -d /tmp/rcc-remaster.* >/dev/null 2>&1; then fail "remaster.sh left its temp dir: $(ls -d /tmp/rcc-remaster.*)"; fi
[ ! -e "$work/box.img.partial" ] || fail "remaster.sh left box.img.partial"

phase "in the image: the packages, an empty machine-id, rccd enabled; adding the report units"
mount_part "$work/box.img" 2 "$work/mnt"
r=$work/mnt
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
for p in rccd rcc gcc g++ libc6-dev; do
    awk -v p="$p" '/^Package: /{n=$2} /^Status: install ok installed/{ if (n==p) ok=1 } END { exit !ok }' \
        "$r/var/lib/dpkg/status" || fail "$p is not installed in the remastered image"
done
grep -A8 '^Package: rccd$' "$r/var/lib/dpkg/status" | grep -qx "Version: $version" || fail "rccd is not $version"
[ ! -s "$r/etc/machine-id" ] || fail "the remastered image carries a machine-id"
[ -L "$r/etc/systemd/system/multi-user.target.wants/rccd.service" ] || fail "rccd.service is not enabled"
grep -qx 'ALLOW="private"' "$r/etc/default/rccd" || fail "/etc/default/rccd does not allow the private ranges"
for f in usr/sbin/policy-rc.d etc/resolv.conf.rcc-remaster-saved tmp/overlay tmp/customize-image.sh; do
    [ ! -e "$r/$f" ] || fail "remaster.sh left /$f in the image"
done
instrument "$r"
unmount_last
read -r off _ < <(part "$work/box.img" 1)
mcopy -i "$work/box.img@@$off" "::/$(mdir -b -i "$work/box.img@@$off" ::/ | grep -o 'vmlinuz-[^ ]*$' | head -n 1)" "$work/vmlinuz"
mcopy -i "$work/box.img@@$off" "::/$(mdir -b -i "$work/box.img@@$off" ::/ | grep -o 'initrd.img-[^ ]*$' | head -n 1)" "$work/initrd.img"

# --- 2. two boxes flashed from one image --------------------------------------------------------
phase "booting two VMs from box.img (qemu-system-aarch64 -M virt -cpu cortex-a53, TCG)"
boot_vm a 2
boot_vm b 1
boot_a=$(wait_rccd a)
boot_b=$(wait_rccd b)
phase "rccd answers: VM a after $boot_a s, VM b after $boot_b s from qemu's start"
both="127.0.0.1:${vm_rccd[a]} 127.0.0.1:${vm_rccd[b]}"
kv=$(status_kv "$both")
table=$(RCC_HOSTS=$both RCC_DIR=$work/rcc-x86 "$rcc" --status 2>&1 || true)
indent <<<"$table"
line_a=$(grep "^host=127.0.0.1:${vm_rccd[a]} " <<<"$kv") line_b=$(grep "^host=127.0.0.1:${vm_rccd[b]} " <<<"$kv")
id_a=$(kv_of "$line_a" machine_id) id_b=$(kv_of "$line_b" machine_id)
[[ "$id_a" =~ ^[0-9a-f]{32}$ ]] || fail "VM a reports machine-id \"$id_a\""
[[ "$id_b" =~ ^[0-9a-f]{32}$ ]] || fail "VM b reports machine-id \"$id_b\""
[ "$id_a" != "$id_b" ] || fail "both VMs made the same machine-id $id_a"
[ "$(kv_of "$line_a" macs)" = eth0/52:54:00:12:34:56 ] || fail "VM a's MACs: $(kv_of "$line_a" macs)"
kv_of "$line_a" compiler | grep -q '^gcc_(Debian_12[^ ]*_for_aarch64-linux-gnu$' \
    || fail "VM a does not report its gcc: $(kv_of "$line_a" compiler)"
dup=$(grep 'report the same MAC 52:54:00:12:34:56' <<<"$table" || true)
if [[ "$dup" != *"127.0.0.1:${vm_rccd[a]}"* ]] || [[ "$dup" != *"127.0.0.1:${vm_rccd[b]}"* ]]; then
    fail "rcc --status does not name both VMs as sharing a MAC"
fi
if grep -q 'same machine-id' <<<"$table"; then fail "rcc --status calls different machine-ids the same"; fi

phase "what systemd says about rccd in each VM (the report unit)"
for n in a b; do
    rep=$(report "$n")
    [ "$n" = b ] || indent <<<"$rep"
    for want in ActiveState=active SubState=running UnitFileState=enabled User=rccd NRestarts=0 \
        NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
        CapabilityBoundingSet= process_user=rccd proc_NoNewPrivs=1 proc_CapEff=0000000000000000; do
        grep -qx "$want" <<<"$rep" || fail "VM $n: not $want (report above)"
    done
    grep -q '^RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX$' <<<"$rep" || fail "VM $n: RestrictAddressFamilies"
    [ "$(sed -n 's/^machine_id=//p' <<<"$rep")" = "$([ "$n" = a ] && echo "$id_a" || echo "$id_b")" ] \
        || fail "VM $n: rccd reports another machine-id than the box's /etc/machine-id"
    grep -q '^journal: .*rccd' <<<"$rep" || fail "VM $n: nothing of rccd in the journal of this boot"
done
poweroff_vm b
phase "VM b powered off"

# --- 3. an arm64 master builds Lua through VM a ------------------------------------------------
lua=$(cargo metadata --format-version 1 | python3 -c '
import json, sys, os
m = json.load(sys.stdin)
p = [p for p in m["packages"] if p["name"] == "lua-src"][0]
print(os.path.join(os.path.dirname(p["manifest_path"]), "lua-5.4.7"))')
case "${RCC_BOOT_LUA:-all}" in
    all) objs=() ;;
    libs) objs=(obj/lauxlib.o obj/lbaselib.o obj/lcorolib.o obj/ldblib.o obj/liolib.o obj/lmathlib.o
        obj/loadlib.o obj/loslib.o obj/lstrlib.o obj/ltablib.o obj/lutf8lib.o obj/linit.o) ;;
    *) fail "RCC_BOOT_LUA is all or libs" ;;
esac
phase "the arm64 master: the debootstrap root in a chroot (qemu-user), the static arm64 rcc"
m=$work/master
mkdir -p "$m"
tar -C "$m" -xf "$base"
mount -t proc proc "$m/proc"; mounts+=("$m/proc")
install -m 755 target/aarch64-unknown-linux-musl/release/rcc "$m/usr/local/bin/rcc"
cp -r "$lua" "$m/src"
mkdir -p "$m/build/remote/obj" "$m/build/local/obj"
# The master has no make: lua.mk's compile commands, as make would run them there.
make -n -B -C "$m/build" --no-print-directory -f "$repo/tests/fixtures/lua.mk" SRC="$m/src" \
    CC="rcc gcc" "${objs[@]}" | sed -n "s#$m##g; /^rcc gcc /p" >"$m/build/commands"
n_objs=$(wc -l <"$m/build/commands")
in_master() { # COMMAND...: in the master's chroot, with the host list naming VM a only
    LC_ALL=C chroot "$m" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
        RCC_HOSTS="127.0.0.1:${vm_rccd[a]}" RCC_DIR=/tmp/rcc "$@"
}
master_kv=$(in_master rcc --status --format kv)
[ "$(kv_of "$master_kv" state)" = up ] || fail "the arm64 master does not see VM a up: $master_kv"
[ "$(kv_of "$master_kv" machine_id)" = "$id_a" ] || fail "the arm64 master sees another machine-id"
done_before=$(kv_of "$master_kv" "done")
phase "building $n_objs Lua files with rcc gcc through VM a, 4 at a time"
s=$(date +%s)
in_master sh -c 'cd /build/remote && xargs -P 4 -I{} sh -c "{}" </build/commands' >"$work/master-remote.log" 2>&1 \
    || { cat "$work/master-remote.log"; fail "the build through VM a failed"; }
remote_s=$(($(date +%s) - s))
master_kv=$(in_master rcc --status --format kv)
ran=$(($(kv_of "$master_kv" "done") - done_before))
[ "$ran" -eq "$n_objs" ] || fail "VM a compiled $ran of the $n_objs jobs (its done counter; log: $(cat "$work/master-remote.log"))"
phase "the same files with the master's own gcc (qemu-user), compared"
s=$(date +%s)
sed 's/^rcc gcc /gcc /' "$m/build/commands" >"$m/build/commands.local"
in_master sh -c 'cd /build/local && xargs -P 2 -I{} sh -c "{}" </build/commands.local' >"$work/master-local.log" 2>&1 \
    || { cat "$work/master-local.log"; fail "the master's own build failed"; }
local_s=$(($(date +%s) - s))
for o in "$m"/build/local/obj/*.o; do
    cmp "$o" "$m/build/remote/obj/$(basename "$o")" || fail "$(basename "$o") from VM a differs from the master's"
done
[ "$(find "$m/build/remote/obj" -name '*.o' | wc -l)" -eq "$n_objs" ] || fail "objects missing"

# --- 4. the x86 cross compiler is not the box's: refused, compiled here ----------------------
phase "Lua from this x86 machine with rcc aarch64-linux-gnu-gcc: the identity check refuses VM a"
mkdir -p "$work/x86/rcc" "$work/x86/plain"
RCC_HOSTS="127.0.0.1:${vm_rccd[a]}" RCC_DIR=$work/rcc-x86 make -s -C "$work/x86/rcc" -f "$repo/tests/fixtures/lua.mk" \
    SRC="$lua" CC="$rcc aarch64-linux-gnu-gcc" -j4 "${objs[@]}" >"$work/x86.log" 2>&1 \
    || { cat "$work/x86.log"; fail "the x86 build through rcc failed"; }
make -s -C "$work/x86/plain" -f "$repo/tests/fixtures/lua.mk" SRC="$lua" CC=aarch64-linux-gnu-gcc -j2 \
    "${objs[@]}" >/dev/null 2>&1 || fail "the plain cross build failed"
for o in "$work"/x86/plain/obj/*.o; do
    cmp "$o" "$work/x86/rcc/obj/$(basename "$o")" || fail "$(basename "$o") differs from the cross gcc's"
done
indent <"$work/x86.log"
said=$(grep -c "^rcc: not using 127.0.0.1:${vm_rccd[a]} for aarch64-linux-gnu-gcc: " "$work/x86.log" || true)
[ "$said" -eq 1 ] || fail "the mismatch was said $said times, not once"
if grep -v "^rcc: not using " "$work/x86.log" | grep -q '^rcc:'; then fail "rcc said more than the mismatch (above)"; fi
kv=$(status_kv "127.0.0.1:${vm_rccd[a]}")
[ "$(kv_of "$kv" state)" = "mismatch:_aarch64-linux-gnu-gcc" ] || fail "rcc --status from x86: $(kv_of "$kv" state)"
[ "$(kv_of "$kv" "done")" -eq "$(kv_of "$master_kv" "done")" ] || fail "VM a compiled jobs of the x86 build"
RCC_HOSTS="127.0.0.1:${vm_rccd[a]}" RCC_DIR=$work/rcc-x86 "$rcc" --status | indent

poweroff_vm a
phase "VM a powered off"
total=$(($(date +%s) - t0))
echo "ok: a released image remastered in $remaster_s s ($((size_in / 1048576)) MiB -> $((size_out / 1048576)) MiB),"
echo "    booted to rccd in $boot_a s (2 vCPUs; $boot_b s for the second VM), rccd under systemd as rccd with its hardening,"
echo "    its own machine-id per VM and the shared MAC named; $n_objs Lua files built through VM a by an arm64 master"
echo "    in $remote_s s (the master's own gcc under qemu-user: $local_s s), objects equal; the x86 cross gcc refused"
echo "    by the identity check, said once, compiled here; $total s in all"
