#!/usr/bin/env bash
# The gateway's main job, as far as it is built: espd forwarding over DPDK virtual devices,
# with its statistics. Needs root. Usage: bash scripts/demo.sh
set -euo pipefail
export PYTHONWARNINGS=ignore
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p espd
ESPD=target/release/espd
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

EAL=(-l 0,1 --no-pci --no-huge -m 1024 --no-shconf --no-telemetry --log-level error)

echo "== 1. io forwarding between two net_null ports for 3 s (the I/O baseline)"
"$ESPD" --duration 3 --stats-interval 1 -- "${EAL[@]}" --file-prefix espd-demo1 \
    --vdev net_null0 --vdev net_null1

echo
echo "== 2. a capture pushed through: 1000 UDP frames in on net_pcap0, out on net_pcap1"
python3 - "$work/in.pcap" <<'PY'
import sys
from scapy.all import Ether, IP, UDP, Raw, wrpcap
pkts = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
        IP(src="198.18.1.10", dst="198.19.1.10") / UDP(sport=10000 + i, dport=9) /
        Raw(bytes([i % 256]) * (18 + i % 1400)) for i in range(1000)]
wrpcap(sys.argv[1], pkts)
PY
python3 -c "from scapy.all import wrpcap; wrpcap('$work/empty.pcap', [])"
"$ESPD" --idle-exit-ms 500 --stats-interval 0 -- "${EAL[@]}" --file-prefix espd-demo2 \
    --vdev "net_pcap0,rx_pcap=$work/in.pcap,tx_pcap=$work/back.pcap" \
    --vdev "net_pcap1,rx_pcap=$work/empty.pcap,tx_pcap=$work/out.pcap"
in_sum=$(python3 -c "from scapy.all import rdpcap; import hashlib; print(hashlib.sha256(b''.join(bytes(p) for p in rdpcap('$work/in.pcap'))).hexdigest())")
out_sum=$(python3 -c "from scapy.all import rdpcap; import hashlib; print(hashlib.sha256(b''.join(bytes(p) for p in rdpcap('$work/out.pcap'))).hexdigest())")
echo "sha256 of frames in:  $in_sum"
echo "sha256 of frames out: $out_sum"
[ "$in_sum" = "$out_sum" ] && echo "OK: every frame forwarded unchanged" || { echo "MISMATCH"; exit 1; }
