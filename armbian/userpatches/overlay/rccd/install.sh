#!/bin/sh
# Installs rcc's packages from this directory on a Debian/Ubuntu/Armbian box, the one way
# rccd gets onto a box: rccd_<version>_<arch>.deb (the daemon, its user, /etc/default/rccd,
# the unit enabled and, where an init system runs, started) and rcc_<version>_<arch>.deb
# (the client: any box can be the master), and the native gcc, g++ and libc6-dev the box
# compiles with (named, as well as recommended by rccd). On a running box this is the same as
#     apt install ./rccd_<version>_<arch>.deb ./rcc_<version>_<arch>.deb
# plus moving a box set up by an older install.sh (files in /usr/local) to the packages.
#
#   on a running box, as root:  sh install.sh
#   inside an image's chroot:   sh install.sh --image     (what customize-image.sh runs)
#
# Options: --image (give each flashed box its own machine-id at first boot), --no-compilers
# (do not install gcc/g++), --prefix DIR (where the .deb files are, default: this script's
# directory; armbian/build-overlay.sh or armbian/deb.sh makes them).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
image=no
compilers=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --image) image=yes ;;
        --no-compilers) compilers=no ;;
        --prefix) here=$2; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "install.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages)"
command -v apt-get >/dev/null 2>&1 || die "needs apt and dpkg (Debian, Ubuntu, Armbian)"

# In an image chroot under qemu-user dpkg says the image's architecture, as apt will.
arch=$(dpkg --print-architecture)
newest() { # the highest version of package $1 for this architecture here
    for f in "$here/$1"_*_"$arch".deb; do [ -e "$f" ] && echo "$f"; done | sort -V | tail -n 1
}
rccd=$(newest rccd)
rcc=$(newest rcc)
if [ -z "$rccd" ] || [ -z "$rcc" ]; then
    die "no rccd_*_$arch.deb and rcc_*_$arch.deb in $here: run armbian/build-overlay.sh first"
fi

# A box set up by install.sh before there were packages: stop that rccd and remove its
# files (its /etc/default/rccd stays and is kept as the package's conffile).
if [ -f /usr/local/sbin/rccd ] && ! dpkg -S /usr/local/sbin/rccd >/dev/null 2>&1; then
    echo "replacing the rccd installed in /usr/local by an older install.sh"
    if [ -d /run/systemd/system ]; then
        systemctl stop rccd.service || true
    elif [ -x /etc/init.d/rccd ]; then
        /etc/init.d/rccd stop || true
    fi
    for f in /etc/systemd/system/rccd.service /etc/init.d/rccd; do
        if grep -qs /usr/local/sbin/rccd "$f"; then rm -f "$f"; fi
    done
    rm -f /etc/systemd/system/multi-user.target.wants/rccd.service /usr/local/sbin/rccd
fi

if [ "$image" = yes ]; then
    # Every box flashed from this image must get its own identity at first boot: an empty
    # machine-id makes systemd (or rccd's SysV script) generate one.
    : > /etc/machine-id
    rm -f /var/lib/dbus/machine-id
fi

echo "installing $(basename "$rccd") and $(basename "$rcc")"
export DEBIAN_FRONTEND=noninteractive
# An edited /etc/default/rccd is kept without a question.
set -- -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
# The compilers by name, not only as rccd's Recommends: Armbian's images tell apt to install
# no recommended packages (/etc/apt/apt.conf.d/71-no-recommends).
set -- "$@" "$rccd" "$rcc"
if [ "$compilers" = yes ]; then set -- "$@" gcc g++ libc6-dev; else set -- "$@" --no-install-recommends; fi
apt-get install "$@" || { apt-get update -q && apt-get install "$@"; }

echo "done. From the master: RCC_HOSTS='$(hostname)' rcc --status"
