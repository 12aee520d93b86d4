#!/usr/bin/env python3
"""Independent side of espd's pcap-driven gateway test (scapy 2.5).

  gw_pcap.py make DIR   writes DIR/inside_in.pcap (plaintext from host A) and
                        DIR/outside_in.pcap (ESP from the peer: good packets, then a replay,
                        a tampered ICV and an unknown SPI), and DIR/expect.json
  gw_pcap.py check DIR  decrypts DIR/outside_out.pcap with the outbound SA, compares the
                        inner packets with what went in, and compares DIR/inside_out.pcap
                        with the inner packets the peer sent; exits non-zero on a mismatch.

Options (both commands; the defaults are the single-queue net_pcap run above):
  --gw-out-mac MAC, --gw-in-mac MAC
                        the gateway's outside and inside port MACs (virtio-user ports take
                        theirs from `mac=`, not net_pcap's 02:70:63:61:70:<index>)
  --queues N            N > 1: make splits each input round-robin over N files,
                        DIR/{inside,outside}_in_q<k>.pcap (one per RX queue), and check reads
                        DIR/{inside,outside}_out_q<k>.pcap. Several queues and workers carry
                        the packets, so check compares them as multisets and wants the ESP
                        sequence numbers to be exactly 1..n in some order.
"""
import argparse
import json
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import Ether, IP, IPv6, UDP, TCP, Raw, rdpcap, wrpcap  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

# net_pcap ports get 02:70:63:61:70:<index> (DPDK's pcap PMD); --gw-out-mac/--gw-in-mac
# replace them.
GW_OUT_MAC = "02:70:63:61:70:00"
GW_IN_MAC = "02:70:63:61:70:01"
PEER_MAC = "02:00:00:00:00:02"
HOST_A_MAC = "02:00:00:00:0a:10"
GW_OUT, PEER = "198.18.0.1", "198.18.0.2"
HOST_A, HOST_B = "198.18.1.10", "198.19.1.10"
KEY_OUT = bytes(range(16)) + b"\x01\x02\x03\x04"  # SPI 0x2000, ours -> peer
KEY_IN = bytes(range(16, 32)) + b"\x05\x06\x07\x08"  # SPI 0x1000, peer -> us


def sa(spi, key, src, dst):
    return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key,
                               auth_algo="NULL", tunnel_header=IP(src=src, dst=dst))


def inner_a_to_b(i):
    return IP(src=HOST_A, dst=HOST_B, ttl=64, id=i) / UDP(sport=10000 + i, dport=9) / Raw(bytes([i % 256]) * (10 + 37 * i % 1300))


def inner_b_to_a(i):
    return IP(src=HOST_B, dst=HOST_A, ttl=64, id=1000 + i) / TCP(sport=80, dport=40000 + i, flags="A") / Raw(bytes([(i * 7) % 256]) * (20 + 53 * i % 1200))


def write_split(d, name, frames, queues):
    """DIR/NAME.pcap, or with several queues DIR/NAME_q<k>.pcap, frame i in file i % queues."""
    if queues == 1:
        wrpcap(f"{d}/{name}.pcap", frames)
        return
    for k in range(queues):
        wrpcap(f"{d}/{name}_q{k}.pcap", frames[k::queues])


def read_merged(d, name, queues):
    if queues == 1:
        return list(rdpcap(f"{d}/{name}.pcap"))
    return [f for k in range(queues) for f in rdpcap(f"{d}/{name}_q{k}.pcap")]


def make(d, queues=1):
    plain = [Ether(src=HOST_A_MAC, dst=GW_IN_MAC) / inner_a_to_b(i) for i in range(40)]
    write_split(d, "inside_in", plain, queues)
    peer = sa(0x1000, KEY_IN, PEER, GW_OUT)
    good = [peer.encrypt(inner_b_to_a(i), seq_num=i + 1) for i in range(30)]
    frames = [Ether(src=PEER_MAC, dst=GW_OUT_MAC) / p for p in good]
    replay = frames[5].copy()
    tampered = bytearray(bytes(frames[29]))
    tampered[-1] ^= 0x80
    unknown = Ether(src=PEER_MAC, dst=GW_OUT_MAC) / sa(0x9999, KEY_IN, PEER, GW_OUT).encrypt(inner_b_to_a(99), seq_num=1)
    write_split(d, "outside_in", frames[:29] + [replay, Ether(bytes(tampered)), unknown], queues)
    json.dump({"plain": len(plain), "esp_good": 29, "replay": 1, "auth": 1, "no_sa": 1}, open(f"{d}/expect.json", "w"))


def check(d, queues=1):
    ok = True
    out = read_merged(d, "outside_out", queues)
    ours = sa(0x2000, KEY_OUT, GW_OUT, PEER)
    want = [bytes(inner_a_to_b(i).__class__(bytes(inner_a_to_b(i)))) for i in range(40)]
    got = []
    seqs = []
    for f in out:
        if f[Ether].dst != PEER_MAC or f[Ether].src != GW_OUT_MAC:
            print(f"outside: bad MACs {f[Ether].src} -> {f[Ether].dst}")
            ok = False
        ip = f[IP]
        if (ip.src, ip.dst, ip.proto) != (GW_OUT, PEER, 50):
            print(f"outside: bad outer header {ip.src} -> {ip.dst} proto {ip.proto}")
            ok = False
        seqs.append(ip[ESP].seq)
        got.append(bytes(ours.decrypt(IP(bytes(ip)))))
    if queues > 1:
        # Each worker reserves its own sequence numbers and sends on its own queue: the
        # numbers are unique, not in order across files; the inner packets are a multiset.
        order = sorted(range(len(seqs)), key=lambda i: seqs[i])
        seqs = [seqs[i] for i in order]
        got = sorted(got)
        want = sorted(want)
    if seqs != list(range(1, len(seqs) + 1)):
        print(f"outside: sequence numbers {seqs[:5]}... are not 1, 2, 3, ...")
        ok = False
    # espd decrements nothing (it is a tunnel endpoint, not a router for the inner packet).
    if got != want:
        print(f"outside: {len(got)} decrypted packets, {len(want)} expected; first mismatch at "
              f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")
        ok = False
    inside = read_merged(d, "inside_out", queues)
    want_in = [bytes(IP(bytes(inner_b_to_a(i)))) for i in range(29)]
    got_in = [bytes(f[IP]) for f in inside]
    if queues > 1:
        want_in, got_in = sorted(want_in), sorted(got_in)
    macs_ok = all(f[Ether].dst == HOST_A_MAC and f[Ether].src == GW_IN_MAC for f in inside)
    if got_in != want_in or not macs_ok:
        print(f"inside: {len(got_in)} packets, {len(want_in)} expected, MACs ok: {macs_ok}")
        ok = False
    print(f"outside: {len(got)} ESP packets decrypted by scapy; inside: {len(got_in)} plaintext packets")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="scapy side of espd's pcap-driven gateway tests")
    ap.add_argument("command", choices=["make", "check"])
    ap.add_argument("dir")
    ap.add_argument("--gw-out-mac", default=GW_OUT_MAC, help="the gateway's outside port MAC")
    ap.add_argument("--gw-in-mac", default=GW_IN_MAC, help="the gateway's inside port MAC")
    ap.add_argument("--queues", type=int, default=1, help="RX/TX queues the frames are split over")
    a = ap.parse_args()
    if a.queues < 1:
        ap.error("--queues must be 1 or more")
    GW_OUT_MAC, GW_IN_MAC = a.gw_out_mac.lower(), a.gw_in_mac.lower()
    {"make": make, "check": check}[a.command](a.dir, a.queues)
