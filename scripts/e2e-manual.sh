#!/usr/bin/env bash
# Two espd gateways in network namespaces, keyed by hand with espctl (no IKE):
#   host-a -- [gw-a espd] == ESP over the wire == [gw-b espd] -- host-b
# Checks: ping and ping6 between the hosts through the tunnel, an 8 MiB TCP transfer
# (sha256 compared), the exception path (the host stacks behind the gateways' TAPs ping
# each other's outside address, with ARP through the TAPs; a UDP datagram to port 500
# reaches a socket bound on the TAP), and per-SA counters agreeing on both gateways.
# Exits non-zero on the first failure, printing both gateways' logs.
#
# Env: ESPD, ESPCTL (binaries; default target/release), NS_TAG (namespace prefix),
#      DEMO=1 (print the counters tables for a human), KEEP=1 (leave the topology up),
#      IDLE=poll|adaptive (the gateways' dataplane.idle), IDLE_PROBE=1 (after the checks,
#      measure both espd's CPU over 5 idle seconds and 20 pings sent 0.5 s apart, each the
#      first packet after idle: one "idle-probe:" line; benches/idle.sh compares the modes).
set -euo pipefail
cd "$(dirname "$0")/.."
export NS_TAG=${NS_TAG:-espgw}
source scripts/lib/netns.sh
source scripts/lib/tunnel.sh
WORK=$(mktemp -d)
CONF_A=scripts/conf/gw-a.toml
CONF_B=scripts/conf/gw-b.toml
if [ -n "${IDLE:-}" ]; then
    for g in a b; do
        sed "s/^\[dataplane\]\$/[dataplane]\nidle = \"$IDLE\"/" "scripts/conf/gw-$g.toml" >"$WORK/gw-$g.toml"
    done
    CONF_A=$WORK/gw-a.toml
    CONF_B=$WORK/gw-b.toml
fi
DB_A=/dev/shm/espgw-demo-gw-a
DB_B=/dev/shm/espgw-demo-gw-b
SIDES="a b"
source scripts/lib/gateway.sh

# On a failure: the captures and both databases while espd runs, its logs after.
report_failure() { # running | stopped
    local cap db
    if [ "$1" = running ]; then
        for cap in "$WORK"/*.pcap; do
            [ -s "$cap" ] || continue
            echo "---- capture $(basename "$cap") (first 15 packets)"; tcpdump -nr "$cap" 2>/dev/null | head -15
        done
        for db in "$DB_A" "$DB_B"; do
            echo "---- espctl stats, $db"; "$ESPCTL" --sadb "$db" stats 2>&1 || true
            "$ESPCTL" --sadb "$db" sa list 2>&1 || true
        done
    else
        echo "---- gw-a log"; tail -40 "$WORK/gw-a.log" 2>/dev/null
        echo "---- gw-b log"; tail -40 "$WORK/gw-b.log" 2>/dev/null
    fi
}
trap cleanup EXIT

ns_up
rm -f "$DB_A" "$DB_B" "$DB_A.ports" "$DB_B.ports"

key() { python3 -c 'import os; print(os.urandom(20).hex())'; }
K_AB=$(key); K_BA=$(key); K6_AB=$(key); K6_BA=$(key)

# gateway SIDE OUT4 PEER4 OUT6 PEER6 LOCAL4 REMOTE4 LOCAL6 REMOTE6 SPI_OUT SPI_IN SPI6_OUT SPI6_IN KOUT KIN K6OUT K6IN
keying() {
    local db=$1 o4=$2 p4=$3 o6=$4 p6=$5 l4=$6 r4=$7 l6=$8 r6=$9 so=${10} si=${11} so6=${12} si6=${13} ko=${14} ki=${15} ko6=${16} ki6=${17}
    "$ESPCTL" --sadb "$db" create --sas 1024 --policies 64 --readers 8 >/dev/null
    "$ESPCTL" --sadb "$db" sa add --spi "$so" --dir out --src "$o4" --dst "$p4" --enc aes128gcm16 --enc-key "$ko" --reqid 1 >/dev/null
    "$ESPCTL" --sadb "$db" sa add --spi "$si" --dir in --src "$p4" --dst "$o4" --enc aes128gcm16 --enc-key "$ki" --reqid 1 \
        --local-ts "$l4" --remote-ts "$r4" --replay-window 128 >/dev/null
    "$ESPCTL" --sadb "$db" sa add --spi "$so6" --dir out --src "$o6" --dst "$p6" --enc aes128gcm16 --enc-key "$ko6" --reqid 2 >/dev/null
    "$ESPCTL" --sadb "$db" sa add --spi "$si6" --dir in --src "$p6" --dst "$o6" --enc aes128gcm16 --enc-key "$ki6" --reqid 2 \
        --local-ts "$l6" --remote-ts "$r6" --replay-window 128 >/dev/null
    "$ESPCTL" --sadb "$db" policy add --id 1 --dir out --src "$l4" --dst "$r4" --action protect --reqid 1 >/dev/null
    "$ESPCTL" --sadb "$db" policy add --id 2 --dir out --src "$l6" --dst "$r6" --action protect --reqid 2 >/dev/null
    "$ESPCTL" --sadb "$db" policy add --id 3 --dir in --src "$r4" --dst "$l4" --action protect --reqid 1 >/dev/null
    "$ESPCTL" --sadb "$db" policy add --id 4 --dir in --src "$r6" --dst "$l6" --action protect --reqid 2 >/dev/null
}
step "keying both gateways by hand (AES-128-GCM, v4-in-v4 and v6-in-v6 tunnels)"
keying "$DB_A" 198.18.0.1 198.18.0.2 2001:db8::1 2001:db8::2 198.18.1.0/24 198.19.1.0/24 2001:db8:1::/64 2001:db8:2::/64 \
    0x100 0x200 0x110 0x210 "$K_AB" "$K_BA" "$K6_AB" "$K6_BA"
keying "$DB_B" 198.18.0.2 198.18.0.1 2001:db8::2 2001:db8::1 198.19.1.0/24 198.18.1.0/24 2001:db8:2::/64 2001:db8:1::/64 \
    0x200 0x100 0x210 0x110 "$K_BA" "$K_AB" "$K6_BA" "$K6_AB"

step "starting espd in gw-a and gw-b"
ip netns exec "$NS_GA" "$ESPD" --config "$CONF_A" --json >"$WORK/gw-a.json" 2>"$WORK/gw-a.log" &
ESPD_A=$!
ip netns exec "$NS_GB" "$ESPD" --config "$CONF_B" --json >"$WORK/gw-b.json" 2>"$WORK/gw-b.log" &
ESPD_B=$!
# Each espd sets up its TAP's host side (IPv6, TX checksum offload off, link up, the outside
# addresses) and then publishes its ports beside its database: wait for that.
for db in "$DB_A" "$DB_B"; do
    for _ in $(seq 150); do [ -e "$db.ports" ] && break; sleep 0.1; done
    [ -e "$db.ports" ] || fail "espd with $db did not become ready (no $db.ports)"
done

step "ping host-a -> host-b through the tunnel"
# The first packets of each direction wait for ARP/ND on both gateways (espd drops and
# resolves; it does not queue): warm up, then count.
for target in 198.19.1.10 2001:db8:2::10; do
    for _ in $(seq 20); do
        ip netns exec "$NS_HA" ping -c 1 -W 0.25 "$target" >/dev/null 2>&1 && break
    done
done
ip netns exec "$NS_HA" ping -c 5 -i 0.2 -W 2 198.19.1.10 || fail "IPv4 ping through the tunnel"
step "ping6 host-a -> host-b through the tunnel"
ip netns exec "$NS_HA" ping -6 -c 5 -i 0.2 -W 2 2001:db8:2::10 || fail "IPv6 ping through the tunnel"

sa_packets() { # DB SPI -> packets counted by that gateway's SA
    "$ESPCTL" --sadb "$1" --json sa list | python3 -c "import json,sys; print(next(s['packets'] for s in json.load(sys.stdin) if s['spi']=='$2'))"
}
step "per-SA counters agree exactly after the pings (no loss possible at this rate)"
for spi in 0x00000100 0x00000200 0x00000110 0x00000210; do
    a=$(sa_packets "$DB_A" $spi); b=$(sa_packets "$DB_B" $spi)
    echo "SPI $spi: gw-a $a, gw-b $b"
    [ "$a" = "$b" ] && [ "$a" -ge 5 ] || fail "SA $spi counters disagree after the pings"
done

step "8 MiB TCP transfer host-a -> host-b"
ip netns exec "$NS_HA" tcpdump -U -ni ha0 --immediate-mode -s 128 -c 200 -w "$WORK/host-a.pcap" 2>/dev/null &
CAPS+=($!)
ip netns exec "$NS_HB" tcpdump -U -ni hb0 --immediate-mode -s 128 -c 200 -w "$WORK/host-b.pcap" 2>/dev/null &
CAPS+=($!)
sleep 0.5
TCP_TIMEOUT=60 TCP_SETTLE=0.5 tcp_transfer 8 198.19.1.10 || fail "TCP transfer"

step "exception path: gw-b's host stack pings gw-a's outside address (ARP and ICMP through both TAPs)"
ip netns exec "$NS_GB" ping -c 3 -i 0.2 -W 2 198.18.0.1 || fail "ping of the gateway's outside address"

step "exception path: a UDP datagram to gw-a's port 500 reaches a socket on its TAP"
ip netns exec "$NS_GA" timeout 10 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.1", 500))
s.settimeout(8)
data, peer = s.recvfrom(2048)
print("received", data, "from", peer)
sys.exit(0 if data == b"hello-ike" else 1)
' >"$WORK/udp500.out" &
UDPPID=$!
sleep 0.5
ip netns exec "$NS_GB" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.2", 500))
s.sendto(b"hello-ike", ("198.18.0.1", 500))
'
wait $UDPPID || fail "UDP to port 500 did not arrive: $(cat "$WORK/udp500.out")"
cat "$WORK/udp500.out"

step "per-SA counters after the transfer: what one gateway sent, the other accepted"
sleep 0.3
for spi in 0x00000100 0x00000200; do
    if [ $spi = 0x00000100 ]; then tx=$(sa_packets "$DB_A" $spi); rx=$(sa_packets "$DB_B" $spi)
    else tx=$(sa_packets "$DB_B" $spi); rx=$(sa_packets "$DB_A" $spi); fi
    echo "SPI $spi: sent $tx, accepted $rx (lost in transit: $((tx - rx)))"
    # veth + af_packet may drop a frame when a ring is full during the burst (TCP resends
    # it); anything beyond 0.5 % is a gateway fault.
    [ "$tx" -gt 1000 ] || [ $spi = 0x00000200 ] || fail "too few packets through SA $spi"
    [ "$rx" -le "$tx" ] && [ $((tx - rx)) -le $((tx / 200 + 2)) ] || fail "SA $spi counters disagree"
done

if [ -n "${DEMO:-}" ]; then
    echo; echo "== gw-a: espctl sa list"; "$ESPCTL" --sadb "$DB_A" sa list
    echo; echo "== gw-a: espctl stats"; "$ESPCTL" --sadb "$DB_A" stats
fi

if [ -n "${IDLE_PROBE:-}" ]; then
    step "idle probe (${IDLE:-poll}): both espd's CPU over 5 idle seconds, then 20 pings 0.5 s apart"
    sleep 1
    # The worker lcores' threads (rte-worker-N): what idling costs; the process as a whole
    # adds the supervising lcore and DPDK's interrupt thread.
    ticks() { cat /proc/"$1"/task/*/comm | paste - <(awk '{ print $14 + $15 }' /proc/"$1"/task/*/stat) | awk '$1 ~ /^rte-worker/ { t += $2 } END { print t + 0 }'; }
    a0=$(ticks "$ESPD_A"); b0=$(ticks "$ESPD_B"); t0=$(date +%s.%N)
    sleep 5
    a1=$(ticks "$ESPD_A"); b1=$(ticks "$ESPD_B"); t1=$(date +%s.%N)
    rtts=$(ip netns exec "$NS_HA" ping -n -c 20 -i 0.5 -W 2 198.19.1.10 | sed -n 's/.*time=\([0-9.]*\) ms/\1/p')
    python3 - "${IDLE:-poll}" "$a0" "$a1" "$b0" "$b1" "$t0" "$t1" "$(getconf CLK_TCK)" $rtts <<'PY'
import statistics, sys
mode, a0, a1, b0, b1, t0, t1, hz = sys.argv[1], *map(float, sys.argv[2:9])
rtt = sorted(float(x) * 1000 for x in sys.argv[9:])
cpu = lambda u0, u1: 100 * (u1 - u0) / hz / (t1 - t0)
assert len(rtt) == 20, f"{len(rtt)} of 20 pings answered"
print(f"idle-probe: mode={mode} cpu_gw_a={cpu(a0, a1):.1f}% cpu_gw_b={cpu(b0, b1):.1f}% "
      f"rtt_us min={rtt[0]:.0f} median={statistics.median(rtt):.0f} max={rtt[-1]:.0f}")
PY
fi

step "stopping the gateways"
kill -TERM "$ESPD_A" "$ESPD_B"
for p in "$ESPD_A" "$ESPD_B"; do wait "$p" || fail "espd exited with an error"; done
ESPD_A= ESPD_B=
python3 - "$WORK/gw-a.json" "$WORK/gw-b.json" <<'PY'
import json, sys
for f in sys.argv[1:]:
    r = json.loads(open(f).read().strip().splitlines()[-1])
    c = r["counters"]
    print(f"{f.split('/')[-1]}: encap {c.get('encap-packets', 0)}, decap {c.get('decap-packets', 0)}, "
          f"to host {c.get('exception-to-host', 0)}, from host {c.get('exception-from-host', 0)}, "
          f"drops {{ {', '.join(f'{k}: {v}' for k, v in c.items() if k.startswith('drop-'))} }}")
PY
echo "e2e: 1 passed, 0 failed"
