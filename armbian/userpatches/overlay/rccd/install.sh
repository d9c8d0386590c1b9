#!/bin/sh
# Installs rccd on a Debian/Ubuntu/Armbian system: the binary for this machine's
# architecture, /etc/default/rccd (kept if present), the systemd unit and the SysV script,
# a system user, and the native gcc/g++ the box compiles with; then enables rccd and, on
# a running box, starts it.
#
#   on a running box, as root:  sh install.sh
#   inside an image's chroot:   sh install.sh --image     (what customize-image.sh runs)
#
# Options: --image (enable but do not start; give each flashed box its own machine-id at
# first boot), --no-compilers (skip apt-get install gcc g++), --prefix DIR (where the
# files are, default: this script's directory).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
image=no
compilers=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --image) image=yes ;;
        --no-compilers) compilers=no ;;
        --prefix) here=$2; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "install.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it writes /usr/local/sbin and /etc)"

case "$(uname -m)" in
    aarch64|arm64) arch=aarch64 ;;
    x86_64|amd64) arch=x86_64 ;;
    *) die "no rccd build for $(uname -m) (aarch64 and x86_64 only)" ;;
esac
# In an image chroot under qemu-user, uname -m is the emulated machine; dpkg agrees.
if command -v dpkg >/dev/null 2>&1; then
    case "$(dpkg --print-architecture)" in
        arm64) arch=aarch64 ;;
        amd64) arch=x86_64 ;;
    esac
fi
bin="$here/rccd-$arch"
[ -f "$bin" ] || die "$bin is missing: run armbian/build-overlay.sh on the build machine first"
for f in rccd.service rccd.init rccd.default; do
    [ -f "$here/$f" ] || die "$here/$f is missing: run armbian/build-overlay.sh first"
done

echo "installing rccd ($arch)"
install -d /usr/local/sbin
install -m 0755 "$bin" /usr/local/sbin/rccd

if ! getent passwd rccd >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "rcc compile daemon" rccd
fi

if [ -e /etc/default/rccd ]; then
    echo "keeping /etc/default/rccd; the shipped one is /etc/default/rccd.dist"
    install -m 0644 "$here/rccd.default" /etc/default/rccd.dist
else
    install -m 0644 "$here/rccd.default" /etc/default/rccd
fi
/usr/local/sbin/rccd --config /etc/default/rccd --check >/dev/null \
    || die "/etc/default/rccd is not valid (rccd --config /etc/default/rccd --check says why)"

install -d /etc/systemd/system /etc/init.d
install -m 0644 "$here/rccd.service" /etc/systemd/system/rccd.service
install -m 0755 "$here/rccd.init" /etc/init.d/rccd

if [ "$compilers" = yes ]; then
    if ! command -v gcc >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1; then
        echo "installing gcc and g++ (the compilers this box serves)"
        export DEBIAN_FRONTEND=noninteractive
        pkgs="gcc g++ libc6-dev"
        # shellcheck disable=SC2086 # a word list on purpose
        apt-get install -y --no-install-recommends $pkgs \
            || { apt-get update && apt-get install -y --no-install-recommends $pkgs; }
    fi
fi

if [ "$image" = yes ]; then
    # Every box flashed from this image must get its own identity at first boot: an empty
    # machine-id makes systemd (or rccd's SysV script) generate one.
    : > /etc/machine-id
    rm -f /var/lib/dbus/machine-id
fi

if command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload enable rccd.service
    if [ "$image" = no ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl restart rccd.service
        echo "rccd started: systemctl status rccd"
    fi
else
    update-rc.d rccd defaults >/dev/null
    if [ "$image" = no ]; then
        /etc/init.d/rccd restart
    fi
fi
echo "done. From the master: RCC_HOSTS='$(hostname)' rcc --status"
