#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, formatting, lints, every test.
# Needs root (DPDK's EAL, network namespaces). Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

step() { printf '\n=== %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
# DPDK tests each start their own EAL with a private --file-prefix, so they may run in
# parallel; RUST_BACKTRACE helps read a failure in CI's log.
RUST_BACKTRACE=1 cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test.log
grep -q "test result:" target/test.log || { echo "no test ran" >&2; exit 1; }

step "fuzz targets (${FUZZ_SECONDS:-20}s each)"
# Every cargo-fuzz target, bounded: see docs/fuzzing.md. Longer: bash scripts/fuzz.sh 3600
bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

# One closing line for the whole run: the cargo test totals (the fuzz step has no tests).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log
