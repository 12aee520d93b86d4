#!/usr/bin/env bash
# DPDK's own gateway next to ours on the same feed (the first of the gateway's targets).
#
#   ROUNDS=5 bash benches/secgw.sh OUT [SECONDS]
#
# Builds examples/ipsec-secgw from Debian's `dpdk` source package in a temporary directory
# (a deb-src entry only for that apt call; none of its code enters this repository), with
# the one change it needs on virtual devices: no RX checksum offload required. Then, on one
# lcore, one AES-128-GCM tunnel SA, 256 UDP flows, frames of 64 and 1420 bytes replayed by
# `net_pcap` with infinite_rx=1 and drained into a `net_pcap` without a TX file, alternated
# (ipsec-secgw, espd, testpmd, then again) for ROUNDS rounds (default 5) of every
# direction and size:
#   - ipsec-secgw (crypto_aesni_gcm), encrypt and decrypt (its replay window is off by
#     default, so the 256 ESP packets can be replayed);
#   - espd --config on the same pcaps and keys, inbound SA with --no-replay likewise;
#   - dpdk-testpmd io forwarding of the same feed (the feed's own cost per packet).
# Each for SECONDS (default 5, at least 4); the rate is taken from the per-second counters
# after the first second, the same way for the three. Appends one line per sample,
# "who<TAB>direction<TAB>size<TAB>Mpps<TAB>round", to OUT/secgw.tsv (Mpps empty when the
# run gave no figure); benches/report.py takes the medians.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1
SECS=${2:-5}
ROUNDS=${ROUNDS:-5}
[ "$SECS" -ge 4 ] || { echo "secgw.sh: SECONDS must be at least 4" >&2; exit 2; }
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ESPD="$TARGET/release/espd"
ESPCTL="$TARGET/release/espctl"
WORK=${SECGW_WORK:-/tmp/espgw-secgw}
mkdir -p "$WORK" "$OUT"
log() { echo "secgw.sh: $*" >&2; }
# secgw and testpmd leave their EAL runtime directories behind (espd removes its own).
trap 'rm -rf /var/run/dpdk/secgw-sg-$$ /var/run/dpdk/secgw-tp-$$ /dev/shm/espgw-secgw-$$' EXIT

# --- build ipsec-secgw ----------------------------------------------------------------------
SECGW="$WORK/build/ipsec-secgw"
if [ ! -x "$SECGW" ]; then
    ver=$(dpkg-query -W -f='${Version}' dpdk)
    mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/parts"
    cp /etc/apt/sources.list.d/*.sources "$WORK/apt/parts/" 2>/dev/null || true
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$WORK/apt/parts/src.sources"
    apt_opts=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$WORK/apt/parts"
        -o "Dir::State::Lists=$WORK/apt/lists")
    log "apt-get source dpdk=$ver (into $WORK)"
    (cd "$WORK" && apt-get "${apt_opts[@]}" update -q >/dev/null &&
        apt-get "${apt_opts[@]}" source --download-only "dpdk=$ver" >/dev/null 2>&1)
    (cd "$WORK" && tar -xJf dpdk_*.orig.tar.xz --wildcards '*/examples/ipsec-secgw/*' '*/examples/common/*')
    src=$(ls -d "$WORK"/dpdk*/examples/ipsec-secgw)
    # Virtual devices offer no RX checksum offload, which secgw requires as shipped.
    sed -i 's/\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,/.offloads = 0,/' "$src/ipsec-secgw.c"
    log "building ipsec-secgw"
    make -s -C "$src" >/dev/null
    mkdir -p "$WORK/build"
    cp "$src/build/ipsec-secgw" "$SECGW"
fi

# --- the feed ---------------------------------------------------------------------------------
# Port 0 (unprotected, net_pcap0): 172.16.1.5, the peer 172.16.2.5. Port 1 (protected,
# net_pcap1): 192.168.55.1; the host 192.168.55.10 talks to 192.168.105.10 (256 UDP flows
# by source port). net_pcap ports have MACs 02:70:63:61:70:0N.
KEY=000102030405060708090a0b0c0d0e0f; SALT=01020304
KEY_IN=101112131415161718191a1b1c1d1e1f; SALT_IN=05060708
python3 - "$WORK" "$KEY$SALT" "$KEY_IN$SALT_IN" <<'EOF' 2>/dev/null
import sys
from scapy.all import Ether, IP, UDP, Raw, wrpcap
from scapy.layers.ipsec import SecurityAssociation, ESP
work, key_out, key_in = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
peer = SecurityAssociation(ESP, spi=6, crypt_algo="AES-GCM", crypt_key=key_in,
                           tunnel_header=IP(src="172.16.2.5", dst="172.16.1.5"))
for size in (64, 1420):
    plain, esp = [], []
    for i in range(256):
        inner = IP(src="192.168.105.10", dst="192.168.55.10") / UDP(sport=1024 + i, dport=7)
        inner = inner / Raw(b"\x00" * (size - 14 - len(inner)))
        e = peer.encrypt(IP(bytes(inner)), seq_num=i + 1)
        esp.append(Ether(dst="02:70:63:61:70:00", src="02:00:00:00:00:02") / e)
        out = IP(src="192.168.55.10", dst="192.168.105.10") / UDP(sport=1024 + i, dport=7)
        out = out / Raw(b"\x00" * (size - 14 - len(out)))
        plain.append(Ether(dst="02:70:63:61:70:01", src="02:00:00:00:0a:10") / out)
    wrpcap(f"{work}/plain{size}.pcap", plain)
    wrpcap(f"{work}/esp{size}.pcap", esp)
wrpcap(f"{work}/empty.pcap", [])
EOF
colons() { echo "$1" | sed 's/../&:/g; s/:$//'; }
cat > "$WORK/secgw.cfg" <<EOF
sp ipv4 out esp protect 5 pri 1 dst 192.168.105.0/24 sport 0:65535 dport 0:65535
sp ipv4 in esp protect 6 pri 1 dst 192.168.55.0/24 sport 0:65535 dport 0:65535
sa out 5 aead_algo aes-128-gcm aead_key $(colons $KEY$SALT) mode ipv4-tunnel src 172.16.1.5 dst 172.16.2.5
sa in 6 aead_algo aes-128-gcm aead_key $(colons $KEY_IN$SALT_IN) mode ipv4-tunnel src 172.16.2.5 dst 172.16.1.5
rt ipv4 dst 172.16.2.5/32 port 0
rt ipv4 dst 192.168.55.0/24 port 1
neigh port 0 02:00:00:00:00:02
neigh port 1 02:00:00:00:0a:10
EOF

# rx files of (port 0, port 1) for a direction and size.
feed() { if [ "$1" = encrypt ]; then echo "empty.pcap plain$2.pcap"; else echo "esp$2.pcap empty.pcap"; fi; }
eal() { # tag rx0 rx1 (replayed forever unless empty)
    inf() { [ "$1" = empty.pcap ] || echo ",infinite_rx=1"; }
    echo "--no-pci --no-huge -m 1024 --no-shconf --no-telemetry --log-level error --file-prefix secgw-$1-$$" \
        "--vdev net_pcap0,rx_pcap=$WORK/$2$(inf "$2") --vdev net_pcap1,rx_pcap=$WORK/$3$(inf "$3")"
}
rate() { # "sent" counter samples one per second on stdin -> Mpps after the first second
    awk '{ v[NR] = $1 } END { n = NR; if (n < 3) { print "" } else { print (v[n] - v[2]) / (n - 2) / 1e6 } }'
}
# espd's table every second (stderr): "-------- espd gateway at T s --------", then a row per
# port whose 4th field is its TX-packets -> Mpps between the first table and the last.
espd_rate() {
    awk '/espd gateway at/ { n++; t[n] = $5; next }
         n && $1 ~ /^[0-9]+$/ && NF >= 6 { tx[n] += $4 }
         END { if (n < 2 || t[n] <= t[1]) print ""; else print (tx[n] - tx[1]) / (t[n] - t[1]) / 1e6 }'
}
# testpmd's "Port statistics" every second: the Rx-pps of both ports added, the first two
# blocks (start-up) left out, the rest averaged.
testpmd_rate() {
    awk '/Port statistics/ { n++ } /Rx-pps:/ && n > 2 { s[n] += $2 }
         END { k = 0; v = 0; for (i = 3; i <= n; i++) { v += s[i]; k++ } if (k) print v / k / 1e6; else print "" }'
}
sample() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >> "$OUT/secgw.tsv"; }

db=/dev/shm/espgw-secgw-$$
cat > "$WORK/espd.toml" <<EOF
eal = []
[dataplane]
stats_interval = 1.0
[sadb]
path = "$db"
[[ports]]
name = "outside"
device = "net_pcap0"
role = "outside"
addresses = ["172.16.1.5/16"]
[[ports]]
name = "inside"
device = "net_pcap1"
role = "inside"
addresses = ["192.168.55.1/24"]
[[routes]]
prefix = "192.168.105.0/24"
via = "172.16.2.5"
[[neighbors]]
ip = "172.16.2.5"
mac = "02:00:00:00:00:02"
port = "outside"
[[neighbors]]
ip = "192.168.55.10"
mac = "02:00:00:00:0a:10"
port = "inside"
EOF

for round in $(seq "$ROUNDS"); do
    for dir in encrypt decrypt; do
        for size in 64 1420; do
            set -- $(feed $dir $size)
            # ipsec-secgw, one lcore polling both ports, stats every second.
            log "round $round of $ROUNDS: ipsec-secgw $dir $size B"
            mpps=$(timeout -s INT $((SECS + 2)) stdbuf -oL "$SECGW" -l 1 $(eal sg "$1" "$2") --vdev crypto_aesni_gcm0 -- \
                -p 0x3 -P -u 0x1 --config "(0,0,1),(1,0,1)" -f "$WORK/secgw.cfg" -t 1 2>/dev/null </dev/null |
                awk '/Total packets sent/ { print $4 }' | rate || true)
            sample ipsec-secgw "$dir" "$size" "$mpps" "$round"
            # espd, same pcaps, keys and addresses; a fresh SA database each time.
            log "round $round of $ROUNDS: espd $dir $size B"
            rm -f "$db"
            "$ESPCTL" --sadb "$db" create >/dev/null
            "$ESPCTL" --sadb "$db" sa add --spi 5 --dir out --src 172.16.1.5 --dst 172.16.2.5 --enc aes128gcm16 \
                --enc-key "$KEY$SALT" --reqid 1 --backend ipsec-mb >/dev/null
            "$ESPCTL" --sadb "$db" sa add --spi 6 --dir in --src 172.16.2.5 --dst 172.16.1.5 --enc aes128gcm16 \
                --enc-key "$KEY_IN$SALT_IN" --no-replay --backend ipsec-mb >/dev/null
            "$ESPCTL" --sadb "$db" policy add --id 1 --dir out --action protect --reqid 1 \
                --src 192.168.55.0/24 --dst 192.168.105.0/24 >/dev/null
            mpps=$(timeout $((SECS + 10)) "$ESPD" --config "$WORK/espd.toml" --duration "$SECS" -- \
                -l 0,1 $(eal ed "$1" "$2") 2>&1 >/dev/null </dev/null | espd_rate || true)
            sample espd "$dir" "$size" "$mpps" "$round"
            rm -f "$db"
            # testpmd io forwarding of the same feed: the feed's own cost.
            log "round $round of $ROUNDS: testpmd io $dir $size B"
            mpps=$(timeout -s INT $((SECS + 2)) stdbuf -oL dpdk-testpmd -l 0,1 $(eal tp "$1" "$2") -- --forward-mode=io \
                --nb-cores=1 --stats-period 1 --no-flush-rx 2>/dev/null </dev/null | testpmd_rate || true)
            sample testpmd-io "$dir" "$size" "$mpps" "$round"
        done
    done
done
cat "$OUT/secgw.tsv" >&2
