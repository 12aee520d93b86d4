#!/usr/bin/env bash
# A/B of two espd binaries on the built-in traffic source, alternated (A B A B ...), so both
# see the same machine: `espd bench` for each configuration, medians with min-max of the
# on-CPU rate, the worker's share of its core beside every figure, and a verdict per row.
# A row where either side's worker had less than 95 % of its core in any run is marked
# "invalid (shared CPU)": its on-CPU figures are shown, never rescaled into a wall-clock one.
#
# Usage: bash benches/ab.sh A_BIN B_BIN ROUNDS -- <espd bench options without EAL>
#   e.g. bash benches/ab.sh ../before/target/release/espd target/release/espd 3 -- \
#          --mode encap,decap --algo aes-cbc-sha1 --size 1420 --sas 1,1000
# Prints one markdown table (benches/ab.py) and keeps the raw JSON lines in $OUT (default a
# temporary file, removed).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] && [ "$4" = "--" ] || { echo "usage: $0 A_BIN B_BIN ROUNDS -- <bench options>" >&2; exit 2; }
a=$1 b=$2 rounds=$3
shift 4
raw=${OUT:-$(mktemp)}
[ -n "${OUT:-}" ] || trap 'rm -f "$raw"' EXIT
: >"$raw"
for r in $(seq "$rounds"); do
    for side in A B; do
        bin=$a
        [ "$side" = B ] && bin=$b
        "$bin" bench --duration 2 --warmup 1 --stats-interval 0 "$@" -- \
            -l 0,1 --no-pci --no-huge -m 4096 --no-shconf --no-telemetry --log-level error \
            --file-prefix "espd-ab-$$" --vdev net_null0 --vdev net_null1 2>/dev/null |
            grep '^{' | sed "s/^/$side /" >>"$raw"
    done
done
python3 benches/ab.py "$raw"
