#!/usr/bin/env bash
# Builds rcc's Debian packages from the static musl binaries with dpkg-deb alone (no
# debhelper, no source package):
#   rccd_<version>_<arch>.deb  the daemon for every box: /usr/sbin/rccd, its systemd unit and
#                              SysV script, /etc/default/rccd (a conffile), the rccd user
#   rcc_<version>_<arch>.deb   the client: /usr/bin/rcc (any box can be the master)
# for arm64 (the boxes) and amd64. The version is Cargo.toml's. Control files, maintainer
# scripts, copyright and lintian overrides are in armbian/deb/; `bash tests/deb.sh` builds,
# lints, installs, upgrades and purges them.
#
#   armbian/deb.sh [-o OUTDIR] [--arch arm64|amd64|all] [--version VERSION]
#
# OUTDIR defaults to target/deb. The binaries are built (cargo build --release --locked
# --target <arch>-unknown-linux-musl; nothing to do when they are current). The man pages
# are made from the binaries' --help, so an arm64 build runs its rcc and rccd under
# qemu-user (tests/setup.sh installs it). Timestamps come from SOURCE_DATE_EPOCH, else
# the last commit: the same tree gives the same packages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

out=target/deb
arches=(arm64 amd64)
version=
while [ $# -gt 0 ]; do
    case "$1" in
        -o) out=${2:?-o needs a directory}; shift ;;
        --arch)
            case "${2:-}" in
                arm64|amd64) arches=("$2") ;;
                all) arches=(arm64 amd64) ;;
                *) echo "deb.sh: --arch takes arm64, amd64 or all" >&2; exit 2 ;;
            esac
            shift ;;
        --version) version=${2:?--version needs a version}; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "deb.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "deb.sh: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "needs dpkg-deb (apt-get install dpkg-dev)"

if [ -z "$version" ]; then
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
fi
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "\"$version\" is not a Debian version"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
maintainer="rcc maintainers <maintainers@users.noreply.r-seed-0e1b8084.example>"
mkdir -p "$out"
out=$(cd "$out" && pwd)
umask 022
stage=$(mktemp -d "${TMPDIR:-/tmp}/rcc-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# roff: a backslash is \e, a minus is \-, a line may not start with . or '.
roff() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e 's/°/\\(de/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

# A man page from a binary's --help, the way help2man makes one: the usage (up to the first
# blank line) is the synopsis, the rest is shown as the program prints it.
manpage() { # NAME SECTION SUMMARY BINARY SEE-ALSO
    local name=$1 section=$2 summary=$3 help usage
    help=$("$4" --help) || die "$4 --help failed (an arm64 binary needs qemu-user: tests/setup.sh)"
    # "usage: " is 7 characters: the usage's next lines are indented by as much.
    usage=$(sed -E -e '/^$/,$d' -e '1s/^[Uu]sage: //' -e '2,$s/^ {7}//' <<<"$help")
    printf '.TH %s %s %s "%s %s" "rcc"\n' "${name^^}" "$section" \
        "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" "$name" "$version"
    # Left-aligned, no hyphenation: option names are not words.
    printf '.ad l\n.nh\n.SH NAME\n%s \\- %s\n.SH SYNOPSIS\n' "$name" "$summary"
    # One long line is filled (broken where it fits); several are kept as they are.
    if [ "$(wc -l <<<"$usage")" -gt 1 ]; then printf '.nf\n%s\n.fi\n' "$(roff <<<"$usage")"
    else roff <<<"$usage"; fi
    printf '.SH DESCRIPTION\n.nf\n'
    sed -e '1,/^$/d' <<<"$help" | sed '/./,$!d' | roff
    printf '.fi\n.SH SEE ALSO\n%s\n' "$5"
}

# One package: stage its files under $dir, then control, md5sums, and dpkg-deb.
finish() { # PKG ARCH DIR
    local pkg=$1 arch=$2 dir=$3 size
    install -d "$dir/DEBIAN" "$dir/usr/share/doc/$pkg" "$dir/usr/share/lintian/overrides"
    install -m 0644 armbian/deb/copyright "$dir/usr/share/doc/$pkg/copyright"
    install -m 0644 "armbian/deb/$pkg.lintian-overrides" "$dir/usr/share/lintian/overrides/$pkg"
    # A native package: its changelog is changelog.gz, in Debian's format.
    {
        printf '%s (%s) unstable; urgency=medium\n\n' "$pkg" "$version"
        printf '  * Built from rcc %s by armbian/deb.sh.\n\n' \
            "$(git describe --always --dirty 2>/dev/null || echo "$version")"
        printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
    } | gzip -9n > "$dir/usr/share/doc/$pkg/changelog.gz"
    for f in postinst prerm postrm; do
        [ -f "armbian/deb/$pkg.$f" ] && install -m 0755 "armbian/deb/$pkg.$f" "$dir/DEBIAN/$f"
    done
    (cd "$dir" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
        | xargs -0 md5sum > DEBIAN/md5sums)
    # Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up, 1 per other entry.
    size=$(cd "$dir" && find . -path ./DEBIAN -prune -o ! -path . -printf '%y %s\n' \
        | awk '{ n += ($1 == "f") ? int(($2 + 1023) / 1024) : 1 } END { print n }')
    sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@MAINTAINER@/$maintainer/" \
        -e "s/@INSTALLED_SIZE@/$size/" "armbian/deb/$pkg.control" > "$dir/DEBIAN/control"
    chmod 0644 "$dir/DEBIAN/control" "$dir/DEBIAN/md5sums"
    find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    dpkg-deb --root-owner-group -Zxz --build "$dir" "$out/${pkg}_${version}_$arch.deb" >/dev/null
    echo "$out/${pkg}_${version}_$arch.deb"
}

for arch in "${arches[@]}"; do
    case "$arch" in arm64) triple=aarch64-unknown-linux-musl ;; amd64) triple=x86_64-unknown-linux-musl ;; esac
    rustup target list --installed 2>/dev/null | grep -qx "$triple" || rustup target add "$triple"
    cargo build --release --locked --quiet --target "$triple" --bin rcc --bin rccd
    bin=target/$triple/release

    d=$stage/rccd-$arch
    install -d "$d/usr/sbin" "$d/lib/systemd/system" "$d/etc/init.d" "$d/etc/default" \
        "$d/usr/share/man/man8"
    install -m 0755 "$bin/rccd" "$d/usr/sbin/rccd"
    install -m 0644 initscripts/rccd.service "$d/lib/systemd/system/rccd.service"
    install -m 0755 initscripts/rccd.init "$d/etc/init.d/rccd"
    install -m 0644 initscripts/rccd.default "$d/etc/default/rccd"
    # Every file under /etc is a conffile: an admin's edit survives an upgrade.
    printf '/etc/default/rccd\n/etc/init.d/rccd\n' > "$stage/conffiles"
    install -d "$d/DEBIAN" && install -m 0644 "$stage/conffiles" "$d/DEBIAN/conffiles"
    manpage rccd 8 "serve compile jobs from rcc clients on the LAN" "$bin/rccd" \
        "rcc(1), /etc/default/rccd (every setting is explained there)" \
        | gzip -9n > "$d/usr/share/man/man8/rccd.8.gz"
    finish rccd "$arch" "$d"

    d=$stage/rcc-$arch
    install -d "$d/usr/bin" "$d/usr/share/man/man1" "$d/usr/share/doc/rcc"
    install -m 0755 "$bin/rcc" "$d/usr/bin/rcc"
    manpage rcc 1 "distributed C/C++ compilation on a farm of small boxes" "$bin/rcc" \
        "rccd(8), /usr/share/doc/rcc/README.md.gz" | gzip -9n > "$d/usr/share/man/man1/rcc.1.gz"
    # rcc --help ends with "See README.md for the rest": it is here.
    gzip -9n < README.md > "$d/usr/share/doc/rcc/README.md.gz"
    finish rcc "$arch" "$d"
done
