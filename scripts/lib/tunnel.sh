# shellcheck shell=bash
# How the end-to-end harnesses report, and what they check through a tunnel between the sites
# of scripts/lib/netns.sh: step, fail, die; warm_ping, ping_through, ping_sent, ping_received;
# tcp_transfer, tcp_paced; our_children and agree.
# Sourced after netns.sh, with WORK set (the transfers' scratch files: send.bin, recv.bin,
# nc.err). TCP_TIMEOUT (seconds, default 60) bounds each end of a transfer; the listener gets
# TCP_SETTLE seconds (default 0.3) before the sender connects. our_children and agree ask iked
# through scripts/lib/gateway.sh's ikectl; agree's settings are described above it.

step() { printf '== %s\n' "$*"; }
# fail: a check did not hold. die: the harness could not set up what it checks.
fail() { echo "FAIL: $*" >&2; exit 1; }
die() { echo "FATAL: $*" >&2; exit 1; }

# warm_ping NS TARGET [TRIES]: one ping at a time (0.3 s each, 30 tries unless told) until
# one is answered; the first packets wait for ARP/ND (espd drops and resolves, it does not
# queue) or raise the acquire of a trap. Fails when none is answered.
warm_ping() {
    for _ in $(seq "${3:-30}"); do ip netns exec "$1" ping -c 1 -W 0.3 "$2" >/dev/null 2>&1 && return 0; done
    return 1
}
# ping_through NS TARGET: warm up (20 tries), then 5 pings 0.2 s apart, every one answered.
ping_through() {
    warm_ping "$1" "$2" 20 || true
    ip netns exec "$1" ping -c 5 -i 0.2 -W 2 "$2" >/dev/null
}

# ping_sent FILE, ping_received FILE: the counts of the summary of a ping's output in FILE.
ping_sent() { sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$1"; }
ping_received() { sed -n 's/.* \([0-9]*\) received.*/\1/p' "$1"; }

TCP_TIMEOUT=${TCP_TIMEOUT:-60}
TCP_SETTLE=${TCP_SETTLE:-0.3}
# tcp_through MIB TARGET SENDER...: MIB MiB of random bytes from host-a to port 5001 of TARGET,
# received by nc on host-b, sent by SENDER... run on host-a with the bytes on its standard
# input; the sha256 of both ends compared. Prints "MIB MiB to TARGET: sha256 equal", or says
# why not on standard error and returns 1.
tcp_through() {
    local mib=$1 target=$2 l
    shift 2
    head -c $((mib << 20)) /dev/urandom >"$WORK/send.bin"
    ip netns exec "$NS_HB" timeout "$TCP_TIMEOUT" nc -l -N "$target" 5001 >"$WORK/recv.bin" &
    l=$!
    sleep "$TCP_SETTLE"
    if ! ip netns exec "$NS_HA" timeout "$TCP_TIMEOUT" "$@" <"$WORK/send.bin" 2>"$WORK/nc.err"; then
        echo "TCP sender: $(cat "$WORK/nc.err")" >&2
        kill "$l" 2>/dev/null
        return 1
    fi
    wait "$l" || { echo "TCP receiver" >&2; return 1; }
    [ "$(sha256sum <"$WORK/send.bin")" = "$(sha256sum <"$WORK/recv.bin")" ] \
        || { echo "the transfer arrived corrupted or short" >&2; return 1; }
    echo "$mib MiB to $target: sha256 equal"
}
# tcp_transfer MIB TARGET: tcp_through with nc sending as fast as it can.
tcp_transfer() { tcp_through "$1" "$2" nc -N "$2" 5001; }
# tcp_paced MIB TARGET [MS]: tcp_through with the sender writing 16 KiB every MS milliseconds
# (default 20; 16 KiB / MS at most, the machine may make it less), printing the rate it reached.
tcp_paced() { tcp_through "$1" "$2" python3 -c "$PACED_SENDER" "$2" "${3:-20}"; }
PACED_SENDER='
import socket, sys, time
data = sys.stdin.buffer.read()
pause = int(sys.argv[2]) / 1000
s = socket.create_connection((sys.argv[1], 5001))
t0 = time.monotonic()
for i in range(0, len(data), 16384):
    s.sendall(data[i:i + 16384])
    time.sleep(pause)
s.shutdown(socket.SHUT_WR)
s.recv(1)
took = time.monotonic() - t0
s.close()
print(f"paced sender: {len(data) >> 20} MiB in {took:.1f} s, {len(data) / took / 1e6:.1f} MB/s")'

# our_children [SIDE]: the installed child SA pairs of our iked (of gw-SIDE with two gateways),
# one a line: "spi_in spi_out packets_in packets_out encr keysize integ encap|plain bytes_in
# bytes_out".
our_children() {
    gw_ikectl "${1:-}" --json list-sas | python3 -c '
import json, sys
for ike in json.loads(sys.stdin.read())["ike_sas"]:
    for c in ike["child-sas"]:
        if c["state"] == "INSTALLED":
            print(c["spi-in"], c["spi-out"], c["packets-in"], c["packets-out"], c["encr-alg"], c["encr-keysize"], c.get("integ-alg", "-"), "encap" if c["encap"] else "plain", c["bytes-in"], c["bytes-out"])'
}

# agree: both ends list mirrored child SA pairs, what one sent the other received.
# With two gateways of ours (SIDES set, scripts/lib/gateway.sh) the ends are gw-a and gw-b:
# every pair of gw-a has its mirror on gw-b, and a receiver may miss what the veth +
# af_packet rings dropped under TCP bursts (TCP resent it; a gateway fault loses far more).
# The listings are taken one after the other: a rekey or re-establishment that lands between
# them shows one side's new pair and the other's old one, so with AGREE_TRIES above 1 the pair
# of listings is taken again (after both list a pair, up to 3 s), 0.3 s apart, until one agrees.
# Against a peer the ends are our iked and the script's their_children (the same format): one
# pair each, the same algorithms, ESP carried as ESP_WIRE (encap or plain) on both, and
# packet and byte counters equal (called after pings only: the peer's userspace ESP drops
# under TCP bursts). Prints each pair checked; returns 1 on a disagreement.
agree() {
    local a b try=1 tries=${AGREE_TRIES:-1}
    while :; do
        for _ in $(seq 30); do
            if [ -n "${SIDES:-}" ]; then a=$(our_children a); b=$(our_children b)
            else a=$(our_children); b=$(their_children); fi
            [ "$tries" = 1 ] || { [ -n "$a" ] && [ -n "$b" ]; } && break
            sleep 0.1
        done
        [ "$try" -ge "$tries" ] && break
        agree_check "$a" "$b" >/dev/null 2>&1 && break
        try=$((try + 1))
        sleep 0.3
    done
    agree_check "$a" "$b"
}
agree_check() { # LISTING_A LISTING_B
    python3 - "$1" "$2" "${SIDES:+ours}" "${ESP_WIRE:-}" <<'PY'
import sys
ours_both, wire = sys.argv[3] == "ours", sys.argv[4]
a = [l.split() for l in sys.argv[1].splitlines() if l.strip()]
b = [l.split() for l in sys.argv[2].splitlines() if l.strip()]
if ours_both:
    assert a and b, f"no installed child SA: a={a} b={b}"
    mirror = {p[0]: p for p in b}
    for o in a:
        m = mirror.get(o[1])
        assert m is not None, f"gw-b has no inbound SA {o[1]} (gw-a's outbound): {b}"
        assert m[1] == o[0], f"gw-b's SA {o[1]} sends on {m[1]}, gw-a receives on {o[0]}"
        pin, pout, min_, mout = int(o[2]), int(o[3]), int(m[2]), int(m[3])
        for sent, got, d in ((pout, min_, "a->b"), (mout, pin, "b->a")):
            assert got <= sent and sent - got <= sent // 20 + 2, f"{d}: sent {sent}, received {got} ({o[0]}/{o[1]})"
        print(f"SA pair {o[0]}/{o[1]}: a->b sent {pout} received {min_} (lost in transit: {pout - min_}); "
              f"b->a sent {mout} received {pin} (lost in transit: {mout - pin})")
    sys.exit(0)
assert len(a) == 1 and len(b) == 1, f"want one pair each: ours {a}, theirs {b}"
o, t = a[0], b[0]
assert o[0] == t[1] and o[1] == t[0], f"SPIs not mirrored: ours in {o[0]} out {o[1]}, theirs in {t[0]} out {t[1]}"
assert (o[4], o[5]) == (t[4], t[5]), f"encryption differs: ours {o[4]}-{o[5]}, theirs {t[4]}-{t[5]}"
oi, ti = (o[6] if o[6] != "-" else None), (t[6] if t[6] != "-" else None)
assert oi == ti, f"integrity differs: {oi} vs {ti}"
assert o[7] == t[7] == wire, f"ESP should be {wire} on both: ours {o[7]}, theirs {t[7]}"
for sent, got, d in ((int(o[3]), int(t[2]), "ours->theirs"), (int(t[3]), int(o[2]), "theirs->ours")):
    assert got == sent and sent > 0, f"{d}: sent {sent}, received {got}"
# Bytes as strongSwan counts them (the protected inner packets), both directions.
for sent, got, d in ((int(o[9]), int(t[8]), "ours->theirs"), (int(t[9]), int(o[8]), "theirs->ours")):
    assert got == sent and sent > 0, f"{d}: {sent} bytes sent, {got} received"
print(f"    SPIs {o[0]}/{o[1]} mirrored, {o[4]}-{o[5]} {oi or ''}, {'UDP-encapsulated' if wire == 'encap' else 'plain ESP'}; "
      f"packets ours->theirs {o[3]}/{t[2]}, theirs->ours {t[3]}/{o[2]}; bytes {o[9]}/{t[8]}, {t[9]}/{o[8]}")
PY
}
