#!/usr/bin/env bash
# A/B of two espd binaries on the built-in traffic source, alternated (A B A B ...), so both
# see the same machine: `espd bench` for each configuration, medians with min-max of the
# wall-clock (TSC) rate, the worker's share of its core beside every figure, and a verdict
# per row. A run whose worker had less than 95 % of its core is invalid: that side's
# invocation is run again in its round, up to ATTEMPTS runs in all (default 3), and only
# valid runs enter the medians; a row with no valid run on a side says so, and no figure is
# ever rescaled by the share.
#
# Usage: bash benches/ab.sh A_BIN B_BIN ROUNDS -- <espd bench options without EAL>
#   e.g. bash benches/ab.sh ../before/target/release/espd target/release/espd 5 -- \
#          --mode encap,decap --algo aes-cbc-sha1 --size 1420 --sas 1,1000
# Prints one markdown table (benches/ab.py) and keeps the raw lines ("SIDE ROUND {json}",
# every run) in $OUT (default a temporary file, removed).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] && [ "$4" = "--" ] || { echo "usage: $0 A_BIN B_BIN ROUNDS -- <bench options>" >&2; exit 2; }
a=$1 b=$2 rounds=$3
shift 4
attempts=${ATTEMPTS:-3}
raw=${OUT:-$(mktemp)}
[ -n "${OUT:-}" ] || trap 'rm -f "$raw"' EXIT
: >"$raw"
for r in $(seq "$rounds"); do
    for side in A B; do
        bin=$a
        [ "$side" = B ] && bin=$b
        for try in $(seq "$attempts"); do
            lines=$("$bin" bench --duration 2 --warmup 1 --stats-interval 0 "$@" -- \
                -l 0,1 --no-pci --no-huge -m 4096 --no-shconf --no-telemetry --log-level error \
                --file-prefix "espd-ab-$$" --vdev net_null0 --vdev net_null1 2>/dev/null </dev/null | grep '^{' || true)
            [ -n "$lines" ] && echo "$lines" | sed "s/^/$side $r /" >>"$raw"
            # All configurations of this invocation valid (share >= 95 %)? Then the next side.
            echo "$lines" | python3 -c 'import json, sys
rs = [json.loads(l) for l in sys.stdin if l.strip()]
sys.exit(0 if rs and all((r.get("cpu_share") or 0) >= 0.95 for r in rs) else 1)' && break
            echo "ab.sh: $side, round $r: a worker below 95 % of its core (run $try of $attempts)" >&2
        done
    done
done
python3 benches/ab.py "$raw"
