#!/usr/bin/env bash
# dataplane.idle = "poll" vs "adaptive": what an idle worker costs and what the first packet
# after idle waits. Runs scripts/e2e-manual.sh (two espd gateways in namespaces, host-a ->
# host-b through an ESP tunnel) with IDLE_PROBE=1 in each mode, alternating (A B A B ...):
# each run measures the worker lcores' CPU over 5 idle seconds and 20 pings sent 0.5 s apart
# (each one the first packet after idle; its round trip crosses both gateways twice, and the
# request finds both workers idle). Prints the medians and min-max of each mode. Each round
# also runs the floor under the adaptive mode (dataplane/espd/examples/sleep_floor.rs): a
# thread that only sleeps, for several sleep lengths, with what one timer wake costs here.
# Usage: bash benches/idle.sh [ROUNDS]   (needs root; builds nothing: run
#        cargo build --release -p espd -p espctl --bins --example sleep_floor first)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
    for mode in poll adaptive; do
        IDLE=$mode IDLE_PROBE=1 NS_TAG="espidle$r" bash scripts/e2e-manual.sh 2>&1 | grep '^idle-probe:' | tee -a "$out"
    done
    taskset -c 1 "${CARGO_TARGET_DIR:-target}/release/examples/sleep_floor" 2 | tee -a "$out"
done
python3 - "$out" <<'PY'
import re, statistics, sys
runs, floor = {}, {}
for line in open(sys.argv[1]):
    f = dict(re.findall(r"(\w+)=([\w.]+)", line))
    if line.startswith("sleep-floor:"):
        floor.setdefault(int(f["sleep_us"]), []).append(f)
    else:
        runs.setdefault(f["mode"], []).append(f)
def span(xs):
    xs = sorted(xs)
    return f"{statistics.median(xs):.1f} ({xs[0]:.1f}-{xs[-1]:.1f})"
print("| mode | runs | worker CPU idle, % of a core (gw-a, gw-b) | ping RTT median, µs | ping RTT max, µs |")
print("|---|---|---|---|---|")
for mode, fs in runs.items():
    cpu = [float(f[k].rstrip("%")) for f in fs for k in ("cpu_gw_a", "cpu_gw_b")]
    print(f"| {mode} | {len(fs)} | {span(cpu)} | {span([float(f['median']) for f in fs])} | "
          f"{span([float(f['max']) for f in fs])} |")
print()
print("| a thread that only sleeps: sleep(µs) | runs | real period, µs | CPU, % of a core | CPU per wake, µs |")
print("|---|---|---|---|---|")
for us, fs in sorted(floor.items()):
    print(f"| {us} | {len(fs)} | {span([float(f['period_us']) for f in fs])} | "
          f"{span([float(f['cpu'].rstrip('%')) for f in fs])} | {span([float(f['per_wake_us']) for f in fs])} |")
PY
