#!/usr/bin/env python3
"""Independent side of two espd tests on how an SA is named and what it admits (scapy 2.5).

  gw_sa_keys.py shared-spi make DIR
        DIR/inside_in.pcap: plaintext from host A, interleaved, to network 1 (behind peer 1)
        and network 2 (behind peer 2)
  gw_sa_keys.py shared-spi check DIR
        every frame of DIR/outside_out.pcap is tunnel ESP with SPI 0x5150 to peer 1 or 2; each
        decrypts with that peer's key (and not with the other's) to exactly the packets sent
        to the network behind it, in order, with sequence numbers 1, 2, 3, ...
  gw_sa_keys.py transport make DIR
        DIR/outside_in.pcap: transport-mode ESP (SPI 0x3101, L2TP: UDP 1701 to 1701 between
        the peer and the gateway) that decrypts fine: a conforming packet, then one that
        breaks each selector field (outer source, outer destination (the gateway's second
        address), protocol, source port, destination port), then a conforming one again
  gw_sa_keys.py transport check DIR
        DIR/host_out.pcap (delivered to the host stack) holds exactly the two conforming
        packets
"""
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import Ether, IP, UDP, TCP, Raw, rdpcap, wrpcap  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

GW_OUT_MAC, GW_IN_MAC = "02:70:63:61:70:00", "02:70:63:61:70:01"
HOST_A_MAC = "02:00:00:00:0a:10"
PEER_MAC = {"198.18.0.2": "02:00:00:00:00:02", "198.18.0.3": "02:00:00:00:00:03"}
GW, GW_SECOND, HOST_A = "198.18.0.1", "198.18.0.5", "198.18.1.10"
# Both peers chose SPI 0x5150 for their inbound SA (our outbound one).
SHARED_SPI = 0x5150
PEERS = {
    "198.18.0.2": ("198.19.1.", bytes(range(100, 116)) + b"\x01\x01\x01\x01"),
    "198.18.0.3": ("198.19.2.", bytes(range(200, 216)) + b"\x02\x02\x02\x02"),
}
TRANSPORT_SPI = 0x3101
K_TRANSPORT = bytes(range(60, 76)) + b"\x09\x09\x09\x09"


def gcm(spi, key, tunnel=None):
    kw = {"tunnel_header": IP(src=tunnel[0], dst=tunnel[1])} if tunnel else {}
    return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key, auth_algo="NULL", **kw)


def to_net(peer, i):
    net = PEERS[peer][0]
    return IP(src=HOST_A, dst=f"{net}{10 + i}", ttl=64, id=i) / UDP(sport=20000 + i, dport=9) / Raw(bytes([i]) * (30 + 11 * i))


def flows():
    """(peer, i) in the order host A sends them: 12 to network 1 and 9 to network 2, mixed."""
    order = []
    n = {p: 0 for p in PEERS}
    for k in range(21):
        p = "198.18.0.3" if k % 7 in (1, 3, 5) else "198.18.0.2"
        order.append((p, n[p]))
        n[p] += 1
    return order


def shared_spi_make(d):
    frames = [Ether(src=HOST_A_MAC, dst=GW_IN_MAC) / to_net(p, i) for p, i in flows()]
    wrpcap(f"{d}/inside_in.pcap", frames)


def shared_spi_check(d):
    ok = True
    got = {p: [] for p in PEERS}
    seqs = {p: [] for p in PEERS}
    for f in rdpcap(f"{d}/outside_out.pcap"):
        ip = f[IP]
        if ip.proto != 50 or ip.src != GW or ip.dst not in PEERS or f[Ether].dst != PEER_MAC[ip.dst]:
            print(f"not tunnel ESP to a peer: {f.summary()}")
            ok = False
            continue
        if ip[ESP].spi != SHARED_SPI:
            print(f"SPI {ip[ESP].spi:#x} to {ip.dst}, expected {SHARED_SPI:#x}")
            ok = False
        other = next(p for p in PEERS if p != ip.dst)
        try:
            gcm(SHARED_SPI, PEERS[other][1], (GW, other)).decrypt(IP(bytes(ip)))
            print(f"a packet to {ip.dst} decrypts with {other}'s key")
            ok = False
        except Exception:
            pass
        seqs[ip.dst].append(ip[ESP].seq)
        got[ip.dst].append(bytes(gcm(SHARED_SPI, PEERS[ip.dst][1], (GW, ip.dst)).decrypt(IP(bytes(ip)))))
    for p in PEERS:
        want = [bytes(IP(bytes(to_net(q, i)))) for q, i in flows() if q == p]
        if got[p] != want:
            print(f"{p}: {len(got[p])} packets decrypted, {len(want)} expected, "
                  f"{sum(a == b for a, b in zip(got[p], want))} equal")
            ok = False
        if seqs[p] != list(range(1, len(want) + 1)):
            print(f"{p}: sequence numbers {seqs[p]}")
            ok = False
        print(f"{p}: {len(got[p])} packets decrypted with its own key")
    sys.exit(0 if ok else 1)


PEER = "198.18.0.2"


def l2tp(src, dst, i, proto="udp", sport=1701, dport=1701):
    l4 = UDP(sport=sport, dport=dport) if proto == "udp" else TCP(sport=sport, dport=dport, flags="A")
    return IP(src=src, dst=dst, id=i, ttl=64) / l4 / Raw(bytes([i]) * (40 + i))


def transport_packets():
    """(what, packet) in sending order; the first and last conform."""
    return [
        ("conforming", l2tp(PEER, GW, 1)),
        ("source address", l2tp("198.18.0.9", GW, 2)),
        ("destination address", l2tp(PEER, GW_SECOND, 3)),
        ("protocol", l2tp(PEER, GW, 4, proto="tcp")),
        ("source port", l2tp(PEER, GW, 5, sport=1702)),
        ("destination port", l2tp(PEER, GW, 6, dport=1702)),
        ("conforming", l2tp(PEER, GW, 7)),
    ]


def transport_make(d):
    peer = gcm(TRANSPORT_SPI, K_TRANSPORT)
    frames = [Ether(src=PEER_MAC[PEER], dst=GW_OUT_MAC) / peer.encrypt(p, seq_num=n + 1)
              for n, (_, p) in enumerate(transport_packets())]
    # The ICV does not cover the outer header: each one decrypts fine.
    for (what, p), f in zip(transport_packets(), frames):
        assert bytes(gcm(TRANSPORT_SPI, K_TRANSPORT).decrypt(IP(bytes(f[IP])))) == bytes(IP(bytes(p))), what
    wrpcap(f"{d}/outside_in.pcap", frames)


def transport_check(d):
    host = [bytes(f[IP]) for f in rdpcap(f"{d}/host_out.pcap")]
    want = [bytes(IP(bytes(p))) for what, p in transport_packets() if what == "conforming"]
    print(f"transport: {len(host)} packets delivered to the host stack, {len(want)} conforming sent")
    sys.exit(0 if host == want else 1)


if __name__ == "__main__":
    {
        ("shared-spi", "make"): shared_spi_make,
        ("shared-spi", "check"): shared_spi_check,
        ("transport", "make"): transport_make,
        ("transport", "check"): transport_check,
    }[(sys.argv[1], sys.argv[2])](sys.argv[3])
