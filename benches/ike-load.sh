#!/usr/bin/env bash
# IKEv1 load: benches/ike-load (our engine as many initiators) brings up N
# tunnels (Main Mode + Quick Mode, PSK, PFS) against a responder in another
# network namespace, for each proposal and N, and prints the figures.
#
#   bash benches/ike-load.sh [--responder charon|iked|engine]... [--tunnels "100 1000 10000"]
#                            [--proposals "aes128-sha256-modp2048 aes128-sha256-ecp256"]
#
# Responders (several --responder options run one after the other):
#   charon  strongSwan's charon (Debian 12), kernel-libipsec, its own
#           strongswan.conf, /run, pid file and vici socket.
#   iked    our daemon with a generated iked.toml (remote_addrs = %any, the
#           tunnels' hosts accepted by narrowing inside remote_ts).
#   engine  our engine alone (`ike-load --serve`): the engine's own cost as
#           a responder, without the daemon.
#
# Topology (addresses only from 198.18.0.0/15, no default routes):
#   ns R: veth 198.18.0.1/24, route 198.18.64.0/18 via 198.18.0.2, lo 198.19.128.1/32
#   ns I: veth 198.18.0.2/24, lo with the sources 198.18.64.1, .2, ...
#   Tunnel i proposes 198.19.0.1+i (inside 198.19.0.0/17) <-> 198.19.128.0/24.
#
# Each run starts a fresh responder; the generator reads the responder's CPU
# time from /proc/<pid>/stat, so handshakes per responder CPU-second is
# reported next to the wall-clock rate (the machine has two cores, shared by
# generator and responder). Results: one JSON line per run in
# $OUT/results.jsonl (OUT defaults to a temporary directory) and a table.
#
# LOAD_ARGS: more ike-load options (e.g. "--progress 5"); CHARON_LOG: charon's
# log level (default 0); CHARON_DH_SHORT=1: charon with short MODP exponents;
# CHARON_INSTALL=0: see below; KEEP=1 or OUT=DIR keeps the logs.
# Needs root, ip, strongswan-charon + swanctl (scripts/setup.sh).
# Exit 0: every run brought every tunnel up; 1: a run had failures;
# 77: prerequisites missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
responders=()
tunnel_counts="100 1000 10000"
proposals="aes128-sha256-modp2048 aes128-sha256-ecp256"
while [ $# -gt 0 ]; do
    case $1 in
        --responder) responders+=("$2"); shift 2 ;;
        --tunnels) tunnel_counts=$2; shift 2 ;;
        --proposals) proposals=$2; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#responders[@]} -gt 0 ] || responders=(charon)

charon=/usr/lib/ipsec/charon
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
    echo "SKIP: needs root and ip" >&2
    exit 77
fi
for r in "${responders[@]}"; do
    case $r in
        charon) if [ ! -x "$charon" ] || ! command -v swanctl >/dev/null; then
                    echo "SKIP: needs $charon and swanctl" >&2; exit 77; fi ;;
        iked|engine) ;;
        *) echo "unknown responder $r" >&2; exit 2 ;;
    esac
done

: "${CARGO_TARGET_DIR:=$root/target}"
export CARGO_TARGET_DIR
packages=(-p ike-load)
for r in "${responders[@]}"; do [ "$r" = iked ] && packages+=(-p iked); done
(cd "$root" && cargo build --quiet --release "${packages[@]}")
load=$CARGO_TARGET_DIR/release/ike-load
iked=$CARGO_TARGET_DIR/release/iked

R=ikeload-r-$$
I=ikeload-i-$$
dir=$(mktemp -d /tmp/ike-load.XXXXXX)
OUT=${OUT:-$dir}
mkdir -p "$OUT"
results=$OUT/results.jsonl
: > "$results"
responder_pid=

stop_responder() {
    if [ -n "$responder_pid" ]; then
        kill -TERM "$responder_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$responder_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$responder_pid" 2>/dev/null || true
        wait "$responder_pid" 2>/dev/null || true
        responder_pid=
    fi
}
cleanup() {
    stop_responder
    rm -f "/dev/shm/ike-load-$$-sadb" "/dev/shm/ike-load-$$-sadb.iked.lock"
    ip netns del "$I" 2>/dev/null || true
    ip netns del "$R" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ] || [ "$OUT" = "$dir" ]; then echo "logs and results in $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

responder_addr=198.18.0.1
source_base=198.18.64.1
ip netns add "$R"
ip netns add "$I"
ip -n "$R" link set lo up
ip -n "$I" link set lo up
ip link add veth-r netns "$R" type veth peer name veth-i netns "$I"
ip -n "$R" addr add $responder_addr/24 dev veth-r
ip -n "$I" addr add 198.18.0.2/24 dev veth-i
ip -n "$R" link set veth-r up
ip -n "$I" link set veth-i up
ip -n "$R" route add 198.18.64.0/18 via 198.18.0.2
# kernel-libipsec routes each policy through its TUN device with a source
# address inside charon's local_ts: it must have one. (CHARON_INSTALL=0
# leaves it out: then every child SA install fails at the route and charon
# deletes the child SAs, which isolates the cost of holding them.)
[ "${CHARON_INSTALL:-1}" = 1 ] && ip -n "$R" addr add 198.19.128.1/32 dev lo
# The largest run's source addresses, once: one per tunnel up to 5000 (two
# sockets each must fit the open-files limit), as /32s on lo (this kernel
# has no dummy interfaces).
max_n=0
for n in $tunnel_counts; do [ "$n" -gt "$max_n" ] && max_n=$n; done
sources_for() { if [ "$1" -gt 5000 ]; then echo 5000; else echo "$1"; fi; }
max_sources=$(sources_for "$max_n")
python3 - "$max_sources" > "$dir/addrs.batch" <<'PY'
import ipaddress, sys
base = ipaddress.IPv4Address("198.18.64.1")
for i in range(int(sys.argv[1])):
    print(f"address add {base + i}/32 dev lo")
PY
ip -n "$I" -batch "$dir/addrs.batch"
echo "topology: $R ($responder_addr) <-> $I ($max_sources sources from $source_base)"

psk=ike-load-secret

start_charon() { # PROPOSAL ESP
    local d=$dir/charon
    rm -rf "$d"
    mkdir -p "$d"
    (cd "$d" && mkdir -p x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12)
    cat > "$d/strongswan.conf" <<EOF
charon {
    install_routes = no
    install_virtual_ip = no
    # CHARON_DH_SHORT=1: short MODP exponents, as our engine uses (strongSwan
    # defaults to full-length ones, RFC 2631 / ANSI X9.42).
    dh_exponent_ansi_x9_42 = $([ "${CHARON_DH_SHORT:-0}" = 1 ] && echo no || echo yes)
    # strongSwan's advice for many IKE SAs: a hashed, segmented SA table.
    ikesa_table_size = 4096
    ikesa_table_segments = 16
    # kernel-libipsec (ESP in user space: this kernel has no XFRM/ESP) before
    # kernel-netlink, so that it is the IPsec backend.
    load = random nonce openssl hmac kdf kernel-libipsec kernel-netlink socket-default vici
    plugins {
        vici { socket = unix://$d/charon.vici }
    }
    filelog {
        log { path = $d/charon.log
              flush_line = no
              default = ${CHARON_LOG:-0}
              time_format = %T }
    }
}
EOF
    cat > "$d/swanctl.conf" <<EOF
connections {
    load {
        version = 1
        local_addrs = $responder_addr
        remote_addrs = %any
        proposals = $1
        dpd_delay = 0
        local { auth = psk
                id = $responder_addr }
        remote { auth = psk
                 id = %any }
        children {
            load {
                local_ts = 198.19.128.0/24
                remote_ts = 198.19.0.0/17
                esp_proposals = $2
                mode = tunnel
                start_action = none
            }
        }
    }
}
secrets {
    ike-load { secret = "$psk" }
}
EOF
    ip netns exec "$R" unshare -m --propagation private env STRONGSWAN_CONF="$d/strongswan.conf" \
        sh -c "mount -t tmpfs tmpfs /run && exec $charon" > "$d/charon.out" 2>&1 &
    responder_pid=$!
    for _ in $(seq 100); do [ -S "$d/charon.vici" ] && break; sleep 0.1; done
    if [ ! -S "$d/charon.vici" ]; then echo "charon did not start"; cat "$d/charon.out" "$d/charon.log" 2>/dev/null; return 1; fi
    ip netns exec "$R" env STRONGSWAN_CONF="$d/strongswan.conf" \
        swanctl --load-all --noprompt --uri "unix://$d/charon.vici" --file "$d/swanctl.conf" > "$d/swanctl.out"
}

# iked's configuration for a run, swanctl's names (docs/configuration.md).
write_iked_config() { # FILE PROPOSAL ESP
    cat > "$1" <<EOF
[daemon]
sadb = "/dev/shm/ike-load-$$-sadb"
control_socket = "$dir/iked/iked.sock"
listen = ["$responder_addr"]
port = 500
port_nat_t = 4500
delete_sas_on_exit = false

[daemon.log]
default = 0

[connections.load]
version = 1
local_addrs = "$responder_addr"
remote_addrs = "%any"
proposals = "$2"
dpd_delay = "0s"

[connections.load.local]
auth = "psk"
id = "$responder_addr"

# remote.id = "%any" would be the swanctl way, but iked maps it to the
# address of remote_addrs (none here) and the engine compares identities
# exactly: every tunnel presents @load.example instead (ike-load --id shared).
[connections.load.remote]
auth = "psk"
id = "@load.example"

# Each tunnel proposes its own host inside remote_ts; iked narrows to it.
[connections.load.children.load]
local_ts = "198.19.128.0/24"
remote_ts = "198.19.0.0/17"
esp_proposals = "$3"
mode = "tunnel"
start_action = "none"

[secrets.ike-load]
secret = "$psk"
EOF
}

start_iked() { # PROPOSAL ESP
    local d=$dir/iked
    rm -rf "$d"
    mkdir -p "$d"
    write_iked_config "$d/iked.toml" "$1" "$2"
    # A fresh SA database per run: iked leaves its SAs in it on exit
    # (delete_sas_on_exit = false, for a quick stop) and would find them.
    rm -f "/dev/shm/ike-load-$$-sadb"
    "$iked" --check-config "$d/iked.toml" > "$d/check.out" 2>&1 || { cat "$d/check.out"; return 1; }
    ip netns exec "$R" "$iked" --config "$d/iked.toml" > "$d/iked.out" 2>&1 &
    responder_pid=$!
    # Ready when it listens on UDP 500 of the responder address.
    for _ in $(seq 50); do
        ip netns exec "$R" ss -Hnlu "sport = :500" 2>/dev/null | grep -q "$responder_addr" && return 0
        kill -0 "$responder_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "iked does not listen on $responder_addr:500 (its UDP loop is not attached yet?); skipped"
    sed 's/^/    iked: /' "$d/iked.out" | tail -n 5
    stop_responder
    return 2
}

start_engine() { # PROPOSAL ESP N SOURCES
    local d=$dir/engine ids=fqdn
    mkdir -p "$d"
    [ "$4" -lt "$3" ] && ids=address
    ip netns exec "$R" "$load" --serve --responder $responder_addr --tunnels "$3" --sources "$4" \
        --source-base $source_base --id $ids --proposal "$1" --esp "$2" --psk "$psk" \
        > "$d/serve.out" 2>&1 &
    responder_pid=$!
    for _ in $(seq 50); do
        ip netns exec "$R" ss -Hnlu "sport = :500" 2>/dev/null | grep -q "$responder_addr" && return 0
        sleep 0.1
    done
    echo "ike-load --serve did not start"; cat "$d/serve.out"; return 1
}

failed=0
for responder in "${responders[@]}"; do
    for proposal in $proposals; do
        esp=aes128gcm16-${proposal##*-}
        for n in $tunnel_counts; do
            sources=$(sources_for "$n")
            ids=fqdn
            [ "$responder" = engine ] && [ "$sources" -lt "$n" ] && ids=address
            [ "$responder" = iked ] && ids=shared
            rc=0
            case $responder in
                charon) start_charon "$proposal" "$esp" || rc=$? ;;
                iked) start_iked "$proposal" "$esp" || rc=$? ;;
                engine) start_engine "$proposal" "$esp" "$n" "$sources" || rc=$? ;;
            esac
            if [ $rc = 2 ]; then continue 3; fi
            [ $rc = 0 ] || { failed=1; stop_responder; continue; }
            echo "== $responder $proposal / $esp, $n tunnels from $sources sources"
            run_rc=0
            ip netns exec "$I" "$load" --responder $responder_addr --tunnels "$n" --sources "$sources" \
                --source-base $source_base --id $ids --proposal "$proposal" --esp "$esp" --psk "$psk" \
                --responder-pid "$responder_pid" --label "$responder" ${LOAD_ARGS:-} \
                > "$dir/run.out" 2> "$dir/run.err" || run_rc=$?
            head -n -1 "$dir/run.out"
            cat "$dir/run.err" >&2
            children=null
            if [ "$responder" = charon ]; then
                # What charon itself holds. Our engine ignores the Delete
                # charon sends for a child SA it failed to install (it names
                # our inbound SPI), so the generator cannot see that: count.
                d=$dir/charon
                ip netns exec "$R" env STRONGSWAN_CONF="$d/strongswan.conf" \
                    swanctl --list-sas --uri "unix://$d/charon.vici" > "$d/sas.out" 2>&1 || true
                children=$(grep -c ' INSTALLED' "$d/sas.out" || true)
                echo "  charon: $(grep -c ' ESTABLISHED' "$d/sas.out" || true) IKE SAs established," \
                    "$children child SAs installed"
                [ "$children" = "$n" ] || { echo "  FAIL: charon holds $children child SAs, not $n"; run_rc=1; }
            fi
            if [ "$responder" = iked ]; then
                # iked's own count of installed child SA pairs.
                "$CARGO_TARGET_DIR/release/ikectl" --socket "$dir/iked/iked.sock" --json stats \
                    > "$dir/iked/stats.json" 2>&1 || true
                children=$(jq -r '[.. | objects | select(has("child_sas")) | .child_sas][0] // "null"' \
                    "$dir/iked/stats.json" 2>/dev/null || echo null)
                echo "  iked: $children child SA pairs installed"
                [ "$children" = "$n" ] || { echo "  FAIL: iked holds $children child SA pairs, not $n"; run_rc=1; }
            fi
            tail -n 1 "$dir/run.out" | jq -c --argjson c "$children" '. + {responder_child_sas: $c}' >> "$results"
            [ $run_rc = 0 ] || failed=1
            stop_responder
            [ "$responder" = charon ] && cp "$dir/charon/charon.log" "$dir/charon-$proposal-$n.log" 2>/dev/null || true
        done
    done
done

echo
echo "| responder | proposal | ESP | N | handshakes/s | time to N (s) | failures | retransmissions (ours / responder's) | responder CPU s | handshakes per CPU-s | p99 latency ms | child SAs at the responder |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
jq -r '"| \(.responder) | \(.proposal) | \(.esp) | \(.tunnels) | \(.handshakes_per_second|floor) | \(.time_to_n_seconds*100|round/100) | \(.failures) | \(.retransmissions) / \(.duplicates_received) | \(if .responder_cpu_seconds then (.responder_cpu_seconds*100|round/100) else "-" end) | \(if .handshakes_per_cpu_second then (.handshakes_per_cpu_second|floor) else "-" end) | \(.latency_ms_p99|floor) | \(.responder_child_sas // "-") |"' "$results"
exit $failed
