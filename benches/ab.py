"""Summarises benches/ab.sh's raw lines ("A {json}" / "B {json}") as one markdown table."""
import collections
import json
import statistics
import sys

runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, rec = line.split(" ", 1)
    d = json.loads(rec)
    key = (d["algorithm"], d["mode"], d["size"], d["sas"])
    runs[key + (side,)].append(d)


def span(xs, fmt="{:.2f}"):
    xs = sorted(xs)
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(xs[0])}–{fmt.format(xs[-1])})"


print("| algorithm | mode | frame | SAs | A on-CPU Mpps | B on-CPU Mpps | B / A | cycles/pkt A → B | "
      "worker's share of its core A / B (min) | drops, no_mbuf A / B | verdict |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted({k[:4] for k in runs}, key=lambda k: (k[0], k[1], str(k[2]), k[3])):
    a, b = runs.get(key + ("A",), []), runs.get(key + ("B",), [])
    if not a or not b:
        continue
    ma = statistics.median(r["mpps_on_cpu"] for r in a)
    mb = statistics.median(r["mpps_on_cpu"] for r in b)
    share = (min(r["cpu_share"] for r in a), min(r["cpu_share"] for r in b))
    drops = lambda rs: max(sum(r["drops"].values()) for r in rs)
    nombuf = lambda rs: max(r["no_mbuf"] for r in rs)
    cyc = lambda rs: statistics.median(r["cycles_per_packet"] for r in rs)
    verdict = "valid" if min(share) >= 0.95 else "invalid (shared CPU)"
    print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {span([r['mpps_on_cpu'] for r in a])} | "
          f"{span([r['mpps_on_cpu'] for r in b])} | {mb / ma:.2f}× | {cyc(a):.0f} → {cyc(b):.0f} | "
          f"{share[0]:.0%} / {share[1]:.0%} | {drops(a)}, {nombuf(a)} / {drops(b)}, {nombuf(b)} | {verdict} |")
