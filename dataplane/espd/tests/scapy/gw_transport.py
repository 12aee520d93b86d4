#!/usr/bin/env python3
"""Independent side of espd's transport-mode test (scapy 2.5): the gateway's own traffic
(host stack, through the exception port) protected in transport mode between the gateways.

  gw_transport.py make DIR   DIR/host_in.pcap: UDP from the gateway's host stack to the peer
                             (as it comes out of the TAP); DIR/outside_in.pcap: transport-mode
                             ESP from the peer to the gateway
  gw_transport.py check DIR  decrypts DIR/outside_out.pcap; compares DIR/host_out.pcap (what
                             espd delivered to the host stack) with what the peer sent
"""
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import Ether, IP, UDP, Raw, rdpcap, wrpcap  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

GW_OUT_MAC, PEER_MAC = "02:70:63:61:70:00", "02:00:00:00:00:02"
GW, PEER = "198.18.0.1", "198.18.0.2"
K_OUT = bytes(range(40, 60))
K_IN = bytes(range(60, 80))


def sa(spi, key):
    return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key, auth_algo="NULL")


def pkt(src, dst, i):
    return IP(src=src, dst=dst, id=i, ttl=64) / UDP(sport=1701, dport=1701) / Raw(bytes([i]) * (50 + 100 * i))


def make(d):
    # From the host stack: the TAP has the outside port's MAC.
    wrpcap(f"{d}/host_in.pcap", [Ether(src=GW_OUT_MAC, dst=PEER_MAC) / pkt(GW, PEER, i) for i in range(6)])
    peer = sa(0x3001, K_IN)
    wrpcap(f"{d}/outside_in.pcap", [Ether(src=PEER_MAC, dst=GW_OUT_MAC) / peer.encrypt(pkt(PEER, GW, i), seq_num=i + 1) for i in range(6)])


def check(d):
    ok = True
    ours = sa(0x3000, K_OUT)
    got = []
    for f in rdpcap(f"{d}/outside_out.pcap"):
        ip = f[IP]
        if ip.proto != 50 or (ip.src, ip.dst) != (GW, PEER):
            print(f"not transport ESP between the gateways: {ip.summary()}")
            ok = False
            continue
        got.append(bytes(ours.decrypt(IP(bytes(ip)))))
    want = [bytes(IP(bytes(pkt(GW, PEER, i)))) for i in range(6)]
    if got != want:
        print(f"outside: {len(got)} decrypted, {sum(a == b for a, b in zip(got, want))} match of {len(want)}")
        ok = False
    host = [bytes(f[IP]) for f in rdpcap(f"{d}/host_out.pcap")]
    want_host = [bytes(IP(bytes(pkt(PEER, GW, i)))) for i in range(6)]
    if host != want_host:
        print(f"host: {len(host)} delivered, {len(want_host)} expected")
        ok = False
    print(f"transport: {len(got)} ESP packets decrypted by scapy, {len(host)} delivered to the host stack")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
