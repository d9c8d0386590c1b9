#!/usr/bin/env bash
# Every test: unit tests, integration tests (real gcc, real rccd on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets -- --test-threads 2
