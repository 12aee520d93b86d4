#!/usr/bin/env python3
"""Independent side of espd's algorithm matrix test (scapy 2.5).

Every case is one tunnel SA pair with its own inner subnets: each algorithm espd supports x
outer/inner IPv4 or IPv6 x plain ESP or UDP-encapsulated ESP (RFC 3948).

  gw_matrix.py make DIR   writes DIR/cases.json (SPIs, keys, subnets for the Rust side),
                          DIR/inside_in.pcap and DIR/outside_in.pcap
  gw_matrix.py check DIR  decrypts every ESP packet in DIR/outside_out.pcap with its case's
                          SA and compares the inner packets; compares DIR/inside_out.pcap
                          with the inner packets the peer sent
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import Ether, IP, IPv6, UDP, Raw, rdpcap, wrpcap  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

GW_OUT_MAC, GW_IN_MAC = "02:70:63:61:70:00", "02:70:63:61:70:01"
PEER_MAC, HOST_MAC = "02:00:00:00:00:02", "02:00:00:00:0a:10"
ALGS = [  # espctl-style name, scapy crypt, key bytes, scapy auth, auth key bytes
    ("aes128gcm16", "AES-GCM", 20, None, 0),
    ("aes192gcm16", "AES-GCM", 28, None, 0),
    ("aes256gcm16", "AES-GCM", 36, None, 0),
    ("aes128-sha1", "AES-CBC", 16, "HMAC-SHA1-96", 20),
    ("aes192-sha256", "AES-CBC", 24, "SHA2-256-128", 32),
    ("aes256-sha256", "AES-CBC", 32, "SHA2-256-128", 32),
    ("aes256-sha384", "AES-CBC", 32, "SHA2-384-192", 48),
    ("aes256-sha512", "AES-CBC", 32, "SHA2-512-256", 64),
    ("null-sha256", "NULL", 0, "SHA2-256-128", 32),
]
PER_CASE = 3


def cases():
    out = []
    k = 0
    for alg in ALGS:
        for fam in (4, 6):
            for udp in (False, True):
                if fam == 4:
                    c = dict(gw="198.18.0.1", peer="198.18.0.2", a_net=f"198.18.{16 + k}.0/24",
                             b_net=f"198.19.{16 + k}.0/24", a_host=f"198.18.{16 + k}.10", b_host=f"198.19.{16 + k}.10")
                else:
                    c = dict(gw="2001:db8::1", peer="2001:db8::2", a_net=f"2001:db8:a:{k:x}::/64",
                             b_net=f"2001:db8:b:{k:x}::/64", a_host=f"2001:db8:a:{k:x}::10", b_host=f"2001:db8:b:{k:x}::10")
                c.update(id=k, alg=alg[0], crypt=alg[1], auth=alg[3], family=fam, udp=udp,
                         spi_out=0x10000 + k, spi_in=0x20000 + k, reqid=100 + k)
                out.append(c)
                k += 1
    return out


def keys(c, seed):
    alg = next(a for a in ALGS if a[0] == c["alg"])
    r = bytes((seed * 31 + i * 7 + c["id"]) % 256 for i in range(alg[2] + alg[4]))
    return r[:alg[2]], r[alg[2]:]


def sa(c, spi, ckey, akey, src, dst):
    cls = IP if c["family"] == 4 else IPv6
    return SecurityAssociation(ESP, spi=spi, crypt_algo=c["crypt"], crypt_key=ckey or None,
                               auth_algo=c["auth"] or "NULL", auth_key=akey or None,
                               tunnel_header=cls(src=src, dst=dst),
                               nat_t_header=UDP(sport=4500, dport=4500) if c["udp"] else None)


def inner(c, src, dst, i, base):
    cls = IP if c["family"] == 4 else IPv6
    return cls(src=src, dst=dst) / UDP(sport=base + i, dport=7) / Raw(bytes([(c["id"] + i) % 256]) * (30 + 97 * i + c["id"]))


def fix_lengths(p, c):
    # scapy 2.5 writes NAT-T UDP headers with length 8: let it recompute.
    if c["udp"]:
        if c["family"] == 4:
            del p[IP].len
            del p[IP].chksum
        else:
            del p[IPv6].plen
        del p[UDP].len
        del p[UDP].chksum
    return p.__class__(bytes(p))


def make(d):
    cs = cases()
    plain, esp_in = [], []
    peers = []
    for c in cs:
        kout, aout = keys(c, 1)
        kin, ain = keys(c, 2)
        c.update(ckey_out=kout.hex(), akey_out=aout.hex(), ckey_in=kin.hex(), akey_in=ain.hex())
        peers.append(sa(c, c["spi_in"], kin, ain, c["peer"], c["gw"]))
    # Round robin over the cases: every burst the gateway reads spans all 36 SAs and their
    # 9 algorithms, so the dataplane's crypto stage sees bursts that mix SAs and algorithms.
    for i in range(PER_CASE):
        for c, peer in zip(cs, peers):
            plain.append(Ether(src=HOST_MAC, dst=GW_IN_MAC) / inner(c, c["a_host"], c["b_host"], i, 20000))
            e = fix_lengths(peer.encrypt(inner(c, c["b_host"], c["a_host"], i, 30000), seq_num=i + 1), c)
            esp_in.append(Ether(src=PEER_MAC, dst=GW_OUT_MAC) / e)
    wrpcap(f"{d}/inside_in.pcap", plain)
    wrpcap(f"{d}/outside_in.pcap", esp_in)
    json.dump(cs, open(f"{d}/cases.json", "w"))


def check(d):
    cs = {c["id"]: c for c in json.load(open(f"{d}/cases.json"))}
    by_spi = {c["spi_out"]: c for c in cs.values()}
    got = {k: [] for k in cs}
    bad = 0
    for f in rdpcap(f"{d}/outside_out.pcap"):
        l3 = f.payload
        raw = bytes(l3)
        if l3.haslayer(UDP) and l3[UDP].dport == 4500:
            spi = int.from_bytes(bytes(l3[UDP].payload)[:4], "big")
        else:
            spi = l3[ESP].spi
        c = by_spi.get(spi)
        if c is None:
            print(f"unexpected SPI {spi:#x}")
            bad += 1
            continue
        pkt = (IP if c["family"] == 4 else IPv6)(raw)
        if c["udp"] and c["family"] == 4:
            u = pkt[UDP]
            if (u.sport, u.dport, u.len) != (4500, 4500, len(u)):
                print(f"case {c['id']}: bad UDP header {u.sport} {u.dport} {u.len}")
                bad += 1
        ours = sa(c, c["spi_out"], bytes.fromhex(c["ckey_out"]), bytes.fromhex(c["akey_out"]), c["gw"], c["peer"])
        if c["udp"] and c["family"] == 6:
            # scapy 2.5 cannot decrypt IPv6 + NAT-T: take the UDP header out first.
            u = pkt[UDP]
            esp = u.payload
            pkt[UDP].underlayer.remove_payload()
            pkt.nh = 50
            pkt = IPv6(bytes(pkt / esp))
            ours.nat_t_header = None
        try:
            got[c["id"]].append(bytes(ours.decrypt(pkt)))
        except Exception as e:  # noqa: BLE001 - report every failure, then fail
            print(f"case {c['id']} ({c['alg']} v{c['family']} udp={c['udp']}): scapy cannot decrypt: {e}")
            bad += 1
    for k, c in cs.items():
        want = [bytes(inner(c, c["a_host"], c["b_host"], i, 20000)) for i in range(PER_CASE)]
        if got[k] != want:
            print(f"case {k} ({c['alg']} v{c['family']} udp={c['udp']}): {len(got[k])} of {len(want)} inner packets match")
            bad += 1
    inside = [bytes(f.payload) for f in rdpcap(f"{d}/inside_out.pcap")]
    want_in = sorted(bytes(inner(c, c["b_host"], c["a_host"], i, 30000)) for c in cs.values() for i in range(PER_CASE))
    if sorted(inside) != want_in:
        print(f"inside: {len(inside)} packets, {len(want_in)} expected; {len(set(inside) & set(want_in))} match")
        bad += 1
    print(f"{len(cs)} cases: {sum(len(v) for v in got.values())} ESP packets decrypted by scapy, {len(inside)} plaintext packets delivered; {bad} problems")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
