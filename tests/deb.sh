#!/usr/bin/env bash
# rcc's Debian packages (armbian/deb.sh), built for arm64 and amd64 and checked:
#  - each package's control fields, files with their modes, conffiles and md5sums, and its
#    binary (architecture, static, its version);
#  - lintian: no error and no warning (skipped, saying so, when lintian is missing;
#    tests/setup.sh installs it);
#  - the copyright file names every crate linked into the binaries;
#  - rccd's life under dpkg in a throwaway arm64 root (tests/rootfs-cache.sh, under
#    qemu-user): installed as in an image build (no init running: user made, unit enabled,
#    nothing started; the binaries run), upgraded on a box where systemd runs (a stand-in
#    systemctl records what it is asked: restart) with an edited /etc/default/rccd kept,
#    removed (stopped; the settings stay) and purged: nothing left but the user, as Debian
#    packages leave their system users; installed again where systemd runs: started; and
#    install.sh on a box set up by its older self (rccd in /usr/local): moved to the packages.
# Needs root (chroot). About 45 s once the root filesystem is cached and the binaries built.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (chroot, mount)"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "no qemu-aarch64 binfmt entry: run tests/setup.sh"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
next="$version+1"
work=$(mktemp -d /tmp/rcc-deb-test.XXXXXX)
root="$work/root"
mounts=()
cleanup() {
    set +e
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}"; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "deb: building rccd and rcc for arm64 and amd64"
bash armbian/deb.sh -o "$work/v1" --arch all >/dev/null
bash armbian/deb.sh -o "$work/v2" --arch arm64 --version "$next" >/dev/null

# --- what is in each package ------------------------------------------------------------
expect_files() { # PKG: its files, mode owner path
    case "$1" in
        rccd) cat <<'EOF'
-rw-r--r-- root/root ./etc/default/rccd
-rwxr-xr-x root/root ./etc/init.d/rccd
-rw-r--r-- root/root ./lib/systemd/system/rccd.service
-rwxr-xr-x root/root ./usr/sbin/rccd
-rw-r--r-- root/root ./usr/share/doc/rccd/changelog.gz
-rw-r--r-- root/root ./usr/share/doc/rccd/copyright
-rw-r--r-- root/root ./usr/share/lintian/overrides/rccd
-rw-r--r-- root/root ./usr/share/man/man8/rccd.8.gz
EOF
            ;;
        rcc) cat <<'EOF'
-rwxr-xr-x root/root ./usr/bin/rcc
-rw-r--r-- root/root ./usr/share/doc/rcc/README.md.gz
-rw-r--r-- root/root ./usr/share/doc/rcc/changelog.gz
-rw-r--r-- root/root ./usr/share/doc/rcc/copyright
-rw-r--r-- root/root ./usr/share/lintian/overrides/rcc
-rw-r--r-- root/root ./usr/share/man/man1/rcc.1.gz
EOF
            ;;
    esac
}
check_package() { # PKG ARCH
    local pkg=$1 arch=$2 deb x
    deb="$work/v1/${pkg}_${version}_$arch.deb"
    [ -s "$deb" ] || fail "$deb was not built"
    field() { dpkg-deb -f "$deb" "$1"; }
    [ "$(field Package)" = "$pkg" ] || fail "$deb: Package is $(field Package)"
    [ "$(field Version)" = "$version" ] || fail "$deb: Version is $(field Version)"
    [ "$(field Architecture)" = "$arch" ] || fail "$deb: Architecture is $(field Architecture)"
    for x in Maintainer Installed-Size Section Priority Description; do
        [ -n "$(field "$x")" ] || fail "$deb: no $x"
    done
    if [ "$pkg" = rccd ]; then
        [ "$(field Depends)" = adduser ] || fail "$deb: Depends is $(field Depends)"
        field Pre-Depends | grep -q '^init-system-helpers (>= 1.54~)$' \
            || fail "$deb: Pre-Depends is $(field Pre-Depends) (invoke-rc.d --skip-systemd-native)"
        [ "$(dpkg-deb -I "$deb" conffiles)" = $'/etc/default/rccd\n/etc/init.d/rccd' ] \
            || fail "$deb: conffiles are $(dpkg-deb -I "$deb" conffiles)"
        for x in postinst prerm postrm; do
            dpkg-deb -I "$deb" "$x" | head -1 | grep -qx '#!/bin/sh' || fail "$deb: no $x"
        done
    fi
    diff <(expect_files "$pkg") <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $1, $2, $6 }') \
        || fail "$deb: files differ from the expected (above)"

    x="$work/x-$pkg-$arch"
    dpkg-deb -x "$deb" "$x"
    # md5sums lists every file, and each sum is right.
    diff <(dpkg-deb -I "$deb" md5sums | awk '{ print $2 }') \
        <(cd "$x" && find . -type f -printf '%P\n' | LC_ALL=C sort) || fail "$deb: md5sums lists other files"
    (cd "$x" && dpkg-deb -I "$deb" md5sums | md5sum --quiet -c) || fail "$deb: md5sums are wrong"
    local bin=usr/bin/rcc want
    [ "$pkg" = rccd ] && bin=usr/sbin/rccd
    case "$arch" in arm64) want='ARM aarch64' ;; amd64) want='x86-64' ;; esac
    file "$x/$bin" | grep "$want" | grep -q 'static' || fail "$deb: $(file "$x/$bin")"
    [ "$("$x/$bin" --version)" = "$pkg $version" ] || fail "$deb: $bin --version"
    if [ "$pkg" = rccd ]; then
        cmp "$x/etc/default/rccd" initscripts/rccd.default || fail "$deb: /etc/default/rccd"
        grep -qx 'ExecStart=/usr/sbin/rccd --config /etc/default/rccd' \
            "$x/lib/systemd/system/rccd.service" || fail "$deb: the unit runs another rccd"
    fi
    zcat "$x/usr/share/doc/$pkg/changelog.gz" | head -1 | grep -q "^$pkg ($version) " \
        || fail "$deb: changelog is not for $version"
}
for arch in arm64 amd64; do
    for pkg in rccd rcc; do check_package "$pkg" "$arch"; done
done
echo "deb: control fields, files, conffiles, md5sums and binaries as expected"

# --- the copyright file names every crate in the binaries --------------------------------
for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
    cargo tree --locked -e normal,no-proc-macro --prefix none --target "$t" \
        | awk '$1 != "rcc" { print $1 }' | sort -u
done | sort -u | while read -r crate; do
    grep -q "crate:$crate\b" armbian/deb/copyright \
        || fail "$crate is linked into rcc but not in armbian/deb/copyright"
done

# --- lintian ------------------------------------------------------------------------------
if command -v lintian >/dev/null; then
    # lintian warns when run as root; it only reads the packages.
    chmod 755 "$work" "$work/v1"
    mkdir -m 1777 "$work/home"
    lint=(lintian --fail-on "error,warning" --display-info --display-experimental "$work"/v1/*.deb)
    if ! runuser -u nobody -- env HOME="$work/home" "${lint[@]}" >"$work/lintian.log" 2>&1; then
        cat "$work/lintian.log"
        fail "lintian found errors or warnings"
    fi
    echo "deb: lintian: no errors, no warnings; $(grep -c '^[IX]:' "$work/lintian.log" || true) notes:"
    sed 's/^/  /' "$work/lintian.log"
else
    echo "deb: NOTE lintian is not installed (tests/setup.sh installs it): not linted"
fi

# --- rccd's life under dpkg in an arm64 root ------------------------------------------------
echo "deb: install, upgrade, remove, purge in an arm64 root (qemu-user)"
mkdir -p "$root"
tar -C "$root" -xf "$(bash tests/rootfs-cache.sh)"
mount -t proc proc "$root/proc"; mounts+=("$root/proc")
mkdir -p "$root/tmp/debs"
cp "$work"/v1/*_arm64.deb "$work"/v2/*_arm64.deb "$root/tmp/debs/"
in_root() { LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" "$@"; }
# shellcheck disable=SC2016 # ${Status} and ${Version} are dpkg-query's fields
status() { in_root dpkg-query -W -f '${Status} ${Version}' "$1" 2>/dev/null || true; }
# Every path but what changes on its own (dpkg's records, logs, caches, /tmp) and the
# stand-in systemctl below.
snapshot() {
    (cd "$root" && find . -xdev \( -path ./proc -o -path ./tmp -o -path ./var/lib/dpkg \
        -o -path ./var/log -o -path ./var/cache -o -path ./run \
        -o -path ./usr/local/sbin/systemctl \) -prune -o -print) | LC_ALL=C sort
}
snapshot >"$work/before"
wants=/etc/systemd/system/multi-user.target.wants/rccd.service

# 1. As in an image's chroot: no init system runs, no runlevel.
in_root dpkg -i "/tmp/debs/rccd_${version}_arm64.deb" "/tmp/debs/rcc_${version}_arm64.deb" \
    >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i"; }
[ "$(status rccd)" = "install ok installed $version" ] || fail "rccd: $(status rccd)"
[ "$(status rcc)" = "install ok installed $version" ] || fail "rcc: $(status rcc)"
user=$(in_root getent passwd rccd) || fail "no user rccd"
IFS=: read -r _ _ uid gid _ home shell <<<"$user"
if [ "$uid" -ge 1000 ] || [ "$home" != /nonexistent ] || [ "$shell" != /usr/sbin/nologin ]; then
    fail "rccd is not a system user: $user"
fi
[ "$(in_root getent group rccd | cut -d: -f3)" = "$gid" ] || fail "no group rccd"
[ "$(readlink "$root$wants")" = /lib/systemd/system/rccd.service ] || fail "unit not enabled"
ls "$root"/etc/rc2.d/S*rccd >/dev/null 2>&1 || fail "no SysV start link (update-rc.d)"
if [ -e "$root/run/rccd.pid" ] || [ -e "$root/var/log/rccd.log" ]; then
    fail "rccd was started in a chroot"
fi
[ "$(in_root rccd --version)" = "rccd $version" ] || fail "rccd --version"
[ "$(in_root rcc --version)" = "rcc $version" ] || fail "rcc --version"
# (Not piped to grep -q: rccd dies of the closed pipe.)
check=$(in_root rccd --config /etc/default/rccd --check) || fail "rccd --check"
grep -q 'listen: 0.0.0.0:3633' <<<"$check" || fail "rccd --check: $check"

# 2. Where systemd runs: a stand-in systemctl (first in dpkg's PATH) answers what
# deb-systemd-invoke and invoke-rc.d ask and records what they tell it.
mkdir -p "$root/run/systemd/system"
cat >"$root/usr/local/sbin/systemctl" <<'EOF'
#!/bin/sh
echo "$*" >> /tmp/systemctl.log
unit=$(for a; do u=$a; done; echo "$u")
case " $* " in
    *" --version "*) echo "systemd 252 (252.0)" ;;
    *" is-enabled "*)
        if [ -L "/etc/systemd/system/multi-user.target.wants/$unit" ]; then state=enabled; else state=disabled; fi
        case " $* " in *" --quiet "*) ;; *) echo "$state" ;; esac
        [ "$state" = enabled ] ;;
    # Where systemd runs, deb-systemd-helper enables a new unit by its preset (Debian's:
    # enable everything).
    *" preset "*) ln -sf "/lib/systemd/system/$unit" /etc/systemd/system/multi-user.target.wants/ ;;
    *" is-active "*) [ "$unit" = sysinit.target ] || [ -e "/tmp/active-$unit" ] ;;
    *" start "*|*" restart "*) touch "/tmp/active-$unit" ;;
    *" stop "*) rm -f "/tmp/active-$unit" ;;
esac
EOF
chmod 755 "$root/usr/local/sbin/systemctl"
touch "$root/tmp/active-rccd.service"
sed -i 's/^JOBS=.*/JOBS="2"/' "$root/etc/default/rccd"
in_root dpkg -i "/tmp/debs/rccd_${next}_arm64.deb" >"$work/upgrade.log" 2>&1 \
    || { cat "$work/upgrade.log"; fail "dpkg -i (upgrade)"; }
[ "$(status rccd)" = "install ok installed $next" ] || fail "upgrade: $(status rccd)"
grep -qx 'JOBS="2"' "$root/etc/default/rccd" || fail "the edited /etc/default/rccd was replaced"
grep -q -- '--system restart rccd.service' "$root/tmp/systemctl.log" \
    || fail "upgrade did not restart rccd: $(cat "$root/tmp/systemctl.log")"
if grep -qE '(^| )stop rccd.service' "$root/tmp/systemctl.log"; then fail "upgrade stopped rccd"; fi
[ -L "$root$wants" ] || fail "upgrade disabled the unit"

# 3. Remove: stopped, the settings stay, the SysV script is disabled; rcc (no conffiles) is gone.
mv "$root/tmp/systemctl.log" "$work/systemctl-upgrade.log"
touch "$root/var/log/rccd.log"
in_root dpkg -r rccd rcc >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "dpkg -r"; }
[ "$(status rccd)" = "deinstall ok config-files $next" ] || fail "remove: $(status rccd)"
case "$(status rcc)" in "" | *" not-installed "*) ;; *) fail "remove: rcc is $(status rcc)" ;; esac
grep -qE '(^| )stop rccd.service' "$root/tmp/systemctl.log" || fail "remove did not stop rccd"
if [ -e "$root/usr/sbin/rccd" ] || [ -e "$root/usr/bin/rcc" ]; then fail "binaries left after remove"; fi
grep -qx 'JOBS="2"' "$root/etc/default/rccd" || fail "remove took /etc/default/rccd"
[ ! -x "$root/etc/init.d/rccd" ] || fail "the SysV script is still executable after remove"

# 4. Purge: nothing left but the user.
in_root dpkg -P rccd >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg -P"; }
[ -z "$(status rccd)" ] || fail "dpkg still knows rccd: $(status rccd)"
[ ! -e "$root/var/log/rccd.log" ] || fail "purge left the log"
in_root getent passwd rccd >/dev/null || fail "purge removed the user rccd"
snapshot >"$work/after"
diff "$work/before" "$work/after" || fail "purge left files behind (above)"

# 5. A first install where systemd runs: enabled and started.
mv "$root/tmp/systemctl.log" "$work/systemctl-remove.log"
in_root dpkg -i "/tmp/debs/rccd_${version}_arm64.deb" >"$work/reinstall.log" 2>&1 \
    || { cat "$work/reinstall.log"; fail "dpkg -i (where systemd runs)"; }
[ -L "$root$wants" ] || fail "not enabled on a new install after a purge"
grep -q -- '--system start rccd.service' "$root/tmp/systemctl.log" \
    || fail "a new install did not start rccd: $(cat "$root/tmp/systemctl.log")"

# 6. A box set up by install.sh before the packages (rccd in /usr/local, its own unit and
# SysV script, an edited /etc/default/rccd): install.sh moves it to the packages.
in_root dpkg -P rccd >"$work/purge2.log" 2>&1 || { cat "$work/purge2.log"; fail "dpkg -P"; }
mv "$root/tmp/systemctl.log" "$work/systemctl-reinstall.log"
install -m 0755 "$root/usr/bin/true" "$root/usr/local/sbin/rccd"
sed 's|/usr/sbin/rccd|/usr/local/sbin/rccd|' initscripts/rccd.service >"$root/etc/systemd/system/rccd.service"
sed 's|/usr/sbin/rccd|/usr/local/sbin/rccd|' initscripts/rccd.init >"$root/etc/init.d/rccd"
chmod 755 "$root/etc/init.d/rccd"
ln -s /etc/systemd/system/rccd.service "$root$wants"
sed 's/^JOBS=.*/JOBS="3"/' initscripts/rccd.default >"$root/etc/default/rccd"
mkdir -p "$root/tmp/overlay"
cp armbian/userpatches/overlay/rccd/install.sh "$work"/v1/*_arm64.deb "$root/tmp/overlay/"
in_root sh /tmp/overlay/install.sh --no-compilers >"$work/legacy.log" 2>&1 \
    || { cat "$work/legacy.log"; fail "install.sh on a box set up by the old install.sh"; }
[ "$(status rccd)" = "install ok installed $version" ] || fail "install.sh: rccd $(status rccd)"
[ "$(status rcc)" = "install ok installed $version" ] || fail "install.sh: rcc $(status rcc)"
for f in /usr/local/sbin/rccd /etc/systemd/system/rccd.service; do
    [ ! -e "$root$f" ] || fail "install.sh left the old $f"
done
grep -qE '(^| )stop rccd.service' "$root/tmp/systemctl.log" || fail "install.sh did not stop the old rccd"
if grep -q /usr/local/sbin/rccd "$root/etc/init.d/rccd"; then fail "the old SysV script is still there"; fi
[ "$(readlink "$root$wants")" = /lib/systemd/system/rccd.service ] || fail "install.sh: unit not enabled"
grep -qx 'JOBS="3"' "$root/etc/default/rccd" || fail "install.sh replaced the edited /etc/default/rccd"
echo "ok: packages built, checked, linted; rccd installed, upgraded, removed, purged, and replacing an old install.sh's, in an arm64 root"
