#!/usr/bin/env bash
# Every test: the unit and integration tests (real gcc, real rccd on 127.0.0.1) natively,
# the shipped static binaries (tests/static.sh), the whole suite again for aarch64 under
# qemu-user, as the boxes run it, the Armbian overlay in an arm64 rootfs, the .deb packages
# (built, linted, installed, upgraded and purged in that rootfs; tests/deb.sh), with
# RCC_IMAGE_TESTS=1 a released image put through armbian/remaster.sh (tests/remaster.sh) and
# booted under qemu-system-aarch64, serving a Lua build (tests/boot.sh), the arm64 Linux
# kernel built plain and through rcc with its sources shipped, object for object
# (tests/kernel.sh: all of tinyconfig, part of defconfig), and a minute of fuzzing per
# target (tests/fuzz.sh; RCC_FUZZ_SECONDS changes it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo test --all-targets -- --test-threads 2
bash tests/static.sh
# One test thread: qemu-user can deadlock when a multi-threaded guest forks.
cargo test --target aarch64-unknown-linux-musl --tests -- --test-threads 1
bash tests/rootfs.sh
bash tests/deb.sh
# The image tests join CI once their first, uncached run (a Debian kernel installed into the
# arm64 root under qemu-user, ~12 min) fits the 45-minute budget; until then, opt in.
if [ "${RCC_IMAGE_TESTS:-0}" = 1 ]; then
    bash tests/remaster.sh
    bash tests/boot.sh
fi
bash tests/kernel.sh
# defconfig's modules and built-in code with BUG()'s __FILE__ and debug info, the SoC's drivers
KCONFIG=defconfig KSUBSET='fs/ext4/ drivers/net/ethernet/stmicro/ sound/soc/meson/ crypto/' \
    bash tests/kernel.sh
bash tests/fuzz.sh "${RCC_FUZZ_SECONDS:-60}"
