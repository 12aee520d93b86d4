#!/usr/bin/env bash
# One SA carried by two workers ("a fat SA"): espd bench, encapsulation over a single
# tunnel, with one worker and then with two (A B A B ..., ROUNDS each), on this 2-CPU
# machine laid out as `--lcores 0@0,1@1,2@0`: the worker lcores 1 and 2 on CPUs 1 and 0,
# the main lcore (which only supervises and sleeps) sharing CPU 0 with worker 2. Both
# workers reserve sequence numbers for the same SA from the SA database (one atomic per
# run of packets), so the aggregate should be about twice one worker's.
#
#   bash benches/fat_sa.sh [ROUNDS] [SECONDS]     (builds nothing: cargo build --release first)
#
# Prints, per frame size, the medians (min-max) of the aggregate Mpps by the wall clock and
# of the aggregate on-CPU Mpps (Mpps per second of CPU the workers had), each worker count's
# share of its cores, and the ratio two workers / one worker of the medians. A verdict where
# the workers had less than 95 % of their cores (median) is printed as invalid.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECS=${2:-3}
ESPD=${CARGO_TARGET_DIR:-target}/release/espd
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$ROUNDS"); do
    for w in 1 2; do
        "$ESPD" bench --mode encap --sas 1 --size 64,1420 --workers "$w" --duration "$SECS" --warmup 0.5 \
            --stats-interval 0 -- --lcores 0@0,1@1,2@0 --no-pci --no-huge -m 2048 --no-shconf \
            --no-telemetry --log-level error --file-prefix "fatsa-$$" \
            --vdev net_null0 --vdev net_null1 2>/dev/null >>"$out"
    done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault((r["size"], r["workers"]), []).append(r)
def med(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[0], xs[-1]
def span(xs, d=2):
    m, lo, hi = med(xs)
    return f"{m:.{d}f} ({lo:.{d}f}-{hi:.{d}f})"
print("| frame | workers | runs | Mpps, wall clock | Mpps on CPU | share of the cores | drops |")
print("|---|---|---|---|---|---|---|")
for (size, w), rs in sorted(rows.items()):
    drops = sum(sum(r["drops"].values()) for r in rs)
    print(f"| {size} B | {w} | {len(rs)} | {span([r['mpps'] for r in rs])} | "
          f"{span([r['mpps_on_cpu'] or 0 for r in rs])} | {span([100 * (r['cpu_share'] or 0) for r in rs], 0)} % | {drops} |")
print()
for size in sorted({s for s, _ in rows}):
    one, two = rows.get((size, 1)), rows.get((size, 2))
    if one and two:
        wall = med([r["mpps"] for r in two])[0] / med([r["mpps"] for r in one])[0]
        cpu = med([r["mpps_on_cpu"] or 0 for r in two])[0] / max(med([r["mpps_on_cpu"] or 0 for r in one])[0], 1e-9)
        share = min(med([r["cpu_share"] or 0 for r in one + two])[0], 1.0)
        verdict = "met" if cpu >= 1.8 else "missed"
        if share < 0.95:
            verdict = f"invalid: the workers had {100 * share:.0f} % of their cores, rerun on a quiet machine"
        print(f"- {size} B: two workers / one, wall clock {wall:.2f}x, on CPU {cpu:.2f}x "
              f"(target >= 1.8x on CPU: {verdict})")
PY
