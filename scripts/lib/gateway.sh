# shellcheck shell=bash
# Our gateway (espd + iked) in scripts/lib/netns.sh's namespaces: one on gw-a facing a peer on
# gw-b (the interop scripts), or one on each gateway, sides a and b (e2e-ike.sh). Provides
# espd_conf, start_espd, start_iked, stop_gateway, ikectl (gw_ikectl), stop_all, cleanup,
# gw_b_host and the iked configuration writers iked_daemon, iked_conn, iked_secret, iked_conf.
#
# Sourced after netns.sh and tunnel.sh, with NS_TAG and WORK set, and DB_A (DB_B too with two
# gateways); the binaries are ESPD, ESPCTL, IKED and IKECTL, target/release's unless set.
# SIDES="a b" selects two gateways: the functions then take the side first (`start_espd b`,
# `ikectl a list-sas`), a side's files are "$WORK/espd-a.toml", "$WORK/iked-a.toml",
# "$WORK/iked-a.sock", its logs "$WORK/espd-a.log", "$WORK/iked-a.log" and its pids ESPD_A,
# IKED_A. Without SIDES they are "$WORK/espd.toml", ... and ESPD_PID, IKED_PID.
# A script names its peer daemon's pid PEER_PID and its captures' pids CAP_PID and CAPS, and
# writes the iked configuration before start_iked. iked gets --keylog "$WORK/keylog" (or
# "$WORK/keylog-a") unless KEYLOG is set empty. On a failed exit, cleanup runs the script's
# report_failure (if it defines one) twice: `report_failure running` with the daemons still
# up, `report_failure stopped` after they have exited.

ESPD_PID= IKED_PID= ESPD_A= ESPD_B= IKED_A= IKED_B= PEER_PID= CAP_PID=
CAPS=()
KEYLOG=${KEYLOG-1}
ESPD=${ESPD:-target/release/espd} ESPCTL=${ESPCTL:-target/release/espctl}
IKED=${IKED:-target/release/iked} IKECTL=${IKECTL:-target/release/ikectl}

# gw_side SIDE: that gateway's namespace, database, file suffix, pid variable suffix and
# outside addresses in GW_NS, GW_DB, GW_SFX, GW_PID, GW_ADDR4, GW_ADDR6 (SIDE "" without SIDES).
gw_side() {
    case $1 in
    "") GW_NS=$NS_GA GW_DB=$DB_A GW_SFX= GW_PID=_PID GW_ADDR4=198.18.0.1 GW_ADDR6=2001:db8::1 ;;
    a) GW_NS=$NS_GA GW_DB=$DB_A GW_SFX=-a GW_PID=_A GW_ADDR4=198.18.0.1 GW_ADDR6=2001:db8::1 ;;
    b) GW_NS=$NS_GB GW_DB=$DB_B GW_SFX=-b GW_PID=_B GW_ADDR4=198.18.0.2 GW_ADDR6=2001:db8::2 ;;
    *) die "no gateway $1" ;;
    esac
}

stop_all() {
    local pids="$IKED_PID $IKED_A $IKED_B $ESPD_PID $ESPD_A $ESPD_B $PEER_PID $CAP_PID ${CAPS[*]}" p
    for p in $pids; do kill -TERM "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    IKED_PID= IKED_A= IKED_B= ESPD_PID= ESPD_A= ESPD_B= PEER_PID= CAP_PID= CAPS=()
}
cleanup() {
    local rc=$? side
    set +e +o pipefail
    [ "$rc" -ne 0 ] && declare -F report_failure >/dev/null && report_failure running
    stop_all
    [ "$rc" -ne 0 ] && declare -F report_failure >/dev/null && report_failure stopped
    [ -n "${KEEP:-}" ] && { echo "kept: $WORK, namespaces $NS_TAG-*"; exit $rc; }
    ns_down
    # A SIGKILLed espd leaves its EAL runtime directory behind.
    for side in ${SIDES:-""}; do
        gw_side "$side"
        rm -rf "$GW_DB" "$GW_DB.ports" "$GW_DB.iked.lock" /var/run/dpdk/espd-"$NS_TAG$GW_SFX"
    done
    rm -rf "$WORK"
    exit $rc
}

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

# espd_conf [SIDE]: the side's espd configuration, the shipped one (gw-a's without SIDES) with
# our database and EAL prefix.
espd_conf() {
    gw_side "${1:-}"
    local g=${1:-a}
    sed -e "s|/dev/shm/espgw-demo-gw-$g|$GW_DB|" -e "s|espd-gw-$g|espd-$NS_TAG$GW_SFX|" \
        "scripts/conf/gw-$g.toml" >"$WORK/espd$GW_SFX.toml"
}
# start_espd [SIDE]: espd on the side's gateway, on a new database; waits until espd is ready.
# espd sets up its exception TAP (espgw0) itself: IPv6 on, TX checksum offload off, link up,
# the outside port's addresses (IPv6 without DAD) for iked. It publishes its ports in
# "$db.ports" once all that is done, which is the readiness this waits for.
start_espd() {
    gw_side "${1:-}"
    local ns=$GW_NS db=$GW_DB sfx=$GW_SFX pid
    rm -f "$db" "$db.ports"
    ip netns exec "$ns" "$ESPD" --config "$WORK/espd$sfx.toml" >>"$WORK/espd$sfx.log" 2>&1 &
    pid=$!
    printf -v "ESPD$GW_PID" %s $pid
    for _ in $(seq 150); do
        [ -e "$db.ports" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$WORK/espd$sfx.log"
    die "espd in $ns did not become ready (no $db.ports)"
}
# start_iked [SIDE]: iked on the side's gateway with its configuration; waits for its socket.
start_iked() {
    gw_side "${1:-}"
    local ns=$GW_NS sfx=$GW_SFX
    ip netns exec "$ns" "$IKED" --config "$WORK/iked$sfx.toml" ${KEYLOG:+--keylog "$WORK/keylog$sfx"} \
        >>"$WORK/iked$sfx.log" 2>&1 &
    printf -v "IKED$GW_PID" %s $!
    for _ in $(seq 50); do [ -S "$WORK/iked$sfx.sock" ] && return 0; sleep 0.1; done
    tail -20 "$WORK/iked$sfx.log"
    die "iked in $ns did not open its control socket"
}
# stop_gateway [SIDE]: the side's iked and espd stopped (SIGTERM) and waited for, iked's socket
# removed.
stop_gateway() {
    gw_side "${1:-}"
    local iked=IKED$GW_PID espd=ESPD$GW_PID p
    for p in ${!iked} ${!espd}; do kill -TERM "$p" 2>/dev/null; done
    for p in ${!iked} ${!espd}; do wait "$p" 2>/dev/null || true; done
    printf -v "$iked" %s ""
    printf -v "$espd" %s ""
    rm -f "$WORK/iked$GW_SFX.sock"
}
# ikectl [SIDE] ARGS...: the side's ikectl (the side only with SIDES); gw_ikectl SIDE ARGS...
# takes the side ("" without SIDES) in either case.
ikectl() {
    if [ -n "${SIDES:-}" ]; then gw_ikectl "$@"; else gw_ikectl "" "$@"; fi
}
gw_ikectl() {
    local sfx=
    [ -z "$1" ] || sfx=-$1
    shift
    "$IKECTL" -s "$WORK/iked$sfx.sock" "$@"
}

# --- iked's configuration, written to standard output ------------------------------------------
# iked_daemon DATABASE SOCKET LISTEN [EXTRA]: the [daemon] table (LISTEN a TOML array, EXTRA
# lines added to it) and its [daemon.log] levels, IKED_LOG (default: default 1, ike and knl 2).
iked_daemon() {
    printf '[daemon]\nsadb = "%s"\ncontrol_socket = "%s"\nlisten = %s\n' "$1" "$2" "$3"
    [ -z "${4:-}" ] || printf '%s\n' "$4"
    printf '[daemon.log]\n%s\n\n' "${IKED_LOG:-default = 1
ike = 2
knl = 2}"
}
# iked_conn NAME LOCAL REMOTE PROPOSALS AGGRESSIVE(true|false) LOCAL_ID REMOTE_ID [EXTRA]: an
# IKEv1 connection authenticated by PSK on both ends; EXTRA lines added to it. With IKED_CERT
# set (a certificate file in the swanctl_dir's x509/), by signatures with that certificate
# instead: an empty LOCAL_ID then leaves our ID to the certificate's subject.
iked_conn() {
    cat <<EOF
[connections.$1]
version = 1
local_addrs = "$2"
remote_addrs = "$3"
proposals = "$4"
aggressive = $5
EOF
    if [ -n "${IKED_CERT:-}" ]; then
        printf 'send_cert = "ifasked"\nsend_certreq = true\nlocal.auth = "pubkey"\nlocal.certs = ["%s"]\n' "$IKED_CERT"
        [ -z "$6" ] || printf 'local.id = "%s"\n' "$6"
        printf 'remote.auth = "pubkey"\nremote.id = "%s"\nremote.cacerts = ["ca.pem"]\n' "$7"
    else
        printf 'local.auth = "psk"\nlocal.id = "%s"\nremote.auth = "psk"\nremote.id = "%s"\n' "$6" "$7"
    fi
    [ -z "${8:-}" ] || printf '%s\n' "$8"
}
# iked_secret NAME ID PEER_ID SECRET: the PSK shared by the two identities.
iked_secret() {
    printf '[secrets.%s]\nid = "%s"\nid-1 = "%s"\nsecret = "%s"\n' "$1" "$2" "$3" "$4"
}

# iked_conf LOCAL REMOTE IKE_PROPOSAL AGGRESSIVE(yes|no) LOCAL_TS REMOTE_TS ESP_PROPOSAL MODE
#           [EXTRA_CONN] [EXTRA_CHILD]: "$WORK/iked.toml" of the gateway facing a peer, one PSK
# connection `ours` with one child `net`, proposals in strongSwan's syntax; the extras are
# TOML lines added to the connection and to the child. With IKED_CERT set, the connection
# authenticates by signatures (iked_conn) with the credentials of IKED_SWANCTL_DIR, as
# IKED_LOCAL_ID (empty: the certificate's subject) and IKED_REMOTE_ID; no PSK is written.
iked_conf() {
    local id=gw-a@example.net remote_id=gw-b@example.net daemon_extra=""
    if [ -n "${IKED_CERT:-}" ]; then
        id=${IKED_LOCAL_ID-} remote_id=$IKED_REMOTE_ID daemon_extra="swanctl_dir = \"$IKED_SWANCTL_DIR\""
    fi
    {
        iked_daemon "$DB_A" "$WORK/iked.sock" '["198.18.0.1", "2001:db8::1"]' "$daemon_extra"
        iked_conn ours "$1" "$2" "$3" "$([ "$4" = yes ] && echo true || echo false)" \
            "$id" "$remote_id" "${9:-}"
        cat <<EOF
[connections.ours.children.net]
local_ts = "$5"
remote_ts = "$6"
esp_proposals = "$7"
mode = "$8"
start_action = "none"
${10:-}
EOF
        [ -n "${IKED_CERT:-}" ] || iked_secret ike-ours gw-a@example.net gw-b@example.net "interop-psk-$NS_TAG"
    } >"$WORK/iked.toml"
}
