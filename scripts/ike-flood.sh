#!/usr/bin/env bash
# A spoofed phase-1 flood against iked while real peers connect: Main Mode message-1s from
# random source addresses and ports at RATE per second (scripts/ike-flood.py) for SECONDS,
# and, two seconds in, a road warrior matching a `remote_addrs = %any` connection and a
# branch matching a configured address each bring a tunnel up (benches/ike-load as the
# initiator, Main Mode + Quick Mode with PFS). Expected: both tunnels up within 5 s of their
# start, the flood counted in `ikectl stats`, iked's resident memory bounded.
#
#   bash scripts/ike-flood.sh [RATE] [SECONDS]      (default 10000 per second, 10 s)
#
# Topology (198.18.0.0/15 only, no default route):
#   ns R: iked, veth 198.18.0.1/24; routes to the sources via 198.18.0.2
#   ns I: veth 198.18.0.2/24 (the flood) and 198.18.0.3/24 (the branch), lo 198.18.64.1 (the
#         road warrior); the spoofed sources are drawn from 198.18.128.0/17.
# Env: IKED, IKECTL, IKE_LOAD (default target/release/...), KEEP=1 keeps the logs.
# Needs root, ip, python3. Prints `ike-flood: 1 passed, 0 failed` when every check held.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-10000}
SECS=${2:-10}
IKED=${IKED:-target/release/iked}
IKECTL=${IKECTL:-target/release/ikectl}
IKE_LOAD=${IKE_LOAD:-target/release/ike-load}
for b in "$IKED" "$IKECTL" "$IKE_LOAD"; do [ -x "$b" ] || { echo "ike-flood: $b is missing (cargo build --release)" >&2; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "ike-flood: needs root (network namespaces, raw sockets)" >&2; exit 1; }

R=flood-r-$$
I=flood-i-$$
WORK=$(mktemp -d /tmp/ike-flood.XXXXXX)
DB=/dev/shm/ike-flood-$$-sadb
IKED_PID= FLOOD_PID=
cleanup() {
    [ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null
    [ -n "$IKED_PID" ] && kill "$IKED_PID" 2>/dev/null && wait "$IKED_PID" 2>/dev/null
    ip netns del "$R" 2>/dev/null || true
    ip netns del "$I" 2>/dev/null || true
    rm -f "$DB" "$DB.iked.lock"
    if [ -n "${KEEP:-}" ]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "FAIL ike-flood: $*"; tail -20 "$WORK/iked.log" | sed 's/^/    iked: /'; echo "ike-flood: 0 passed, 1 failed"; exit 1; }

ip netns add "$R"
ip netns add "$I"
ip -n "$R" link set lo up
ip -n "$I" link set lo up
ip link add veth-r netns "$R" type veth peer name veth-i netns "$I"
ip -n "$R" addr add 198.18.0.1/24 dev veth-r
ip -n "$I" addr add 198.18.0.2/24 dev veth-i
ip -n "$I" addr add 198.18.0.3/24 dev veth-i
ip -n "$I" addr add 198.18.64.1/32 dev lo
ip -n "$R" link set veth-r up
ip -n "$I" link set veth-i up
ip -n "$R" route add 198.18.64.0/18 via 198.18.0.2
ip -n "$R" route add 198.18.128.0/17 via 198.18.0.2

psk=flood-secret
cat >"$WORK/iked.toml" <<EOF
[daemon]
sadb = "$DB"
control_socket = "$WORK/iked.sock"
listen = ["198.18.0.1"]
delete_sas_on_exit = false

[daemon.log]
default = 1

# Road warriors: any address, one shared identity.
[connections.anyone]
version = 1
local_addrs = "198.18.0.1"
remote_addrs = "%any"
proposals = "aes128-sha256-modp2048"
dpd_delay = "0s"
[connections.anyone.local]
auth = "psk"
id = "198.18.0.1"
[connections.anyone.remote]
auth = "psk"
id = "@load.example"
[connections.anyone.children.rw]
local_ts = "198.19.128.0/24"
remote_ts = "198.19.0.0/18"
esp_proposals = "aes128gcm16-modp2048"
start_action = "none"

# A configured peer.
[connections.branch]
version = 1
local_addrs = "198.18.0.1"
remote_addrs = "198.18.0.3"
proposals = "aes128-sha256-modp2048"
dpd_delay = "0s"
[connections.branch.local]
auth = "psk"
id = "198.18.0.1"
[connections.branch.remote]
auth = "psk"
id = "198.18.0.3"
[connections.branch.children.net]
local_ts = "198.19.128.0/24"
remote_ts = "198.19.64.0/24"
esp_proposals = "aes128gcm16-modp2048"
start_action = "none"

[secrets.ike-flood]
secret = "$psk"
EOF
"$IKED" --check-config "$WORK/iked.toml" >"$WORK/check.out" 2>&1 || { cat "$WORK/check.out"; fail "configuration refused"; }
ip netns exec "$R" "$IKED" --config "$WORK/iked.toml" >"$WORK/iked.log" 2>&1 &
IKED_PID=$!
for _ in $(seq 50); do [ -S "$WORK/iked.sock" ] && break; sleep 0.1; done
[ -S "$WORK/iked.sock" ] || fail "iked did not start"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$IKED_PID/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$IKED_PID/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$IKED_PID/stat"; }
rss0=$(rss)
cpu0=$(cpu)

ip netns exec "$I" python3 scripts/ike-flood.py 198.18.0.1 "$RATE" "$SECS" 198.18.128.0/17 >"$WORK/flood.json" &
FLOOD_PID=$!
sleep 2
# ike-load's --timeout: a tunnel not up within 5 s counts as a failure.
peer() { # NAME SOURCE ID TS_BASE INITIATOR_TS
    ip netns exec "$I" "$IKE_LOAD" --responder 198.18.0.1 --tunnels 1 --sources 1 --source-base "$2" \
        --id "$3" --ts-base "$4" --initiator-ts "$5" --psk "$psk" --timeout 5 --label "$1" \
        >"$WORK/$1.out" 2>"$WORK/$1.err" || true
    tail -n 1 "$WORK/$1.out" >"$WORK/$1.json"
}
peer road-warrior 198.18.64.1 shared 198.19.0.1 198.19.0.0/18 &
rw=$!
peer branch 198.18.0.3 address 198.19.64.1 198.19.64.0/24 &
br=$!
wait $rw $br
wait "$FLOOD_PID" || true
FLOOD_PID=
rss1=$(rss)
peak=$(hwm)
cpu1=$(cpu)
"$IKECTL" -s "$WORK/iked.sock" --json stats >"$WORK/stats.json"

python3 - "$WORK" "$rss0" "$rss1" "$peak" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" "$RATE" <<'PY' || fail "see above"
import json, sys
work, rss0, rss1, peak, ticks, hz, rate = sys.argv[1], *map(int, sys.argv[2:])
flood = json.load(open(f"{work}/flood.json"))
print(f"flood: {flood['sent']} spoofed Main Mode message-1s in {flood['seconds']} s "
      f"({flood['rate']}/s) from {flood['sources']} source addresses; iked CPU {ticks / hz:.1f} s")
ok = True
if flood["rate"] < 0.9 * rate:
    print(f"FAIL: the flood reached {flood['rate']}/s, not {rate}/s: this run tests less than it claims")
    ok = False
for name in ("road-warrior", "branch"):
    try:
        r = json.load(open(f"{work}/{name}.json"))
    except (OSError, ValueError):
        print(f"FAIL: {name}: no report from ike-load")
        ok = False
        continue
    ms = r.get("latency_ms_max")
    print(f"flood: {name}: {r['established']} of 1 tunnel up within 5 s under the flood"
          + (f" (Main Mode + Quick Mode in {ms:.0f} ms)" if r["established"] == 1 else "")
          + (f", failures {r['failure_kinds']}" if r.get("failures") else ""))
    ok &= r["established"] == 1
print(f"flood: iked RSS {rss0} kB before, {rss1} kB after, peak {peak} kB")
if peak - rss0 > 32 * 1024:
    print("FAIL: iked grew by more than 32 MiB")
    ok = False
stats = json.load(open(f"{work}/stats.json"))
flat = {}
def walk(o, p=""):
    if isinstance(o, dict):
        for k, v in o.items():
            walk(v, f"{p}{k}.")
    elif isinstance(o, (int, float)):
        flat[p[:-1]] = o
walk(stats)
drops = {k: v for k, v in flat.items() if v and any(w in k for w in ("half", "dropped", "refused", "limit"))}
print("flood: iked's counters: " + ", ".join(f"{k} = {v}" for k, v in sorted(drops.items())))
sys.exit(0 if ok else 1)
PY
echo "ike-flood: 1 passed, 0 failed"
