#!/usr/bin/env bash
# Interop: the `ike` engine (examples/interop_driver) against strongSwan's
# charon, IKEv1 with PSK, inside a private network namespace.
#
# For each case the driver runs Main/Aggressive Mode + Quick Mode with charon
# and prints the SAs it would install; the script then reads the child SA
# keys charon derived (its log at level 4) and requires every key the driver
# derived, in both directions, to be among them byte for byte, and charon to
# have completed the Quick Mode with our SPIs. (Kernels without XFRM make
# charon fail the SA installation afterwards; that is expected and ignored.)
#
# Needs root (netns, xfrm) and strongswan-charon + swanctl (scripts/setup.sh).
# Exit 0: all cases passed; 1: a case failed; 77: prerequisites missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
charon=/usr/lib/ipsec/charon
if [ "$(id -u)" -ne 0 ] || [ ! -x "$charon" ] || ! command -v swanctl >/dev/null || ! command -v ip >/dev/null; then
    echo "SKIP: needs root, $charon, swanctl and ip" >&2
    exit 77
fi
: "${CARGO_TARGET_DIR:=$here/../../../../target}"
if [ -z "${DRIVER:-}" ]; then
    # Always (incrementally) rebuilt, so the run never uses a stale driver.
    (cd "$here/../.." && cargo build --quiet --release -p ike --example interop_driver)
fi
driver=${DRIVER:-$CARGO_TARGET_DIR/release/examples/interop_driver}

ns=ike-interop-$$
dir=$(mktemp -d /tmp/ike-interop.XXXXXX)
charon_pid=
cleanup() {
    [ -n "$charon_pid" ] && kill "$charon_pid" 2>/dev/null || true
    [ -n "$charon_pid" ] && wait "$charon_pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "logs kept in $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

# swanctl looks for credential folders beside its configuration file.
(cd "$dir" && mkdir -p x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12)
ip netns add "$ns"
ip -n "$ns" link set lo up
# An address inside charon's side of the tunnel selectors, for the route
# kernel-libipsec installs through its TUN device.
ip -n "$ns" addr add 10.200.1.1/32 dev lo

# charon on 5500/5501 so that the driver can own 500/4500 in the same netns.
cat > "$dir/strongswan.conf" <<EOF
charon {
    port = 5500
    port_nat_t = 5501
    install_routes = no
    # Aggressive Mode with PSK is refused by default (as ours is, as responder).
    i_dont_care_about_security_and_use_aggressive_mode_psk = yes
    retransmit_tries = 3
    # kernel-libipsec: ESP in user space, so SA installation works on kernels
    # without XFRM; kernel-netlink for addresses and routes.
    load = random nonce openssl hmac kdf curve25519 kernel-libipsec kernel-netlink socket-default vici
    plugins {
        vici { socket = unix://$dir/charon.vici }
    }
    syslog { }
    filelog {
        log { path = $dir/charon.log
              flush_line = yes
              default = 1
              ike = 2
              chd = 4
              enc = 1
              time_format = %T }
    }
}
EOF
export STRONGSWAN_CONF=$dir/strongswan.conf
# A private /run keeps charon's pid file away from any other charon.
ip netns exec "$ns" unshare -m sh -c "mount -t tmpfs tmpfs /run && exec $charon" &
charon_pid=$!
for _ in $(seq 50); do [ -S "$dir/charon.vici" ] && break; sleep 0.1; done
[ -S "$dir/charon.vici" ] || { echo "charon did not start"; cat "$dir/charon.log" 2>/dev/null; exit 1; }
swan() {
    local cmd=$1
    shift
    ip netns exec "$ns" swanctl "$cmd" --uri "unix://$dir/charon.vici" "$@"
}

# conf NAME IKE_PROPOSAL ESP_PROPOSAL MODE AGGRESSIVE [LOCAL_TS REMOTE_TS]
conf() {
    cat > "$dir/swanctl.conf" <<EOF
connections {
    $1 {
        version = 1
        aggressive = $5
        local_addrs = 127.0.0.1
        remote_addrs = 127.0.0.2
        remote_port = 500
        proposals = $2
        dpd_delay = 0
        local { auth = psk
                id = 127.0.0.1 }
        remote { auth = psk
                 id = 127.0.0.2 }
        children {
            child {
                local_ts = ${6:-127.0.0.1/32}
                remote_ts = ${7:-127.0.0.2/32}
                esp_proposals = $3
                mode = $4
                start_action = none
            }
        }
    }
}
secrets {
    ike-interop {
        id-a = 127.0.0.1
        id-b = 127.0.0.2
        secret = "interop-secret"
    }
}
EOF
    swan --load-all --noprompt --file "$dir/swanctl.conf" >/dev/null
}

# Compares the driver's INSTALL lines with the keys charon logged.
compare() {
    python3 - "$dir/driver.out" "$dir/charon.case.log" <<'PY'
import re, sys
driver = open(sys.argv[1]).read().splitlines()
log = open(sys.argv[2]).read().splitlines()
# strongSwan hex dumps: "... => 36 bytes @ 0x..." then "   0: CB 68 44 ...".
dumps, cur = [], None
for line in log:
    if re.search(r'=> \d+ bytes @', line):
        cur = []
        dumps.append(cur)
        continue
    m = re.search(r'\]\s+\d+: ((?:[0-9A-F]{2} ){1,16})', line)
    if m and cur is not None:
        cur.append(m.group(1).replace(' ', '').lower())
    else:
        cur = None
dumps = [''.join(d) for d in dumps]
installs = [l for l in driver if l.startswith('INSTALL ')]
if len(installs) != 2:
    sys.exit("driver installed %d SAs, want 2" % len(installs))
text = '\n'.join(log)
for line in installs:
    f = dict(kv.split('=', 1) for kv in line.split()[2:])
    for part in [f['enc'] + f['salt'], f['integ']]:
        if part and not any(part in d for d in dumps):
            sys.exit("key %s (SPI %s) not among charon's %d key dumps" % (part, f['spi'], len(dumps)))
    if f['spi'] not in text.lower():
        sys.exit("SPI %s not in charon's log" % f['spi'])
print("  both directions: SPIs and keys equal to charon's")
PY
}

pass=0
fail=0
# run NAME ROLE ENV... : one case
run() {
    local name=$1 role=$2
    shift 2
    if [ -n "${ONLY:-}" ] && ! grep -q -- "$ONLY" <<<"$name"; then return; fi
    swan --terminate --ike interop --force --timeout 2 >/dev/null 2>&1 || true
    ip -n "$ns" xfrm state flush 2>/dev/null || true
    ip -n "$ns" xfrm policy flush 2>/dev/null || true
    local start ok=1 init_pid=
    start=$(stat -c %s "$dir/charon.log")
    if [ "$role" = responder ]; then
        (sleep 1; swan --initiate --child child --timeout 10 >"$dir/initiate.out" 2>&1 || true) &
        init_pid=$!
    fi
    if ! ip netns exec "$ns" env IKE_PEER_PORT=5500 IKE_PEER_NATT_PORT=5501 IKE_ROLE="$role" "$@" \
        "$driver" >"$dir/driver.out" 2>&1; then
        ok=0
    fi
    [ -n "$init_pid" ] && wait "$init_pid"
    sleep 0.5
    tail -c +$((start + 1)) "$dir/charon.log" > "$dir/charon.case.log"
    if [ $ok = 1 ] && grep -q 'IKE_DPD=1' <<<"$*" && ! grep -q '^DPD-ACK' "$dir/driver.out"; then ok=0; fi
    if [ $ok = 1 ] && ! grep -q 'IKE_DPD=1' <<<"$*" && ! compare; then ok=0; fi
    if [ $ok = 1 ] && grep -q 'IKE_NATT=1' <<<"$*" && ! grep -q 'encap=Udp' "$dir/driver.out"; then ok=0; fi
    if [ $ok = 1 ]; then
        echo "ok   $name"
        pass=$((pass + 1))
    else
        echo "FAIL $name"
        sed 's/^/    driver: /' "$dir/driver.out"
        cp "$dir/charon.case.log" "$dir/failed-$((pass + fail)).log"
        grep -v 'CHD\]  ' "$dir/charon.case.log" | tail -n 25 | sed 's/^/    charon: /'
        fail=$((fail + 1))
    fi
}

conf interop aes256-sha256-modp2048 aes256gcm16 transport no
run "MM initiator modp2048 sha256, ESP aes256gcm16 transport" initiator IKE_GROUP=14 IKE_ESP=gcm

conf interop aes256-sha1-ecp256 aes128-sha256-ecp256 tunnel no
run "MM initiator ecp256 sha1, ESP aes128-sha256 tunnel, PFS" initiator \
    IKE_GROUP=19 IKE_HASH=sha1 IKE_ESP=cbc IKE_PFS=1 IKE_MODE=tunnel

conf interop aes256-sha512-curve25519 aes256gcm16-curve25519 transport yes
run "AM initiator curve25519 sha512, ESP aes256gcm16, PFS" initiator \
    IKE_GROUP=31 IKE_HASH=sha512 IKE_ESP=gcm IKE_PFS=1 IKE_AGGRESSIVE=1

conf interop aes256-sha384-ecp384 aes256gcm16 transport no
run "MM initiator ecp384 sha384, NAT-T forced by port mapping" initiator \
    IKE_GROUP=20 IKE_HASH=sha384 IKE_ESP=gcm IKE_NATT=1

conf interop aes256-sha256-modp2048 aes256gcm16 transport no
# kernel-libipsec only installs UDP-encapsulated tunnel-mode SAs whose
# selectors do not cover the IKE addresses: charon-initiated cases run with
# NAT-T (the port mapping makes NAT-D see a NAT) and subnets. The subnets are
# configuration only; no traffic is sent.
nets="IKE_LOCAL_TS=10.200.2.0/24 IKE_REMOTE_TS=10.200.1.0/24"
conf interop aes256-sha256-modp2048 aes256gcm16 tunnel no 10.200.1.0/24 10.200.2.0/24
run "MM responder (charon initiates) modp2048, NAT-T" responder \
    IKE_GROUP=14 IKE_ESP=gcm IKE_MODE=tunnel IKE_NATT=1 $nets

conf interop aes256-sha256-ecp256 aes128-sha256-ecp256 tunnel no 10.200.1.0/24 10.200.2.0/24
run "MM responder (charon initiates) ecp256, ESP cbc, PFS, NAT-T" responder \
    IKE_GROUP=19 IKE_ESP=cbc IKE_MODE=tunnel IKE_PFS=1 IKE_NATT=1 $nets

conf interop aes128-sha1-curve25519 aes256gcm16 tunnel yes 10.200.1.0/24 10.200.2.0/24
run "AM responder (charon initiates) curve25519 sha1, NAT-T" responder \
    IKE_GROUP=31 IKE_HASH=sha1 IKE_CIPHER=128 IKE_ESP=gcm IKE_MODE=tunnel IKE_NATT=1 IKE_AGGRESSIVE=1 $nets

conf interop aes256-sha256-modp2048 aes256gcm16 transport no
run "DPD R-U-THERE answered by charon" initiator IKE_GROUP=14 IKE_DPD=1

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
