"""Summarises benches/ab.sh's raw lines ("SIDE ROUND {json}") as one markdown table.

One clock: the wall-clock (TSC) Mpps each run achieved. Per side and round the first run
whose worker had at least 95 % of its core is kept; the medians (min–max) are over those
kept runs; a side with none is "invalid", and its runs are shown with their share,
never rescaled."""
import collections
import json
import statistics
import sys

MIN_SHARE = 0.95
runs = collections.defaultdict(lambda: collections.defaultdict(list))  # key+side -> round -> runs
for line in open(sys.argv[1]):
    parts = line.split(" ", 2)
    if len(parts) == 3 and parts[1].isdigit():
        side, rnd, rec = parts
    else:  # the former format, "SIDE {json}": one round per line
        side, rec = line.split(" ", 1)
        rnd = str(sum(len(v) for v in runs.values()))
    d = json.loads(rec)
    key = (d["algorithm"], d["mode"], d["size"], d["sas"], d.get("rate_mpps"))
    runs[key + (side,)][rnd].append(d)


def valid(r):
    return (r.get("cpu_share") or 0) >= MIN_SHARE


def kept(by_round):
    """The first valid run of each round, and every run."""
    good = [next((r for r in rs if valid(r)), None) for rs in by_round.values()]
    return [r for r in good if r], [r for rs in by_round.values() for r in rs]


def span(xs, fmt="{:.2f}"):
    xs = sorted(xs)
    if not xs:
        return "–"
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(xs[0])}–{fmt.format(xs[-1])})"


def shares(rs):
    s = [r["cpu_share"] for r in rs if r.get("cpu_share") is not None]
    return f"{min(s):.0%}–{max(s):.0%}" if s else "?"


print("| algorithm | mode | frame | SAs | A Mpps | B Mpps | B / A | TSC cycles/pkt A → B | "
      "valid rounds A / B | share of the core, kept runs A / B | drops, no_mbuf A / B | verdict |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted({k[:5] for k in runs}, key=lambda k: (k[0], k[1], str(k[2]), k[3], k[4] or 0)):
    a_rounds, b_rounds = runs.get(key + ("A",)), runs.get(key + ("B",))
    if not a_rounds or not b_rounds:
        continue
    (a, a_all), (b, b_all) = kept(a_rounds), kept(b_rounds)
    cyc = lambda rs: f"{statistics.median(r['tsc_hz'] / (r['mpps'] * 1e6 / r.get('workers', 1)) for r in rs):.0f}" \
        if rs else "–"
    drops = lambda rs: max(sum(r["drops"].values()) for r in rs)
    nombuf = lambda rs: max(r["no_mbuf"] for r in rs)
    if a and b:
        ma, mb = statistics.median(r["mpps"] for r in a), statistics.median(r["mpps"] for r in b)
        q, verdict = f"{mb / ma:.2f}×", "valid"
    else:
        q, verdict = "–", "invalid (no run with ≥ 95 % of its core on " + ("A" if not a else "B") + ")"
    show = lambda k, al: span([r["mpps"] for r in k]) if k else f"invalid: {span([r['mpps'] for r in al])}"
    label = f"{key[2]}" + (f" at {key[4]} Mpps" if key[4] else "")
    print(f"| {key[0]} | {key[1]} | {label} | {key[3]} | {show(a, a_all)} | {show(b, b_all)} | {q} | "
          f"{cyc(a)} → {cyc(b)} | {len(a)} of {len(a_rounds)} / {len(b)} of {len(b_rounds)} | "
          f"{shares(a or a_all)} / {shares(b or b_all)} | {drops(a_all)}, {nombuf(a_all)} / "
          f"{drops(b_all)}, {nombuf(b_all)} | {verdict} |")

# Runs made with --stages: the per-stage TSC cycles per packet, medians of the kept runs.
STAGES = ("fill", "classify", "lookup", "esp", "crypto", "post", "tx")
staged = [k for k in sorted({k[:5] for k in runs}, key=lambda k: (k[0], k[1], str(k[2]), k[3], k[4] or 0))
          if any(r.get("stages") for rs in (runs.get(k + ("A",)) or {}).values() for r in rs)]
if staged:
    print()
    print("| algorithm | mode | frame | SAs | side | " + " | ".join(STAGES) + " |")
    print("|---|---|---|---|---|" + "---|" * len(STAGES))
    for key in staged:
        for side in ("A", "B"):
            k = [r for r in kept(runs.get(key + (side,)) or {})[0] if r.get("stages")]
            cells = [f"{statistics.median(r['stages'][s] for r in k):.0f}" if k else "–" for s in STAGES]
            print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {side} | " + " | ".join(cells) + " |")
