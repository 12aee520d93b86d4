#!/usr/bin/env bash
# Our gateway against strongSwan, in network namespaces:
#   host-a -- [gw-a: espd + iked] == wire 198.18.0.0/24, 2001:db8::/64 == [gw-b: charon] -- host-b
# gw-b runs Debian's charon with kernel-libipsec (userspace ESP over a TUN device; this
# kernel has no ESP). strongSwan 5.9.8's libipsec only speaks UDP-encapsulated ESP and fakes
# NAT-D so that both ends believe in a NAT: every case exercises our NAT-T (RFC 3947/3948).
#
# Usage: scripts/interop.sh [--quick | --demo | --full] [--peer 5|6] [--only REGEX]
#   --full   the whole matrix (default): every IKE proposal, ESP proposal, PFS or not, Main and
#            Aggressive Mode, IPv4 and IPv6, tunnel and transport, each with us and with
#            strongSwan initiating; then the key-log decryption with tshark, the ike-scan
#            probes, the lifecycle cases and a real NAT (nftables masquerade) between the
#            gateways: in front of strongSwan with its mapping restarted mid-transfer (our
#            ESP SAs must follow the new port), then in front of us.
#            The certificate cases (scripts/lib/pki.sh): RSA-2048/3072 and ECDSA P-256/P-384
#            with each initiator, Aggressive Mode, tshark on a certificate exchange, and a
#            revoked certificate refused by each side
#   --quick  a representative subset (CI), with the wire checks, a rekey by each side, an
#            ISAKMP SA re-keyed by strongSwan, both NAT cases and two certificate cases
#   --demo   the main job: one tunnel with the shipped configs (scripts/conf/iked-demo.toml,
#            scripts/conf/swanctl-demo.conf), traffic both ways, the tables printed
#   --peer 6 against strongSwan 6.0 (Debian 13, unpacked into a private root by
#            scripts/setup-strongswan6.sh) with kernel-libipsec's raw_esp: no NAT is faked, so
#            ESP travels as plain IP protocol 50 and IKE stays on port 500 (the NAT case still
#            floats). Default: --peer 5, Debian 12's strongSwan 5.9.8, UDP-encapsulated only.
# Per case: ping and a TCP transfer through the tunnel (sha256 compared), `ikectl list-sas`
# and `swanctl --list-sas` agree on SPIs, algorithms and packet counters; Delete from the
# initiator clears both sides. A failing case prints both daemons' logs and the decoded wire.
#
# Env: ESPD, ESPCTL, IKED, IKECTL (default target/release), NS_TAG, KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=full
ONLY=
PEER=5
while [ $# -gt 0 ]; do
    case $1 in
    --quick) MODE=quick ;;
    --demo) MODE=demo ;;
    --full) MODE=full ;;
    --only) ONLY=$2; shift ;;
    --peer) PEER=$2; shift ;;
    *) echo "usage: $0 [--quick|--demo|--full] [--peer 5|6] [--only REGEX]" >&2; exit 2 ;;
    esac
    shift
done
CHARON=/usr/lib/ipsec/charon
case $PEER in
5)  # Debian 12's charon as installed; its userspace ESP forces UDP encapsulation.
    CHARON_EXEC="exec $CHARON"
    SWAN_PLUGINS="random nonce openssl hmac kdf gcm curve25519 pem pkcs1 pkcs8 x509 revocation constraints kernel-libipsec kernel-netlink socket-default vici updown"
    ESP_WIRE=encap LIBIPSEC_RAW_ESP="" ;;
6)  # strongSwan 6.0 from its private root: its loader and libraries, its plugin directory
    # mounted over /usr/lib/ipsec in charon's own mount namespace. OpenSSL provides HMAC,
    # GCM and X25519 there (6.0 ships no separate hmac/gcm/curve25519 plugins). pem, pkcs1,
    # pkcs8, x509, revocation and constraints: the certificate cases, as with 5.9.8.
    SWAN6_ROOT=$(bash scripts/setup-strongswan6.sh)
    CHARON_EXEC="mount --bind $SWAN6_ROOT/usr/lib/ipsec /usr/lib/ipsec \
        && exec $SWAN6_ROOT/usr/lib64/ld-linux-x86-64.so.2 --library-path $SWAN6_ROOT/usr/lib/x86_64-linux-gnu $CHARON"
    SWAN_PLUGINS="random nonce openssl pem pkcs1 pkcs8 x509 revocation constraints kernel-libipsec kernel-netlink socket-default vici"
    ESP_WIRE=plain LIBIPSEC_RAW_ESP="raw_esp = yes" ;;
*) echo "--peer takes 5 or 6" >&2; exit 2 ;;
esac
export NS_TAG=${NS_TAG:-swan$$}
source scripts/lib/netns.sh
source scripts/lib/tunnel.sh
source scripts/lib/pki.sh
WORK=$(mktemp -d /tmp/interop.XXXXXX)
DB_A=/dev/shm/espgw-$NS_TAG-a
export STRONGSWAN_CONF=$WORK/strongswan.conf
source scripts/lib/gateway.sh
PASS=0 FAIL=0
RESULTS=()
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "needs root"
[ -x "$CHARON" ] || die "$CHARON missing (scripts/setup.sh installs strongswan-charon)"

# ---------------------------------------------------------------------------------------
# Topology: the namespaces of scripts/lib/netns.sh; gw-b becomes an ordinary Linux router
# (charon's libipsec routes cleartext through its TUN device).
gw_b_host
ip netns exec "$NS_GB" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$NS_GB" sysctl -qw net.ipv6.conf.all.forwarding=1

# --- strongSwan on gw-b --------------------------------------------------------------------
(cd "$WORK" && mkdir -p x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12)
# The certificates of both sides (scripts/lib/pki.sh): gw-b's go where swanctl --load-all
# reads them (the swanctl.conf's directory), gw-a's stay in $WORK/pki/a, iked's swanctl_dir.
if [ "$MODE" != demo ]; then
    pki_make "$WORK/pki"
    for d in x509 x509ca x509crl rsa ecdsa; do cp "$WORK/pki/b/$d/"* "$WORK/$d/"; done
fi
cat >"$WORK/strongswan.conf" <<EOF
charon {
    # Aggressive Mode with PSK as responder is refused unless this is set.
    i_dont_care_about_security_and_use_aggressive_mode_psk = yes
    retransmit_tries = 3
    install_routes = yes
    load_modular = no
    load = $SWAN_PLUGINS
    plugins {
        vici { socket = unix://$WORK/charon.vici }
        kernel-libipsec { allow_peer_ts = yes
                          $LIBIPSEC_RAW_ESP }
    }
    syslog { }
    filelog {
        log { path = $WORK/charon.log
              flush_line = yes
              default = 1
              ike = 2
              knl = 2
              cfg = 1
              esp = 1
              time_format = %T }
        # The peer's view of every secret (SKEYID*, g^xy, the phase-1 and ESP keys), for
        # secrets_check: none of them may appear in anything our gateway writes.
        keys { path = $WORK/charon-keys.log
               flush_line = yes
               default = 0
               ike = 4
               chd = 4 }
    }
}
EOF
start_charon() {
    # CHARON_EXEC runs charon with `exec`: $PEER_PID must be charon itself, not the shell (the DPD
    # cases SIGKILL it).
    ip netns exec "$NS_GB" unshare -m --propagation private sh -c "mount -t tmpfs tmpfs /run && $CHARON_EXEC" \
        >>"$WORK/charon.out" 2>&1 &
    PEER_PID=$!
    for _ in $(seq 50); do [ -S "$WORK/charon.vici" ] && return 0; sleep 0.1; done
    cat "$WORK/charon.log" "$WORK/charon.out" 2>/dev/null | tail -20
    die "charon did not start"
}
swan() { ip netns exec "$NS_GB" swanctl "$@" --uri "unix://$WORK/charon.vici"; }

# --- our gateway on gw-a ---------------------------------------------------------------------
espd_conf

# --- configuration of one case ---------------------------------------------------------------
# conf FAMILY IKE_PROPOSAL ESP_PROPOSAL MODE AGGRESSIVE [EXTRA_SWAN_CONN] [EXTRA_SWAN_CHILD] [EXTRA_IKED_CONN] [EXTRA_IKED_CHILD]
# PSK unless CERT_A and CERT_B name certificate kinds (scripts/lib/pki.sh: rsa2048, p256, ...)
# for gw-a (us) and gw-b (strongSwan): then both authenticate by signatures, with the
# certificates' subjects as IDs, or their dNSNames when CERT_ID=fqdn.
conf() {
    local fam=$1 ike=$2 esp=$3 mode=$4 aggr=$5
    local a b na nb
    local auth_b="local { auth = psk
                id = gw-b@example.net }
        remote { auth = psk
                 id = gw-a@example.net }"
    local IKED_CERT="" IKED_SWANCTL_DIR="$WORK/pki/a" IKED_LOCAL_ID="" IKED_REMOTE_ID
    if [ -n "${CERT_A:-}" ]; then
        local id_a id_b
        local cert_b=${CERT_B:?CERT_A set without CERT_B}
        id_a=$(pki_dn a "$CERT_A") id_b=$(pki_dn b "$cert_b")
        [ "${CERT_ID:-dn}" = fqdn ] && id_a=gw-a.example.net id_b=gw-b.example.net IKED_LOCAL_ID=gw-a.example.net
        IKED_CERT=gw-a-$CERT_A.pem IKED_REMOTE_ID=$id_b
        auth_b="local { auth = pubkey
                certs = gw-b-$cert_b.pem
                id = \"$id_b\" }
        remote { auth = pubkey
                 id = \"$id_a\" }"
    fi
    if [ "$fam" = 6 ]; then a=2001:db8::1 b=2001:db8::2 na=2001:db8:1::/64 nb=2001:db8:2::/64
    else a=198.18.0.1 b=198.18.0.2 na=198.18.1.0/24 nb=198.19.1.0/24; fi
    local lts_a=$na rts_a=$nb lts_b=$nb rts_b=$na
    if [ "$mode" = transport ]; then lts_a=dynamic rts_a=dynamic lts_b=dynamic rts_b=dynamic; fi
    cat >"$WORK/swanctl.conf" <<EOF
connections {
    ours {
        version = 1
        aggressive = $aggr
        local_addrs = $b
        remote_addrs = $a
        proposals = $ike
        ${6:-}
        $auth_b
        children {
            net {
                local_ts = $lts_b
                remote_ts = $rts_b
                esp_proposals = $esp
                mode = $mode
                start_action = none
                ${7:-}
            }
        }
    }
}
secrets {
    ike-ours {
        id-a = gw-a@example.net
        id-b = gw-b@example.net
        secret = "interop-psk-$NS_TAG"
    }
}
EOF
    iked_conf "$a" "$b" "$ike" "$aggr" "$lts_a" "$rts_a" "$esp" "$mode" "${8:-}" "${9:-}"
    # A case may rewrite either side's configuration (CONF_EDIT names a function).
    if [ -n "${CONF_EDIT:-}" ]; then "$CONF_EDIT"; fi
    "$IKED" --check-config "$WORK/iked.toml" >/dev/null || die "our config for this case is invalid"
    swan --load-all --noprompt --file "$WORK/swanctl.conf" >/dev/null || die "swanctl --load-all"
    if [ -n "$IKED_PID" ]; then ikectl load-all >/dev/null || die "ikectl load-all"; fi
}

# --- checks -------------------------------------------------------------------------------------
# charon's child SAs in our_children's format (scripts/lib/tunnel.sh), from
# `swanctl --list-sas --raw` (vici's own names).
their_children() {
    swan --list-sas --raw 2>/dev/null | python3 -c '
import re, sys
text = sys.stdin.read()
# --raw prints vici messages as nested {key=value ...}; child SAs carry spi-in/spi-out.
for m in re.finditer(r"\{([^{}]*spi-in=[^{}]*)\}", text):
    f = dict(re.findall(r"([a-z-]+)=([^ }]*)", m.group(1)))
    if f.get("state") != "INSTALLED":
        continue
    print(f["spi-in"], f["spi-out"], f.get("packets-in", "0"), f.get("packets-out", "0"),
          f.get("encr-alg", "-"), f.get("encr-keysize", "-"), f.get("integ-alg", "-"), "encap" if f.get("encap") == "yes" else "plain",
          f.get("bytes-in", "0"), f.get("bytes-out", "0"))'
}
wait_up() { # SECONDS
    for _ in $(seq $(($1 * 10))); do
        [ -n "$(our_children)" ] && [ -n "$(their_children)" ] && return 0
        sleep 0.1
    done
    return 1
}
wait_down() {
    for _ in $(seq 50); do
        [ -z "$(our_children)" ] && [ -z "$(their_children)" ] && return 0
        sleep 0.1
    done
    return 1
}
explain_failure() {
    echo "    ---- ikectl list-sas"; ikectl list-sas 2>&1 | sed 's/^/    /'
    echo "    ---- swanctl --list-sas"; swan --list-sas 2>&1 | sed 's/^/    /'
    echo "    ---- iked log (last 25)"; tail -25 "$WORK/iked.log" | sed 's/^/    /'
    echo "    ---- charon log (last 25)"; tail -25 "$WORK/charon.log" | sed 's/^/    /'
    if [ -s "$WORK/case.pcap" ]; then
        echo "    ---- the wire, decoded (last 20 packets)"
        tshark -r "$WORK/case.pcap" 2>/dev/null | tail -20 | sed 's/^/    /'
    fi
}

# case NAME INITIATOR(us|them) FAMILY IKE ESP MODE AGGRESSIVE [extra conf args...]
case_run() {
    local name=$1 init=$2 fam=$3 ike=$4 esp=$5 mode=$6 aggr=$7
    shift 7
    [ -n "$ONLY" ] && ! grep -Eq -- "$ONLY" <<<"$name" && return 0
    local ok=1 why="" logpos
    conf "$fam" "$ike" "$esp" "$mode" "$aggr" "$@"
    logpos=$(stat -c %s "$WORK/charon.log")
    : >"$WORK/case.pcap"
    ip netns exec "$NS_GB" tcpdump -U -ni out0 --immediate-mode -w "$WORK/case.pcap" udp or esp 2>/dev/null &
    CAP_PID=$!
    sleep 0.3
    if [ "$init" = us ]; then ikectl initiate --child net >/dev/null || true
    else swan --initiate --child net --timeout 10 >/dev/null 2>&1 || true; fi
    if ! wait_up 15; then ok=0 why="no tunnel"; fi
    local target=198.19.1.10 from=$NS_HA
    [ "$fam" = 6 ] && target=2001:db8:2::10
    if [ "$mode" = transport ]; then from=$NS_GA target=198.18.0.2; [ "$fam" = 6 ] && target=2001:db8::2; fi
    if [ $ok = 1 ] && ! ping_through "$from" "$target"; then ok=0 why="ping"; fi
    sleep 0.3
    local line=""
    if [ $ok = 1 ]; then line=$(agree 2>&1) || { ok=0 why="list-sas disagree: $line"; }; our_output; fi
    # A case may check more of what both sides list (CASE_CHECK names a function).
    if [ $ok = 1 ] && [ -n "${CASE_CHECK:-}" ]; then
        local more
        more=$("$CASE_CHECK" 2>&1) || { ok=0 why="$more"; }
        line+=$'\n'"$more"
    fi
    if [ $ok = 1 ] && [ "$mode" = tunnel ] && ! tcp_transfer 4 "$target" >/dev/null; then ok=0 why="TCP transfer"; fi
    # The initiator deletes; the other side must follow (Delete honoured both ways over the matrix).
    if [ "$init" = us ]; then ikectl terminate --ike ours >/dev/null 2>&1 || true
    else swan --terminate --ike ours --timeout 5 >/dev/null 2>&1 || true; fi
    if [ $ok = 1 ] && ! wait_down; then ok=0 why="Delete not honoured"; fi
    kill "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null; CAP_PID=
    # strongSwan's kernel-libipsec (5.9.8 and 6.0) has no transport mode: the Quick Mode
    # completes (NAT-OA exchanged when encapsulated) and charon then fails to install. That
    # is the peer's limit, not a failure of ours; our transport mode is proven against our
    # own gateway (e2e-ike.sh).
    # Likewise kernel-libipsec has no Extended Sequence Numbers: charon selects (or accepts)
    # the ESN transform, as its log says, and then fails to install the SAs.
    local peer_log limit=""
    peer_log=$(tail -c +$((logpos + 1)) "$WORK/charon.log")
    if [ $ok = 1 ]; then :
    elif [ "$mode" = transport ] && grep -q "IPsec SA: unsupported mode" <<<"$peer_log"; then
        limit="Quick Mode completed, kernel-libipsec refuses transport-mode SAs"
        [ "$ESP_WIRE" = encap ] && limit="Quick Mode (with NAT-OA) completed, kernel-libipsec refuses transport-mode SAs"
    elif [[ $esp == *-esn* ]] && grep -q "IPsec SA: ESN not supported" <<<"$peer_log" \
        && grep -Eq "(selected|received) proposal.*ESP:.*/EXT_SEQ" <<<"$peer_log"; then
        limit="ESN transform agreed (charon: $(grep -Eo "ESP:[A-Z0-9_/-]*EXT_SEQ" <<<"$peer_log" | head -1)), kernel-libipsec refuses ESN SAs"
    fi
    if [ -n "$limit" ] && ikectl list-sas >/dev/null; then
        echo "skip $name: peer limit: $limit"
        RESULTS+=("| $name | peer limit: $limit |")
        ikectl terminate --ike ours >/dev/null 2>&1 || true
        swan --terminate --ike ours --force --timeout 2 >/dev/null 2>&1 || true
        return 0
    fi
    if [ $ok = 1 ]; then
        echo "ok   $name"; [ -n "$line" ] && echo "$line"
        PASS=$((PASS + 1)); RESULTS+=("| $name | pass |")
    else
        echo "FAIL $name: $why"; explain_failure
        FAIL=$((FAIL + 1)); RESULTS+=("| $name | **fail**: $why |")
        # A failed case may leave SAs behind: clear both sides.
        ikectl terminate --ike ours >/dev/null 2>&1 || true
        swan --terminate --ike ours --force --timeout 2 >/dev/null 2>&1 || true
    fi
}

# Our iked logs at trace level (4) in every subsystem: secrets_case searches these logs.
IKED_LOG=$'default = 4\ndmn = 4\nike = 4\ncfg = 4\nnet = 4\nenc = 4\nknl = 4'
# What our tools print while a tunnel is up, for secrets_case.
our_output() {
    { ikectl --json list-sas; ikectl list-sas; ikectl stats; ikectl --json stats
      "$ESPCTL" --sadb "$DB_A" --json sa list; "$ESPCTL" --sadb "$DB_A" sa list
      "$ESPCTL" --sadb "$DB_A" --json stats; } >>"$WORK/ours.out" 2>&1 || true
}
# The peer's secrets (its level-4 log) against everything ours wrote: the iked and espd logs
# and the tools' output. scripts/lib/secrets-check.py has the details and a positive control.
secrets_case() {
    local name="secrets: strongSwan's SKEYID*, g^xy, phase-1 and ESP keys in none of our logs" line
    [ -n "$ONLY" ] && ! grep -Eq -- "$ONLY" <<<"$name" && return 0
    if line=$(python3 scripts/lib/secrets-check.py "$WORK/charon-keys.log" "$WORK/keylog" "interop-psk-$NS_TAG" \
        "$WORK/iked.log" "$WORK/espd.log" "$WORK/ours.out" 2>&1); then
        echo "ok   $name"; echo "    $line"; PASS=$((PASS + 1)); RESULTS+=("| $name | pass: ${line#secrets: } |")
    else
        echo "FAIL $name: $line"; FAIL=$((FAIL + 1)); RESULTS+=("| $name | **fail**: $line |")
    fi
}

step "starting espd, iked (gw-a) and charon (gw-b)"
start_charon
echo "peer: $(sed -n 's/.*Starting IKE charon daemon (\(strongSwan [^,]*\),.*/\1/p' "$WORK/charon.log" | head -1), ESP ${ESP_WIRE/encap/in UDP (RFC 3948)}"
start_espd
conf 4 aes128-sha256-modp2048 aes128gcm16-modp2048 tunnel no
start_iked

if [ "$MODE" = demo ]; then
    cp scripts/conf/swanctl-demo.conf "$WORK/swanctl.conf"
    sed -e "s|@SADB@|$DB_A|" -e "s|@SOCKET@|$WORK/iked.sock|" scripts/conf/iked-demo.toml >"$WORK/iked.toml"
    swan --load-all --noprompt --file "$WORK/swanctl.conf" >/dev/null
    ikectl load-all
    step "iked initiates: Main Mode, PSK, AES-GCM-128 with PFS (modp2048), NAT-T"
    ikectl initiate --child net
    wait_up 15 || { explain_failure; die "no tunnel"; }
    step "ping both ways, 8 MiB TCP host-a -> host-b"
    ping_through "$NS_HA" 198.19.1.10 || die "ping host-a -> host-b"
    ping_through "$NS_HB" 198.18.1.10 || die "ping host-b -> host-a"
    sleep 0.3
    step "both sides agree on SPIs, algorithms and counters"
    agree
    step "8 MiB TCP host-a -> host-b"
    tcp_transfer 8 198.19.1.10 >/dev/null || die "TCP transfer"
    echo "8 MiB: sha256 equal"
    echo; step "ikectl list-sas (our gateway)"; ikectl list-sas
    echo; step "swanctl --list-sas (strongSwan)"; swan --list-sas
    echo; step "ikectl stats"; ikectl stats
    echo; step "espctl stats (dataplane counters)"; "$ESPCTL" --sadb "$DB_A" stats
    echo "demo: tunnel with strongSwan up, traffic both ways, 1 passed, 0 failed"
    exit 0
fi

# --- independent checks of the wire ----------------------------------------------------------
# tshark decrypts the capture of a case with our key log (Wireshark's IKEv1 decryption table
# and ESP SA table, written by iked --keylog): every encrypted ISAKMP message and every ESP
# packet must decrypt and (ESP) pass tshark's own ICV check: a third implementation confirms
# our key derivation and our encryption. The outer headers show how ESP travelled: in UDP
# (port 4500) against 5.9.8, as IP protocol 50 with IKE left on port 500 against 6.0.
# tshark_check [certs]: with `certs` (a signature-authenticated case), the decrypted MM5 and
# MM6 must each show the ID, CERT (X.509, encoding 4) and SIG payloads, the certificate
# dissected down to its subject, and the names tshark read are printed.
tshark_check() {
    local args=() line
    while IFS= read -r line; do args+=(-o "uat:ikev1_decryption_table:$line"); done <"$WORK/keylog/ikev1_decryption_table"
    while IFS= read -r line; do args+=(-o "uat:esp_sa:$line"); done <"$WORK/keylog/esp_sa"
    args+=(-o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE)
    tshark -r "$WORK/case.pcap" "${args[@]}" -T fields -e frame.number -e isakmp.exchangetype -e isakmp.flag_e \
        -e isakmp.typepayload -e esp.spi -e esp.icv_good -e icmp.type -e tcp.srcport -e udp.dstport \
        -e isakmp.id.type -e isakmp.cert.encoding -e x509sat.printableString -e x509sat.uTF8String \
        2>/dev/null >"$WORK/tshark.txt"
    python3 - "$WORK/tshark.txt" "$ESP_WIRE" "${1:-}" <<'PY'
import sys
wire, certs = sys.argv[2], sys.argv[3] == "certs"
enc = dec = esp = good = inner = esp_udp = ike = ike_4500 = 0
signed = []
for line in open(sys.argv[1]):
    f = (line.rstrip("\n").split("\t") + [""] * 13)[:13]
    _, exch, flag_e, payloads, spi, icv, icmp, tcp, udp, id_type, cert_enc, printable, utf8 = f
    if exch:
        ike += 1
        ike_4500 += "4500" in udp.split(",")
    if exch and flag_e == "1":
        enc += 1
        # Every encrypted IKEv1 message carries HASH (8), or SIG (9) in MM5/MM6 and AM3
        # with signatures; only a decrypted one shows it.
        types = payloads.split(",")
        dec += "8" in types or "9" in types
        if {"5", "6", "9"} <= set(types):
            names = sorted({n for n in (printable + "," + utf8).split(",") if n.startswith("gw-")})
            signed.append((id_type, cert_enc.split(",")[0], names))
    if spi:
        esp += 1
        good += icv == "1"
        inner += bool(icmp or tcp)  # the decrypted inner packet was dissected
        esp_udp += bool(udp)
print(f"    tshark with our key log: {dec}/{enc} encrypted ISAKMP messages decrypted, "
      f"{good}/{esp} ESP packets decrypted with a good ICV ({inner} inner packets dissected)")
print(f"    outer headers: {esp_udp}/{esp} ESP packets in UDP, {ike_4500}/{ike} ISAKMP messages on port 4500")
assert enc >= 3 and dec == enc, "ISAKMP not decrypted"
assert esp > 0 and good == esp and inner == esp, "ESP not decrypted"
if wire == "encap":
    assert esp_udp == esp and ike_4500 > 0, "ESP should travel in UDP after the float to 4500"
else:
    assert esp_udp == 0 and ike_4500 == 0, "plain ESP (protocol 50) and IKE on port 500 expected"
if certs:
    ids = {"9": "ID_DER_ASN1_DN", "2": "ID_FQDN", "3": "ID_USER_FQDN", "1": "ID_IPV4_ADDR"}
    for id_type, enc_type, names in signed:
        print(f"    decrypted: ID ({ids.get(id_type, id_type)}), CERT (encoding {enc_type}) subject {'/'.join(names) or '?'}, SIG")
    assert len(signed) >= 2, f"want ID, CERT and SIG decrypted in both directions, saw {len(signed)}"
    assert all(e == "4" and n for _, e, n in signed), f"CERT not X.509 or not dissected: {signed}"
PY
}

# ike-scan against our responder (from gw-b's address, charon keeps port 500 there).
ike_scan_check() {
    local out
    out=$(ip netns exec "$NS_GB" ike-scan --sport=0 -M --trans=7/128,4,1,14 198.18.0.1 2>&1 || true)
    grep -q "Main Mode Handshake returned" <<<"$out" || { echo "$out"; return 1; }
    echo "    ike-scan, acceptable proposal (AES-128/SHA2-256/PSK/modp2048): Main Mode Handshake returned"
    out=$(ip netns exec "$NS_GB" ike-scan --sport=0 -M --trans=5,2,1,2 198.18.0.1 2>&1 || true)
    grep -q "NO-PROPOSAL-CHOSEN" <<<"$out" || { echo "$out"; return 1; }
    echo "    ike-scan, unacceptable proposal (3DES/SHA1/modp1024): NO-PROPOSAL-CHOSEN"
    out=$(ip netns exec "$NS_GB" ike-scan --sport=0 -A --id=gw-b@example.net --idtype=3 --dhgroup=14 --trans=7/128,4,1,14 198.18.0.1 2>&1 || true)
    if grep -q "Aggressive Mode Handshake returned" <<<"$out"; then echo "$out"; return 1; fi
    echo "    ike-scan, Aggressive Mode while disabled: no handshake ($(grep -o 'Notify message [0-9]* ([A-Z-]*)' <<<"$out" | head -1))"
}

wire_checks() {
    [ -n "$ONLY" ] && ! grep -Eq -- "$ONLY" <<<"wire checks" && return 0
    local ok=1 why=""
    conf 4 aes128-sha256-modp2048 aes128gcm16-modp2048 tunnel no
    : >"$WORK/case.pcap"
    ip netns exec "$NS_GB" tcpdump -U -ni out0 --immediate-mode -w "$WORK/case.pcap" udp or esp 2>/dev/null &
    CAP_PID=$!
    sleep 0.3
    ikectl initiate --child net >/dev/null || true
    wait_up 15 || { ok=0 why="no tunnel"; }
    [ $ok = 1 ] && { ping_through "$NS_HA" 198.19.1.10 || { ok=0 why="ping"; }; }
    [ $ok = 1 ] && { tcp_transfer 1 198.19.1.10 >/dev/null || { ok=0 why="TCP"; }; }
    sleep 0.5
    kill "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null; CAP_PID=
    [ $ok = 1 ] && { tshark_check || { ok=0 why="tshark could not decrypt with our key log"; }; }
    ikectl terminate --ike ours >/dev/null 2>&1 || true
    wait_down || true
    # ike-scan needs a connection for gw-b's address: the one of this case is loaded.
    [ $ok = 1 ] && { ike_scan_check || { ok=0 why="ike-scan"; }; }
    if [ $ok = 1 ]; then echo "ok   wire checks: tshark decrypts our IKE and ESP from our key log; ike-scan"; PASS=$((PASS + 1)); RESULTS+=("| tshark decryption with our key log; ike-scan probes | pass |")
    else echo "FAIL wire checks: $why"; explain_failure; FAIL=$((FAIL + 1)); RESULTS+=("| tshark / ike-scan | **fail**: $why |"); fi
}

# --- lifecycle against strongSwan ---------------------------------------------------------------
# ping_loss NS TARGET SECONDS -> "sent received"
ping_loss() {
    ip netns exec "$1" ping -i 0.01 -c $(($3 * 100)) -W 1 "$2" >"$WORK/ping.out" 2>&1 || true
    echo "$(ping_sent "$WORK/ping.out") $(ping_received "$WORK/ping.out")"
}
lifecycle() { # NAME
    local name=$1 ok=1 why="" sent recv first last
    [ -n "$ONLY" ] && ! grep -Eq -- "$ONLY" <<<"$name" && return 0
    case $name in
    "rekey by us"*)
        conf 4 aes128-sha256-modp2048 aes128gcm16-modp2048 tunnel no "" "rekey_time = 1h" "" $'rekey_time = "5s"\nlife_time = "9s"\nrand_time = "1s"' ;;
    "rekey by strongSwan"*)
        conf 4 aes128-sha256-modp2048 aes128gcm16-modp2048 tunnel no "" $'rekey_time = 5s\nlife_time = 9s\nrand_time = 1s' ;;
    "reauthentication"*)
        conf 4 aes128-sha256-modp2048 aes128gcm16 tunnel no "" "" $'rekey_time = "6s"\nover_time = "3s"\nrand_time = "1s"' ;;
    "DPD"*)
        conf 4 aes128-sha256-modp2048 aes128gcm16 tunnel no $'dpd_delay = 2s\ndpd_timeout = 6s' "dpd_action = clear" $'dpd_delay = "2s"\ndpd_timeout = "6s"' 'dpd_action = "clear"' ;;
    *) conf 4 aes128-sha256-modp2048 aes128gcm16 tunnel no ;;
    esac
    ikectl initiate --child net >/dev/null || true
    wait_up 15 || { ok=0 why="no tunnel"; }
    [ $ok = 1 ] && { ping_through "$NS_HA" 198.19.1.10 || { ok=0 why="ping"; }; }
    first=$(our_children)
    if [ $ok = 1 ]; then
        case $name in
        "rekey by us"* | "rekey by strongSwan"* | "reauthentication"*)
            read -r sent recv < <(ping_loss "$NS_HA" 198.19.1.10 14)
            # Mid-rekey the pair may be between states (the old one superseded, the new
            # one not yet outbound): ask again until one pair is installed.
            for _ in $(seq 30); do last=$(our_children); [ -n "$last" ] && break; sleep 0.1; done
            echo "    $name: pings sent $sent, answered $recv; child SA ${first%% *} -> ${last%% *}"
            # strongSwan deletes the old inbound SA of an IKEv1 rekey at once (its
            # delete_rekeyed_delay is IKEv2 only): a packet we sent on the old SA while its
            # HASH(3) was in flight can be lost when it rekeys. Ours keep a 2 s overlap.
            # The same race runs the other way when we rekey: charon installs its inbound SA
            # when our HASH(3) arrives, and our first ESP packet on the new SA can overtake it
            # (seen without the delay below: 1 and 2 of 1,400, against 6.0 and 5.9). So iked
            # switches a rekey it initiates to the new outbound SA 200 ms after HASH(3)
            # (`OUTBOUND_SWITCH_DELAY`), and that case must lose nothing.
            local allowed=0
            case $name in "rekey by strongSwan"*) allowed=2 ;; esac
            [ $((sent - recv)) -le $allowed ] || { ok=0 why="lost $((sent - recv)) packets"; }
            [ -n "$last" ] && [ "${first%% *}" != "${last%% *}" ] || { ok=0 why="no rekey happened"; }
            [ "$(their_children | wc -l)" -le 2 ] || { ok=0 why="strongSwan kept old SAs: $(their_children | wc -l)"; }
            ;;
        "DPD: strongSwan dies"*)
            kill -9 "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=
            local t0=$SECONDS
            for _ in $(seq 150); do [ -z "$(our_children)" ] && break; sleep 0.1; done
            echo "    $name: we cleared after $((SECONDS - t0)) s (dpd_delay 2 s + dpd_timeout 6 s)"
            [ -z "$(our_children)" ] || { ok=0 why="we did not clear"; }
            ip -n "$NS_GB" link del ipsec0 2>/dev/null || true
            start_charon
            ;;
        "DPD: we die"*)
            kill -9 "$IKED_PID" "$ESPD_PID"; wait "$IKED_PID" "$ESPD_PID" 2>/dev/null || true; IKED_PID= ESPD_PID=
            local t0=$SECONDS
            for _ in $(seq 200); do [ -z "$(their_children)" ] && break; sleep 0.1; done
            echo "    $name: strongSwan cleared after $((SECONDS - t0)) s"
            [ -z "$(their_children)" ] || { ok=0 why="strongSwan did not clear"; }
            rm -f "$WORK/iked.sock"; ip -n "$NS_GA" link del espgw0 2>/dev/null || true
            start_espd; start_iked
            ;;
        "INITIAL-CONTACT"*)
            # Our gateway restarts from nothing (dataplane and database too): the first IKE SA
            # carries INITIAL-CONTACT and strongSwan drops what it had with us.
            local old
            old=$(swan --list-sas --raw 2>/dev/null | grep -o 'uniqueid=[0-9]*' | head -1)
            kill -9 "$IKED_PID" "$ESPD_PID"; wait "$IKED_PID" "$ESPD_PID" 2>/dev/null || true; IKED_PID= ESPD_PID=
            rm -f "$WORK/iked.sock"; ip -n "$NS_GA" link del espgw0 2>/dev/null || true
            start_espd; start_iked
            ikectl initiate --child net >/dev/null || true
            wait_up 15 || { ok=0 why="no tunnel after the restart"; }
            sleep 1
            local n
            n=$(swan --list-sas --raw 2>/dev/null | grep -o 'ours {' | wc -l)
            local new
            new=$(swan --list-sas --raw 2>/dev/null | grep -o 'uniqueid=[0-9]*' | head -1)
            echo "    $name: strongSwan holds $n IKE SA(s) with us after our restart ($old before, $new after)"
            # Without INITIAL-CONTACT charon would keep the old IKE SA (no DPD configured here).
            [ "$n" = 1 ] && [ "$old" != "$new" ] || { ok=0 why="strongSwan kept $n IKE SAs ($old, $new)"; }
            ping_through "$NS_HA" 198.19.1.10 || { ok=0 why="ping after the restart"; }
            ;;
        esac
    fi
    ikectl terminate --ike ours >/dev/null 2>&1 || true
    swan --terminate --ike ours --force --timeout 2 >/dev/null 2>&1 || true
    wait_down || true
    if [ $ok = 1 ]; then echo "ok   $name"; PASS=$((PASS + 1)); RESULTS+=("| $name | pass |")
    else echo "FAIL $name: $why"; explain_failure; FAIL=$((FAIL + 1)); RESULTS+=("| $name | **fail**: $why |"); fi
}

# --- proposal choice: several alternatives, defaults, prefer_configured_proposals -------------
# strongSwan puts all its IKE (or ESP) alternatives as transforms of one proposal; ours are
# configured apart from strongSwan's here. proposal_case NAME INITIATOR FAMILY SWAN_IKE SWAN_ESP
# OUR_IKE OUR_ESP PREFER EXPECT_IKE EXPECT_ESP: `-` for OUR_IKE / OUR_ESP leaves the key out of
# our config (our default); PREFER yes sets our prefer_configured_proposals. EXPECT_IKE is
# "ENCR-KEYSIZE/INTEG/DH" and EXPECT_ESP "ENCR-KEYSIZE/INTEG" (`-` when none) in vici's names:
# both sides must list exactly that.
PC_IKE= PC_ESP= PC_PREFER= PC_EXPECT_IKE= PC_EXPECT_ESP=
proposal_conf() {
    python3 - "$WORK/iked.toml" "$PC_IKE" "$PC_ESP" "$PC_PREFER" <<'PY'
import re, sys
path, ike, esp, prefer = sys.argv[1:]
s = open(path).read()
def put(text, key, value):
    line = re.compile(rf'^{key} = .*\n', re.M)
    assert line.search(text), key
    return line.sub("" if value == "-" else f'{key} = "{value}"\n', text, count=1)
s = put(s, "proposals", ike)
s = put(s, "esp_proposals", esp)
if prefer == "yes":
    s = s.replace("[connections.ours]\n", '[connections.ours]\nprefer_configured_proposals = "yes"\n', 1)
open(path, "w").write(s)
PY
}
proposal_check() {
    python3 - "$(ikectl --json list-sas)" "$(swan --list-sas --raw 2>/dev/null)" "$PC_EXPECT_IKE" "$PC_EXPECT_ESP" <<'PY'
import json, re, sys
ours_json, theirs_raw, want_ike, want_esp = sys.argv[1:]
ike = json.loads(ours_json)["ike_sas"]
assert len(ike) == 1, f"want one IKE SA of ours, have {len(ike)}"
o = ike[0]
kids = [c for c in o["child-sas"] if c["state"] == "INSTALLED"]
assert len(kids) == 1, f"want one child SA of ours, have {len(kids)}"
c = kids[0]
ours_ike = f'{o["encr-alg"]}-{o["encr-keysize"]}/{o["integ-alg"]}/{o["dh-group"]}'
ours_esp = f'{c["encr-alg"]}-{c["encr-keysize"]}/{c.get("integ-alg") or "-"}'
# vici's IKE SA: the fields before its child-sas section.
head = theirs_raw.split("child-sas", 1)[0]
f = dict(re.findall(r"([a-z-]+)=([^ }]*)", head))
theirs_ike = f'{f.get("encr-alg")}-{f.get("encr-keysize")}/{f.get("integ-alg")}/{f.get("dh-group")}'
m = re.search(r"\{([^{}]*spi-in=[^{}]*)\}", theirs_raw)
assert m, "strongSwan lists no child SA"
k = dict(re.findall(r"([a-z-]+)=([^ }]*)", m.group(1)))
theirs_esp = f'{k.get("encr-alg")}-{k.get("encr-keysize")}/{k.get("integ-alg", "-")}'
assert ours_ike == theirs_ike == want_ike, f"IKE: ours {ours_ike}, strongSwan {theirs_ike}, expected {want_ike}"
assert ours_esp == theirs_esp == want_esp, f"ESP: ours {ours_esp}, strongSwan {theirs_esp}, expected {want_esp}"
print(f"    chosen on both sides: IKE {ours_ike}, ESP {ours_esp}")
PY
}
proposal_case() { # NAME INITIATOR FAMILY SWAN_IKE SWAN_ESP OUR_IKE OUR_ESP PREFER EXPECT_IKE EXPECT_ESP
    PC_IKE=$6 PC_ESP=$7 PC_PREFER=$8 PC_EXPECT_IKE=$9 PC_EXPECT_ESP=${10}
    CONF_EDIT=proposal_conf CASE_CHECK=proposal_check case_run "$1" "$2" "$3" "$4" "$5" tunnel no
}
GCM128=AES_GCM_16-128/- CBC256_SHA256=AES_CBC-256/HMAC_SHA2_256_128
proposal_cases() {
    local sha256_ecp256=AES_CBC-128/HMAC_SHA2_256_128/ECP_256 sha256_modp2048=AES_CBC-128/HMAC_SHA2_256_128/MODP_2048
    local sha256_x25519=AES_CBC-128/HMAC_SHA2_256_128/CURVE_25519 cbc128_sha256=AES_CBC-128/HMAC_SHA2_256_128
    # Both ends on their defaults: what each strongSwan version ends up with, as measured
    # (docs/interop.md). 5.9.8's default ESP offer is AES-CBC-128/SHA2-256 then AES-GCM-128
    # (one transform per configured proposal); the first IKE transform of its offer that we
    # accept is Curve25519. As responder it goes by its own proposals, our order deciding
    # within one of them: ECP-256 (our first IKE transform) and AES-CBC-128/SHA2-256 (its
    # first ESP proposal). 6.0.1 offers AES-GCM-128 first and ends with ECP-256 and
    # AES-GCM-128 either way.
    local them_default_ike=$sha256_x25519 them_default_esp=$cbc128_sha256
    local us_default_ike=$sha256_ecp256 us_default_esp=$cbc128_sha256
    if [ "$PEER" = 6 ]; then
        them_default_ike=$sha256_ecp256 them_default_esp=$GCM128 us_default_esp=$GCM128
    fi
    if [ "$MODE" = quick ]; then
        proposal_case "them: IKE and ESP both ends' defaults (no proposals given on our side), tunnel v4" \
            them 4 default default - - no "$them_default_ike" "$them_default_esp"
        proposal_case "them: IKE list 3des-sha1-modp2048,aes128-sha256-ecp256, ESP aes128gcm16, tunnel v4" \
            them 4 3des-sha1-modp2048,aes128-sha256-ecp256 aes128gcm16 aes128-sha256-ecp256 aes128gcm16 no "$sha256_ecp256" "$GCM128"
        return 0
    fi
    proposal_case "them: IKE and ESP both ends' defaults (no proposals given on our side), tunnel v4" \
        them 4 default default - - no "$them_default_ike" "$them_default_esp"
    proposal_case "us: IKE and ESP both ends' defaults (no proposals given on our side), tunnel v6" \
        us 6 default default - - no "$us_default_ike" "$us_default_esp"
    proposal_case "them: ESP default against our aes256-sha256,aes128gcm16, tunnel v4" \
        them 4 aes128-sha256-modp2048 default aes128-sha256-modp2048 aes256-sha256,aes128gcm16 no "$sha256_modp2048" "$GCM128"
    proposal_case "them: ESP 3des-sha1,aes128gcm16 (first unsupported), tunnel v4" \
        them 4 aes128-sha256-modp2048 3des-sha1,aes128gcm16 aes128-sha256-modp2048 aes128gcm16,aes256-sha256 no "$sha256_modp2048" "$GCM128"
    proposal_case "them: ESP chacha20poly1305,aes256-sha256 (first unsupported), our default, tunnel v6" \
        them 6 aes128-sha256-modp2048 chacha20poly1305,aes256-sha256 aes128-sha256-modp2048 - no "$sha256_modp2048" "$CBC256_SHA256"
    proposal_case "them: ESP aes256-sha256,aes128gcm16, our order aes128gcm16 first, initiator's order, tunnel v4" \
        them 4 aes128-sha256-modp2048 aes256-sha256,aes128gcm16 aes128-sha256-modp2048 aes128gcm16,aes256-sha256 no "$sha256_modp2048" "$CBC256_SHA256"
    proposal_case "them: ESP aes256-sha256,aes128gcm16, our order aes128gcm16 first, prefer_configured_proposals, tunnel v4" \
        them 4 aes128-sha256-modp2048 aes256-sha256,aes128gcm16 aes128-sha256-modp2048 aes128gcm16,aes256-sha256 yes "$sha256_modp2048" "$GCM128"
    proposal_case "us: ESP aes128-sha1,aes256-sha256 against strongSwan's aes256-sha256, tunnel v4" \
        us 4 aes128-sha256-modp2048 aes256-sha256 aes128-sha256-modp2048 aes128-sha1,aes256-sha256 no "$sha256_modp2048" "$CBC256_SHA256"
    proposal_case "them: IKE list 3des-sha1-modp2048,aes128-sha256-ecp256, ESP aes128gcm16, tunnel v4" \
        them 4 3des-sha1-modp2048,aes128-sha256-ecp256 aes128gcm16 aes128-sha256-ecp256 aes128gcm16 no "$sha256_ecp256" "$GCM128"
    proposal_case "them: IKE list aes256-sha512-modp8192,aes128-sha256-modp2048, our list aes128-sha256-ecp256,aes128-sha256-modp2048, tunnel v6" \
        them 6 aes256-sha512-modp8192,aes128-sha256-modp2048 aes128gcm16 aes128-sha256-ecp256,aes128-sha256-modp2048 aes128gcm16 no "$sha256_modp2048" "$GCM128"
}

# `encap = true` on our side with no NAT between the gateways: our fake NAT-D makes charon
# believe we are behind one, so ESP must travel in UDP (port 4500) both ways, never as IP
# protocol 50 (against strongSwan 6.0, which otherwise sends plain ESP; 5.9.8 always encapsulates).
esp_in_udp_only() {
    local udp plain
    udp=$(tshark -r "$WORK/case.pcap" -Y "udp.port == 4500 && esp" 2>/dev/null | wc -l)
    plain=$(tshark -r "$WORK/case.pcap" -Y "ip.proto == 50 || ipv6.nxt == 50" 2>/dev/null | wc -l)
    echo "    encap = true: ESP in UDP $udp packets, plain ESP $plain"
    [ "$udp" -gt 0 ] && [ "$plain" = 0 ]
}
encap_case() { # INITIATOR
    ESP_WIRE=encap CASE_CHECK=esp_in_udp_only case_run "$1: MM aes128-sha256-ecp256, ESP aes128gcm16, tunnel v4, encap = true on our side" \
        "$1" 4 aes128-sha256-ecp256 aes128gcm16 tunnel no "" "" "encap = true"
}

# --- signature authentication: certificates of scripts/lib/pki.sh --------------------------------
# cert_ids: both sides list the other's ID as the certificate (or its dNSName) says; with
# CERT_TSHARK set, tshark also decrypts the case's capture so far and shows the certificates.
cert_ids() {
    if ! python3 - "$(ikectl --json list-sas)" "$(swan --list-sas --raw 2>/dev/null)" "$CERT_WANT_A" "$CERT_WANT_B" <<'PY'
import json, re, sys
ours_json, theirs_raw, want_a, want_b = sys.argv[1:]
ike = json.loads(ours_json)["ike_sas"]
assert len(ike) == 1, f"want one IKE SA of ours, have {len(ike)}"
head = theirs_raw.split("child-sas", 1)[0]
f = dict(re.findall(r"([a-z-]+)=([^}]*?) (?=[a-z-]+=|\})", head))
theirs_local, theirs_remote = f.get("local-id", "?"), f.get("remote-id", "?")
ours_local, ours_remote = ike[0]["local-id"], ike[0]["remote-id"]
assert theirs_remote == want_a and theirs_local == want_b, f"strongSwan: local {theirs_local!r}, remote {theirs_remote!r}"
norm = lambda s: re.sub(r"\s*,\s*", ",", s)
assert norm(want_a) in norm(ours_local) and norm(want_b) in norm(ours_remote), f"ours: local {ours_local!r}, remote {ours_remote!r}"
print(f"    IDs: ours {ours_local} / strongSwan {theirs_local}, each the other's remote ID")
PY
    then return 1; fi
    [ -z "${CERT_TSHARK:-}" ] || tshark_check certs
}
# cert_case NAME INITIATOR KIND IKE ESP [AGGRESSIVE [ID]]: both gateways with certificates of
# KIND (rsa2048, rsa3072, p256, p384), IDs the subjects (ID `fqdn`: the dNSNames), IPv4 tunnel.
cert_case() {
    local id=${7:-dn}
    local CERT_WANT_A CERT_WANT_B
    CERT_WANT_A=$(pki_dn a "$3") CERT_WANT_B=$(pki_dn b "$3")
    [ "$id" = fqdn ] && CERT_WANT_A=gw-a.example.net CERT_WANT_B=gw-b.example.net
    CERT_A=$3 CERT_B=$3 CERT_ID=$id CASE_CHECK=cert_ids case_run "$1" "$2" 4 "$4" "$5" tunnel "${6:-no}"
}
# revoked_case NAME INITIATOR REVOKED(a|b): one side's certificate is on the CRL both sides
# hold; the other side must refuse it, and no SA may come up. a: strongSwan refuses ours
# (its log says so); b: we refuse strongSwan's (the cert-refused-revoked counter of ikectl
# stats rises).
revoked_case() {
    local name=$1 init=$2 revoked=$3 ok=1 why="" logpos before after seen="" t0
    [ -n "$ONLY" ] && ! grep -Eq -- "$ONLY" <<<"$name" && return 0
    local cert_a=rsa2048 cert_b=rsa2048
    if [ "$revoked" = a ]; then cert_a=revoked; else cert_b=revoked; fi
    CERT_A=$cert_a CERT_B=$cert_b conf 4 aes128-sha256-modp2048 aes128gcm16 tunnel no
    # The engine's counter, wherever `ikectl --json stats` nests it.
    refused_revoked() {
        ikectl --json stats 2>/dev/null | python3 -c '
import json, sys
def find(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "cert-refused-revoked":
                return x
            r = find(x)
            if r is not None:
                return r
    return None
print(find(json.load(sys.stdin)) or 0)'
    }
    before=$(refused_revoked)
    logpos=$(stat -c %s "$WORK/charon.log")
    t0=$SECONDS
    if [ "$init" = us ]; then ikectl initiate --child net >/dev/null 2>&1 || true
    else swan --initiate --child net --timeout 1 >/dev/null 2>&1 || true; fi
    for _ in $(seq 100); do
        if [ "$revoked" = a ]; then
            seen=$(tail -c +$((logpos + 1)) "$WORK/charon.log" | grep -m1 "certificate was revoked" || true)
        else
            after=$(refused_revoked)
            [ "${after:-0}" -gt "${before:-0}" ] && seen="our cert-refused-revoked ${before:-0} -> $after"
        fi
        [ -n "$seen" ] && break
        sleep 0.1
    done
    echo "    $name: refused within $((SECONDS - t0 + 1)) s: ${seen:-nothing}"
    # Give a wrongly accepted exchange the time to finish before looking for SAs.
    sleep 1
    [ -n "$seen" ] || { ok=0 why="no refusal for the revoked certificate"; }
    if [ -n "$(our_children)" ] || [ -n "$(their_children)" ]; then ok=0 why="an SA came up with a revoked certificate"; fi
    if ikectl --json list-sas 2>/dev/null | grep -q '"state": *"ESTABLISHED"'; then ok=0 why="our IKE SA established"; fi
    if swan --list-sas 2>/dev/null | grep -q ESTABLISHED; then ok=0 why="strongSwan's IKE SA established"; fi
    ikectl terminate --ike ours >/dev/null 2>&1 || true
    swan --terminate --ike ours --force --timeout 2 >/dev/null 2>&1 || true
    if [ $ok = 1 ]; then echo "ok   $name"; PASS=$((PASS + 1)); RESULTS+=("| $name | pass: refused, no SA |")
    else echo "FAIL $name: $why"; explain_failure; FAIL=$((FAIL + 1)); RESULTS+=("| $name | **fail**: $why |"); fi
}
cert_cases() {
    local rsa2048="RSA-2048 certificates, MM aes128-sha256-modp2048, ESP aes128gcm16 PFS, tunnel v4"
    local p256="ECDSA P-256 certificates, MM aes128-sha256-ecp256, ESP aes128gcm16, tunnel v4"
    if [ "$MODE" = quick ]; then
        CERT_TSHARK=1 cert_case "us: $rsa2048, tshark decrypts ID/CERT/SIG" us rsa2048 aes128-sha256-modp2048 aes128gcm16-modp2048
        cert_case "them: $p256" them p256 aes128-sha256-ecp256 aes128gcm16
        return 0
    fi
    local init
    for init in us them; do
        cert_case "$init: $rsa2048" $init rsa2048 aes128-sha256-modp2048 aes128gcm16-modp2048
        cert_case "$init: RSA-3072 certificates, MM aes256-sha256-curve25519, ESP aes256-sha256, tunnel v4" \
            $init rsa3072 aes256-sha256-curve25519 aes256-sha256
        cert_case "$init: $p256" $init p256 aes128-sha256-ecp256 aes128gcm16
        cert_case "$init: ECDSA P-384 certificates (intermediate CA), MM aes256-sha384-ecp384, ESP aes256gcm16 PFS, tunnel v4" \
            $init p384 aes256-sha384-ecp384 aes256gcm16-ecp384
    done
    cert_case "us: ECDSA P-256 certificates, AM aes128-sha256-ecp256, IDs the dNSNames, ESP aes128gcm16, tunnel v4" \
        us p256 aes128-sha256-ecp256 aes128gcm16 yes fqdn
    CERT_TSHARK=1 cert_case "us: $rsa2048, tshark decrypts ID/CERT/SIG" us rsa2048 aes128-sha256-modp2048 aes128gcm16-modp2048
    revoked_case "them: revoked certificate of strongSwan's, refused by us" them b
    revoked_case "us: revoked certificate of ours, refused by strongSwan" us a
}

step "the matrix ($MODE)"
IKE_ALL=(aes128-sha256-modp2048 aes256-sha1-modp1536 aes256-sha512-modp4096 aes128-sha256-ecp256 aes256-sha384-ecp384 aes128-sha256-curve25519)
ESP_ALL=(aes128gcm16 aes256gcm16 aes128-sha1 aes256-sha256 aes256-sha512)
pfs_group() { case $1 in *modp2048) echo modp2048 ;; *modp1536) echo modp1536 ;; *modp4096) echo modp4096 ;;
    *ecp256) echo ecp256 ;; *ecp384) echo ecp384 ;; *curve25519) echo curve25519 ;; esac; }
if [ "$MODE" = quick ]; then
    case_run "us: MM aes128-sha256-modp2048, ESP aes128gcm16 PFS, tunnel v4" us 4 aes128-sha256-modp2048 aes128gcm16-modp2048 tunnel no
    case_run "them: MM aes128-sha256-ecp256, ESP aes256-sha256, tunnel v4" them 4 aes128-sha256-ecp256 aes256-sha256 tunnel no
    case_run "us: AM aes256-sha1-modp1536, ESP aes128-sha1, tunnel v6" us 6 aes256-sha1-modp1536 aes128-sha1 tunnel yes
    case_run "them: MM aes128-sha256-curve25519, ESP aes256gcm16 PFS, tunnel v6" them 6 aes128-sha256-curve25519 aes256gcm16-curve25519 tunnel no
    encap_case us
else
    # Every IKE proposal with every ESP proposal (30), PFS on every other one, Main Mode,
    # alternately IPv4 and IPv6 and alternately initiated by each side; then Aggressive Mode
    # and transport mode cases with both initiators.
    i=0
    for ike in "${IKE_ALL[@]}"; do
        for esp in "${ESP_ALL[@]}"; do
            fam=$(( i % 2 == 0 ? 4 : 6 ))
            init=us; [ $(( (i / 2) % 2 )) = 1 ] && init=them
            e=$esp pfs=""
            if [ $(( i % 3 )) != 2 ]; then e="$esp-$(pfs_group "$ike")"; pfs=" PFS"; fi
            case_run "$init: MM $ike, ESP $esp$pfs, tunnel v$fam" $init $fam "$ike" "$e" tunnel no
            i=$((i + 1))
        done
    done
    for init in us them; do
        for fam in 4 6; do
            case_run "$init: AM aes128-sha256-modp2048, ESP aes128gcm16 PFS, tunnel v$fam" $init $fam aes128-sha256-modp2048 aes128gcm16-modp2048 tunnel yes
            case_run "$init: MM aes128-sha256-ecp256, ESP aes128gcm16, transport v$fam" $init $fam aes128-sha256-ecp256 aes128gcm16 transport no
        done
    done
    # AES-192, which strongSwan and vendor boxes propose: GCM and CBC, each side initiating.
    case_run "them: MM aes128-sha256-ecp256, ESP aes192gcm16, tunnel v4" them 4 aes128-sha256-ecp256 aes192gcm16 tunnel no
    case_run "us: MM aes128-sha256-modp2048, ESP aes192-sha256 PFS, tunnel v6" us 6 aes128-sha256-modp2048 aes192-sha256-modp2048 tunnel no
    # Extended Sequence Numbers (RFC 4304's attribute in Quick Mode), each side initiating.
    case_run "us: MM aes128-sha256-ecp256, ESP aes128gcm16-esn, tunnel v4" us 4 aes128-sha256-ecp256 aes128gcm16-esn tunnel no
    case_run "them: MM aes128-sha256-ecp256, ESP aes256-sha256-esn, tunnel v4" them 4 aes128-sha256-ecp256 aes256-sha256-esn tunnel no
    encap_case us
    encap_case them
fi

step "proposal choice ($MODE)"
proposal_cases
step "signature authentication ($MODE)"
cert_cases
step "independent checks of the wire"
wire_checks
step "lifecycle"
lifecycle "rekey by strongSwan under a 100/s ping"
lifecycle "rekey by us under a 100/s ping"
source scripts/lib/interop-isakmp-rekey.sh
isakmp_rekey_case "ISAKMP SA re-keyed by strongSwan under a 20/s ping"
if [ "$MODE" = full ]; then
    lifecycle "reauthentication of the ISAKMP SA by us under a 100/s ping"
    lifecycle "DPD: strongSwan dies, we clear"
    lifecycle "DPD: we die, strongSwan clears"
    lifecycle "INITIAL-CONTACT after our restart"
    isakmp_rekey_case "ISAKMP SA re-keyed by strongSwan under TCP transfers"
    isakmp_rekey_case "ISAKMP SA re-keyed by both ends at once under a 20/s ping"
    short_lifetime_case
fi

# --- NAT: a real address and port translation between the gateways (last: it re-plumbs the wire)
#   gw-a out0 198.18.2.1 -- na0 198.18.2.254 [nat: masquerade] nb0 198.18.0.1 -- out0 198.18.0.2 gw-b
nat_case() {
    local name="NAT: nftables masquerade between the gateways" ok=1 why=""
    [ -n "$ONLY" ] && ! grep -Eq -- "$ONLY" <<<"$name" && return 0
    local NS_NAT="$NS_TAG-nat"
    stop_gateway
    ip -n "$NS_GA" link del out0 2>/dev/null || true   # the wire's veth pair goes with it
    ip netns add "$NS_NAT"
    ip -n "$NS_NAT" link set lo up
    ip link add out0 netns "$NS_GA" type veth peer name na0 netns "$NS_NAT"
    ip link add nb0 netns "$NS_NAT" type veth peer name out0 netns "$NS_GB"
    ns_quiet_iface "$NS_GA" out0
    ip netns exec "$NS_GB" sysctl -qw net.ipv6.conf.out0.disable_ipv6=0
    ip -n "$NS_GB" addr add 198.18.0.2/24 dev out0
    ip -n "$NS_GB" link set out0 up
    ip -n "$NS_NAT" addr add 198.18.2.254/24 dev na0
    ip -n "$NS_NAT" addr add 198.18.0.1/24 dev nb0
    ip -n "$NS_NAT" link set na0 up
    ip -n "$NS_NAT" link set nb0 up
    ip netns exec "$NS_NAT" ethtool -K na0 tx off >/dev/null 2>&1 || true
    ip netns exec "$NS_NAT" ethtool -K nb0 tx off >/dev/null 2>&1 || true
    ip netns exec "$NS_NAT" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$NS_NAT" nft add table ip nat
    ip netns exec "$NS_NAT" nft add chain ip nat post "{ type nat hook postrouting priority 100; }"
    ip netns exec "$NS_NAT" nft add rule ip nat post oifname nb0 masquerade
    # espd behind the NAT: outside address 198.18.2.1, the world via the NAT.
    python3 - "$WORK/espd.toml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = s.replace('addresses = ["198.18.0.1/24", "2001:db8::1/64"]', 'addresses = ["198.18.2.1/24"]')
s = re.sub(r'\[\[routes\]\]\nprefix = "198.19.1.0/24"\nvia = "198.18.0.2"', '[[routes]]\nprefix = "198.18.0.0/24"\nvia = "198.18.2.254"', s)
s = re.sub(r'\[\[routes\]\]\nprefix = "2001:db8:2::/64"\nvia = "2001:db8::2"\n?', '', s)
open(p, "w").write(s)
PY
    start_espd
    ip -n "$NS_GA" route add 198.18.0.0/24 via 198.18.2.254 dev espgw0
    conf 4 aes128-sha256-modp2048 aes128gcm16-modp2048 tunnel no
    sed -i 's/remote_addrs = 198.18.0.1/remote_addrs = %any/' "$WORK/swanctl.conf"
    swan --load-all --noprompt --file "$WORK/swanctl.conf" >/dev/null
    sed -i -e 's/^listen = .*/listen = ["198.18.2.1"]/' -e 's/^local_addrs = "198.18.0.1"/local_addrs = "198.18.2.1"/' "$WORK/iked.toml"
    start_iked
    ip netns exec "$NS_NAT" tcpdump -U -ni nb0 --immediate-mode -w "$WORK/nat.pcap" udp 2>/dev/null &
    CAP_PID=$!
    ikectl initiate --child net >/dev/null || true
    wait_up 15 || { ok=0 why="no tunnel through the NAT"; }
    [ $ok = 1 ] && { ping_through "$NS_HA" 198.19.1.10 || { ok=0 why="ping"; }; }
    [ $ok = 1 ] && { tcp_transfer 2 198.19.1.10 >/dev/null || { ok=0 why="TCP"; }; }
    local nat
    nat=$(ikectl --json list-sas | python3 -c 'import json,sys; s=json.loads(sys.stdin.read())["ike_sas"][0]; print(s["nat-local"], s["local-port"], s["child-sas"][0]["encap"])' 2>/dev/null || echo "? ? ?")
    echo "    $name: NAT detected on our side / our port / ESP in UDP: $nat"
    [ "$nat" = "True 4500 True" ] || { ok=0 why="NAT not detected or no float: $nat"; }
    # RFC 3948 keepalives every 20 s from the side behind the NAT.
    sleep 21
    kill "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null || true; CAP_PID=
    local ka
    ka=$(tshark -r "$WORK/nat.pcap" -Y 'ip.src==198.18.0.1 && udp.length==9' 2>/dev/null | wc -l)
    local mapped
    mapped=$(tshark -r "$WORK/nat.pcap" -T fields -e udp.srcport -Y 'ip.src==198.18.0.1' 2>/dev/null | sort -u | tr '\n' ' ')
    echo "    $name: NAT-keepalives seen after the NAT: $ka; our source ports as translated: $mapped"
    [ "$ka" -ge 1 ] || { ok=0 why="no NAT-keepalive"; }
    ikectl terminate --ike ours >/dev/null 2>&1 || true
    wait_down || true
    if [ $ok = 1 ]; then echo "ok   $name"; PASS=$((PASS + 1)); RESULTS+=("| $name | pass |")
    else echo "FAIL $name: $why"; explain_failure; FAIL=$((FAIL + 1)); RESULTS+=("| $name | **fail**: $why |"); fi
    ip netns del "$NS_NAT" 2>/dev/null || true
}
# --- NAT rebinding: strongSwan behind a NAT whose mapping restarts mid-transfer (re-plumbs the wire)
#   gw-a out0 198.18.0.1 -- na0 198.18.0.2 [natb: masquerade] nb0 198.18.3.254 -- out0 198.18.3.2 gw-b
# The NAT takes strongSwan's old address, so our configuration is unchanged. strongSwan initiates
# from behind it (port-preserving masquerade: 4500 stays 4500). Mid-transfer the NAT's mapping is
# restarted: the NAT drops UDP for 3 s with 1 s conntrack timeouts, so the entries expire, and its
# rule now maps to ports 40000-40999 (the timeouts back to their defaults as the outage ends). strongSwan's next DPD R-U-THERE (dpd_delay 2 s; it hears
# nothing from us) arrives from the new port; RFC 3947 §5: iked moves the IKE SA and the installed
# outbound ESP SA to it in place, and the transfer completes. Checked: the transfer's sha256,
# pings both ways after, our outbound SA's UDP destination port (espctl) the new mapping as tshark
# saw it leave the NAT, `peer-moved: 1` in ikectl stats, the same SPIs before and after.
nat_rebinding_case() {
    local name="NAT rebinding: strongSwan behind a NAT whose mapping restarts mid-transfer" ok=1 why=""
    [ -n "$ONLY" ] && ! grep -Eq -- "$ONLY" <<<"$name" && return 0
    local NS_NATB="$NS_TAG-natb" t0=$SECONDS
    stop_gateway
    ip -n "$NS_GA" link del out0 2>/dev/null || true   # the wire's veth pair goes with it
    ip netns add "$NS_NATB"
    ip -n "$NS_NATB" link set lo up
    ip link add out0 netns "$NS_GA" type veth peer name na0 netns "$NS_NATB"
    ip link add nb0 netns "$NS_NATB" type veth peer name out0 netns "$NS_GB"
    ns_quiet_iface "$NS_GA" out0
    ip -n "$NS_GB" addr add 198.18.3.2/24 dev out0
    ip -n "$NS_GB" link set out0 up
    ip -n "$NS_GB" route add 198.18.0.0/24 via 198.18.3.254 dev out0
    ip -n "$NS_NATB" addr add 198.18.0.2/24 dev na0
    ip -n "$NS_NATB" addr add 198.18.3.254/24 dev nb0
    ip -n "$NS_NATB" link set na0 up
    ip -n "$NS_NATB" link set nb0 up
    ip netns exec "$NS_NATB" ethtool -K na0 tx off >/dev/null 2>&1 || true
    ip netns exec "$NS_NATB" ethtool -K nb0 tx off >/dev/null 2>&1 || true
    ip netns exec "$NS_NATB" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$NS_NATB" nft add table ip nat
    ip netns exec "$NS_NATB" nft add chain ip nat post "{ type nat hook postrouting priority 100; }"
    ip netns exec "$NS_NATB" nft add rule ip nat post oifname na0 masquerade
    start_espd
    conf 4 aes128-sha256-modp2048 aes128gcm16-modp2048 tunnel no $'dpd_delay = 2s\ndpd_timeout = 30s'
    sed -i 's/local_addrs = 198.18.0.2/local_addrs = 198.18.3.2/' "$WORK/swanctl.conf"
    swan --load-all --noprompt --file "$WORK/swanctl.conf" >/dev/null
    start_iked
    ip netns exec "$NS_NATB" tcpdump -U -ni na0 --immediate-mode -w "$WORK/natb.pcap" udp 2>/dev/null &
    CAP_PID=$!
    swan --initiate --child net --timeout 10 >/dev/null 2>&1 || true
    wait_up 15 || { ok=0 why="no tunnel from behind the NAT"; }
    [ $ok = 1 ] && { ping_through "$NS_HA" 198.19.1.10 || { ok=0 why="ping before"; }; }
    local spis_before out_port
    spis_before=$(our_children | awk '{print $1, $2}')
    # Our outbound SA's UDP destination port, from the SA database itself.
    out_port() {
        "$ESPCTL" --sadb "$DB_A" --json sa list 2>/dev/null | python3 -c '
import json, sys
print(" ".join(str(s["udp_encap"][1]) for s in json.loads(sys.stdin.read()) if s["dir"] == "out" and s["udp_encap"]) or "-")'
    }
    local before
    before=$(out_port)
    echo "    $name: our outbound ESP SA sends to UDP port $before"
    [ "$before" = 4500 ] || { [ $ok = 1 ] && ok=0 why="outbound SA port before: $before"; }
    # A paced 4 MiB transfer (about 8 s), host-a -> host-b, with the mapping restarted 2 s in.
    # Conntrack sets an entry's expiry when a packet refreshes it, so the short UDP timeouts go
    # in before the transfer: its packets then leave every entry 1 s to live when the outage
    # starts. (Until then an expired entry is remapped to the same, preserved, port.)
    local l s timeouts t_udp t_stream
    timeouts=$(ip netns exec "$NS_NATB" sysctl -n net.netfilter.nf_conntrack_udp_timeout net.netfilter.nf_conntrack_udp_timeout_stream | tr '\n' ' ')
    ip netns exec "$NS_NATB" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=1
    ip netns exec "$NS_NATB" sysctl -qw net.netfilter.nf_conntrack_udp_timeout_stream=1
    head -c $((4 << 20)) /dev/urandom >"$WORK/send.bin"
    ip netns exec "$NS_HB" timeout 90 nc -l -N 198.19.1.10 5001 >"$WORK/recv.bin" &
    l=$!
    sleep 0.3
    python3 -c '
import sys, time
data = open(sys.argv[1], "rb").read()
for i in range(0, len(data), 32768):
    sys.stdout.buffer.write(data[i:i + 32768]); sys.stdout.flush(); time.sleep(0.06)
' "$WORK/send.bin" | ip netns exec "$NS_HA" timeout 90 nc -N 198.19.1.10 5001 2>/dev/null &
    s=$!
    sleep 2
    local t_restart=$SECONDS
    ip netns exec "$NS_NATB" nft add table ip outage
    ip netns exec "$NS_NATB" nft add chain ip outage pre "{ type filter hook prerouting priority -300; }"
    ip netns exec "$NS_NATB" nft add rule ip outage pre meta l4proto udp drop
    ip netns exec "$NS_NATB" nft flush chain ip nat post
    ip netns exec "$NS_NATB" nft add rule ip nat post oifname na0 meta l4proto udp masquerade to :40000-40999
    ip netns exec "$NS_NATB" nft add rule ip nat post oifname na0 masquerade
    sleep 3
    # The mapping restarts once: the next packet gets a new port, which then lasts.
    read -r t_udp t_stream <<<"$timeouts"
    ip netns exec "$NS_NATB" sysctl -qw net.netfilter.nf_conntrack_udp_timeout="$t_udp"
    ip netns exec "$NS_NATB" sysctl -qw net.netfilter.nf_conntrack_udp_timeout_stream="$t_stream"
    ip netns exec "$NS_NATB" nft delete table ip outage
    wait $s || { [ $ok = 1 ] && ok=0 why="sender"; }
    wait $l || { [ $ok = 1 ] && ok=0 why="receiver"; }
    if [ $ok = 1 ] && [ "$(sha256sum <"$WORK/send.bin")" != "$(sha256sum <"$WORK/recv.bin")" ]; then
        ok=0 why="transfer across the rebinding corrupted or short ($(stat -c %s "$WORK/recv.bin") bytes)"
    fi
    echo "    $name: transfer done $((SECONDS - t_restart)) s after the mapping restarted"
    [ $ok = 1 ] && { ping_through "$NS_HA" 198.19.1.10 || { ok=0 why="ping host-a -> host-b after"; }; }
    [ $ok = 1 ] && { ping_through "$NS_HB" 198.18.1.10 || { ok=0 why="ping host-b -> host-a after"; }; }
    kill "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null || true; CAP_PID=
    local after mapped moved spis_after
    after=$(out_port)
    # strongSwan's source ports as they left the NAT towards us, in order of first appearance.
    mapped=$(tshark -r "$WORK/natb.pcap" -T fields -e udp.srcport -Y 'ip.src==198.18.0.2 && udp.dstport==4500' 2>/dev/null | awk '!seen[$0]++' | tr '\n' ' ')
    moved=$(ikectl stats 2>/dev/null | awk -F': *' '/peer-moved/ {print $2}')
    spis_after=$(our_children | awk '{print $1, $2}')
    echo "    $name: strongSwan's ports after the NAT: $mapped; our outbound SA now sends to $after; peer-moved: ${moved:-?}; SPIs $spis_before -> $spis_after"
    if [ $ok = 1 ]; then
        local new
        new=$(tr ' ' '\n' <<<"$mapped" | grep -E '^40[0-9]{3}$' || true)
        if [ -z "$new" ] || [ "$(wc -l <<<"$new")" != 1 ]; then ok=0 why="want one new mapping in 40000-40999: $mapped"
        elif [ "$after" != "$new" ]; then ok=0 why="outbound SA sends to $after, the new mapping is $new"
        elif [ "${moved:-0}" != 1 ]; then ok=0 why="peer-moved ${moved:-?}, want 1"
        elif [ "$spis_before" != "$spis_after" ]; then ok=0 why="SPIs changed (renegotiated, not moved): $spis_before -> $spis_after"
        fi
    fi
    swan --terminate --ike ours --timeout 5 >/dev/null 2>&1 || true
    wait_down || true
    local secs=$((SECONDS - t0))
    if [ $ok = 1 ]; then echo "ok   $name (${secs} s)"; PASS=$((PASS + 1)); RESULTS+=("| $name | pass: mapping 4500 -> $after, outbound SA moved in place, transfer intact |")
    else echo "FAIL $name: $why"; explain_failure; FAIL=$((FAIL + 1)); RESULTS+=("| $name | **fail**: $why |"); fi
    ip netns del "$NS_NATB" 2>/dev/null || true
}

step "NAT"
nat_rebinding_case
nat_case

step "secrets"
secrets_case

echo "interop ($MODE): $PASS passed, $FAIL failed"
printf '%s\n' "${RESULTS[@]}" >"$WORK/results.md"
[ -n "${RESULTS_OUT:-}" ] && cp "$WORK/results.md" "$RESULTS_OUT"
[ "$FAIL" -eq 0 ]
