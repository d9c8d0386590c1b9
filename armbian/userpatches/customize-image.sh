#!/bin/bash
# Armbian build framework hook: runs inside the new image's chroot (under qemu-user on an
# x86 build host) after the root filesystem is complete, with userpatches/overlay mounted
# read-only at /tmp/overlay. Arguments, as the framework passes them:
#   $1 RELEASE  $2 LINUXFAMILY  $3 BOARD  $4 BUILD_DESKTOP  $5 ARCH
# Installs the rccd and rcc packages from the overlay: rccd enabled (not started: nothing
# runs in a chroot), with its config, its user and the native gcc/g++ that the box
# compiles with -- the same packages an already-flashed box gets with apt install.
set -euo pipefail

RELEASE=${1:-}
BOARD=${3:-}
echo "customize-image: rccd for ${BOARD:-this board} (${RELEASE:-unknown release})"
sh /tmp/overlay/rccd/install.sh --image
