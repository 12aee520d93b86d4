# Our gateway (espd + iked) on gw-a of scripts/lib/netns.sh's namespaces, facing a peer on
# gw-b, for the interop scripts. Sourced after netns.sh, with ESPD, IKED, IKECTL, NS_TAG,
# WORK and DB_A set; a script names its peer daemon's pid PEER_PID and its capture's
# CAP_PID, and writes "$WORK/iked.toml" before start_iked.

ESPD_PID= IKED_PID= PEER_PID= CAP_PID=

stop_all() {
    for p in $IKED_PID $ESPD_PID $PEER_PID $CAP_PID; do kill -TERM "$p" 2>/dev/null; done
    for p in $IKED_PID $ESPD_PID $PEER_PID $CAP_PID; do wait "$p" 2>/dev/null; done
    IKED_PID= ESPD_PID= PEER_PID= CAP_PID=
}
cleanup() {
    local rc=$?
    set +e +o pipefail
    stop_all
    [ -n "${KEEP:-}" ] && { echo "kept: $WORK, namespaces $NS_TAG-*"; exit $rc; }
    ns_down
    rm -rf "$WORK" "$DB_A" "$DB_A.iked.lock" /var/run/dpdk/espd-"$NS_TAG"
    exit $rc
}
die() { echo "FATAL: $*" >&2; exit 1; }
step() { printf '== %s\n' "$*"; }

# The namespaces, with gw-b an ordinary Linux host (no espd) holding the peer's addresses.
gw_b_host() {
    ns_up
    ip netns exec "$NS_GB" nft delete table netdev espd-owned 2>/dev/null || true
    for ifc in in0 out0; do ip netns exec "$NS_GB" sysctl -qw "net.ipv6.conf.$ifc.disable_ipv6=0"; done
    ip -n "$NS_GB" addr add 198.18.0.2/24 dev out0
    ip -n "$NS_GB" addr add 2001:db8::2/64 dev out0 nodad
    ip -n "$NS_GB" addr add 198.19.1.1/24 dev in0
    ip -n "$NS_GB" addr add 2001:db8:2::1/64 dev in0 nodad
}

# gw-a's espd configuration: the shipped one, with our database and EAL prefix.
espd_conf() {
    sed -e "s|/dev/shm/espgw-demo-gw-a|$DB_A|" -e "s|espd-gw-a|espd-$NS_TAG|" scripts/conf/gw-a.toml >"$WORK/espd.toml"
}
# espd on gw-a with "$WORK/espd.toml"; the exception TAP gets the outside addresses for iked.
start_espd() {
    rm -f "$DB_A"
    ip netns exec "$NS_GA" "$ESPD" --config "$WORK/espd.toml" >>"$WORK/espd.log" 2>&1 &
    ESPD_PID=$!
    for _ in $(seq 100); do ip -n "$NS_GA" link show espgw0 >/dev/null 2>&1 && break; sleep 0.1; done
    ip -n "$NS_GA" link show espgw0 >/dev/null 2>&1 || die "espd did not create its TAP"
    ip netns exec "$NS_GA" sysctl -qw net.ipv6.conf.espgw0.disable_ipv6=0 || true
    ip netns exec "$NS_GA" ethtool -K espgw0 tx off >/dev/null 2>&1 || true
    ip -n "$NS_GA" link set espgw0 up
    ip -n "$NS_GA" addr add 198.18.0.1/24 dev espgw0
    ip -n "$NS_GA" addr add 2001:db8::1/64 dev espgw0 nodad
}
start_iked() {
    ip netns exec "$NS_GA" "$IKED" --config "$WORK/iked.toml" --keylog "$WORK/keylog" >>"$WORK/iked.log" 2>&1 &
    IKED_PID=$!
    for _ in $(seq 50); do [ -S "$WORK/iked.sock" ] && return 0; sleep 0.1; done
    tail -20 "$WORK/iked.log"
    die "iked did not start"
}
ikectl() { "$IKECTL" -s "$WORK/iked.sock" "$@"; }

# iked_conf LOCAL REMOTE IKE_PROPOSAL AGGRESSIVE(yes|no) LOCAL_TS REMOTE_TS ESP_PROPOSAL MODE
#           [EXTRA_CONN] [EXTRA_CHILD]: "$WORK/iked.toml", one PSK connection `ours` with one
# child `net`, proposals in strongSwan's syntax; the extras are TOML lines added to the
# connection and to the child. IKED_LOG replaces the [daemon.log] levels.
iked_conf() {
    cat >"$WORK/iked.toml" <<EOF
[daemon]
sadb = "$DB_A"
control_socket = "$WORK/iked.sock"
listen = ["198.18.0.1", "2001:db8::1"]
[daemon.log]
${IKED_LOG:-default = 1
ike = 2
knl = 2}

[connections.ours]
version = 1
local_addrs = "$1"
remote_addrs = "$2"
proposals = "$3"
aggressive = $( [ "$4" = yes ] && echo true || echo false)
local.auth = "psk"
local.id = "gw-a@example.net"
remote.auth = "psk"
remote.id = "gw-b@example.net"
${9:-}
[connections.ours.children.net]
local_ts = "$5"
remote_ts = "$6"
esp_proposals = "$7"
mode = "$8"
start_action = "none"
${10:-}
[secrets.ike-ours]
id = "gw-a@example.net"
id-1 = "gw-b@example.net"
secret = "interop-psk-$NS_TAG"
EOF
}

