#!/usr/bin/env python3
"""Reads a tunnel's traffic back out of Prometheus (its HTTP API) after a run at a known rate.

Usage: prom-check.py URL START END RATE PLOT_DATA

Over [START, END] (unix seconds), one point a second:
- espd's encapsulated packets per second (all lcores) and the child SAs' outbound packets
  per second summed over SAs must both have a median within 10 % of RATE, the rate the
  run sent at;
- iked_child_sas and the child-rekeyed events are read for the picture.
Writes PLOT_DATA (time from START, total out rate, one column per outbound SPI, child SAs,
rekeys so far) for gnuplot, and prints one line per check. Exits 1 on a miss.
"""
import json
import statistics
import sys
import urllib.parse
import urllib.request

url, start, end, rate, plot = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]


def query_range(promql):
    q = urllib.parse.urlencode({"query": promql, "start": start, "end": end, "step": 1})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{q}", timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def series(result):
    """{label tuple: {t: value}} of a range result."""
    return {
        tuple(sorted(s["metric"].items())): {float(t): float(v) for t, v in s["values"]} for s in result
    }


def single(promql):
    s = series(query_range(promql))
    return next(iter(s.values()), {})


ok = True
espd = single("sum(rate(espd_encap_packets_total[5s]))")
sa_total = single('sum(rate(iked_sa_packets_total{direction="out"}[5s]))')
for name, s in (("espd encap packets/s", espd), ("child SAs' outbound packets/s", sa_total)):
    # The first 5 s of a rate window are partial: leave them out.
    values = [v for t, v in sorted(s.items()) if t >= start + 6]
    if not values:
        print(f"metrics: {name}: no samples")
        ok = False
        continue
    med = statistics.median(values)
    good = abs(med - rate) <= 0.1 * rate
    ok &= good
    print(f"metrics: {name}: median {med:.1f} over {len(values)} s (sent {rate:.0f}/s){'' if good else ' MISS'}")

per_spi = {
    dict(k)["spi"]: v
    for k, v in series(query_range('sum by (spi) (rate(iked_sa_packets_total{direction="out"}[3s]))')).items()
}
children = single("iked_child_sas")
rekeys = single('iked_events_total{event="child-rekeyed"}')
r0 = min(rekeys.values(), default=0.0)
spis = sorted(per_spi, key=lambda s: min(per_spi[s]))
times = sorted(set(espd) | set(children))
with open(plot, "w") as f:
    f.write("t total " + " ".join(f"spi_{s}" for s in spis) + " child_sas rekeys\n")
    for t in times:
        cols = [sa_total.get(t, float("nan"))] + [per_spi[s].get(t, float("nan")) for s in spis]
        cols += [children.get(t, float("nan")), rekeys.get(t, r0) - r0]
        f.write(f"{t - start:.0f} " + " ".join("NaN" if v != v else f"{v:.2f}" for v in cols) + "\n")
print(f"metrics: {len(spis)} outbound SAs over the run, {max(rekeys.values(), default=r0) - r0:.0f} child rekeys")
if len(spis) < 2:
    print("metrics: no rekey seen in the per-SA series")
    ok = False
sys.exit(0 if ok else 1)
