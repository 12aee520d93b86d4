#!/usr/bin/env python3
"""Cross-check the Rust ESP engine against scapy's independent implementation.

Usage: esp_cross.py DIR

Reads DIR/cases.txt, written by the Rust test `tests/scapy.rs`:
    sa  id=N crypt=ALG ckey=HEX auth=ALG akey=HEX spi=HEX mode=tunnel|transport
        outer=4|6 src=ADDR dst=ADDR esn=0|1 esn_hi=N udp=0|1 icv=N
    pkt id=N n=K seq=LO plain=HEX esp=HEX
For every `pkt`, decrypts `esp` (produced by Rust) with scapy and compares the result with
`plain` byte for byte; then encrypts `plain` with scapy (sequence number LO + 1000) and
writes `enc id=N n=K seq=LO esp=HEX` to DIR/from_scapy.txt for Rust to decrypt.

scapy 2.5 leaves the ESN high half out of HMAC ICVs (RFC 4303 section 2.2.1 puts it in), so
for ESN with an HMAC algorithm this script computes and checks the ICV itself with Python's
hmac module and lets scapy do only the encryption. AES-GCM with ESN is all scapy's.

Exits non-zero if any packet fails; the last line says how many were checked.
"""

import hashlib
import hmac
import struct
import sys
import warnings

warnings.filterwarnings("ignore")

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402
from scapy.packet import Raw  # noqa: E402

HASHES = {
    "HMAC-SHA1-96": hashlib.sha1,
    "SHA2-256-128": hashlib.sha256,
    "SHA2-384-192": hashlib.sha384,
    "SHA2-512-256": hashlib.sha512,
}


def fields(line):
    kind, *rest = line.split()
    return kind, dict(kv.split("=", 1) for kv in rest)


def make_sa(sa, with_auth):
    tunnel = None
    if sa["mode"] == "tunnel":
        cls = IP if sa["outer"] == "4" else IPv6
        tunnel = cls(src=sa["src"], dst=sa["dst"])
    auth = sa["auth"] if with_auth and sa["auth"] != "NULL" else None
    kwargs = {}
    if not with_auth and sa["auth"] != "NULL":
        # scapy then strips (without checking) an ICV of this size on decryption.
        kwargs["crypt_icv_size"] = int(sa["icv"])
    return SecurityAssociation(
        ESP,
        spi=int(sa["spi"], 16),
        crypt_algo=sa["crypt"],
        crypt_key=bytes.fromhex(sa["ckey"]),
        auth_algo=auth,
        auth_key=bytes.fromhex(sa["akey"]) if auth else None,
        tunnel_header=tunnel,
        nat_t_header=UDP(sport=4500, dport=4500) if sa["udp"] == "1" else None,
        esn_en=sa["esn"] == "1",
        esn=int(sa["esn_hi"]),
        **kwargs,
    )


def parse_outer(raw, sa):
    return (IP if sa["outer"] == "4" else IPv6)(raw)


def own_icv(sa, esp_bytes):
    """RFC 4303 section 2.2.1 ICV: HMAC over ESP header..ciphertext || ESN high half."""
    mac = hmac.new(bytes.fromhex(sa["akey"]), esp_bytes, HASHES[sa["auth"]])
    if sa["esn"] == "1":
        mac.update(struct.pack("!L", int(sa["esn_hi"])))
    return mac.digest()[: int(sa["icv"])]


def main():
    d = sys.argv[1]
    sas, ok, bad = {}, 0, 0
    out = []
    with open(f"{d}/cases.txt") as f:
        for line in f:
            if not line.strip():
                continue
            kind, kv = fields(line)
            if kind == "sa":
                sas[kv["id"]] = kv
                continue
            sa = sas[kv["id"]]
            plain, ours = bytes.fromhex(kv["plain"]), bytes.fromhex(kv["esp"])
            seq = int(kv["seq"])
            own = sa["esn"] == "1" and sa["auth"] != "NULL"
            tag = f"sa {kv['id']} ({sa['crypt']}/{sa['auth']} {sa['mode']} v{sa['outer']} esn={sa['esn']} udp={sa['udp']}) pkt {kv['n']}"
            try:
                # 1. Decrypt ours.
                pkt = parse_outer(ours, sa)
                if own:
                    e = bytes(pkt[ESP])
                    icv_len = int(sa["icv"])
                    if own_icv(sa, e[:-icv_len]) != e[-icv_len:]:
                        raise ValueError("ICV (with ESN) does not verify")
                dsa = make_sa(sa, not own)
                if sa["udp"] == "1" and sa["mode"] == "transport" and sa["outer"] == "6":
                    # scapy 2.5 leaves the UDP header in place when decrypting IPv6 transport
                    # mode with NAT-T: check the UDP header here and take it out first.
                    u = pkt[UDP]
                    if (u.sport, u.dport, u.len) != (4500, 4500, len(u)):
                        raise ValueError(f"bad UDP header {u.sport} {u.dport} {u.len}")
                    esp = u.payload
                    under = u.underlayer
                    under.remove_payload()
                    under.nh = 50
                    under.add_payload(esp)
                    pkt = IPv6(bytes(pkt))
                    dsa.nat_t_header = None
                got = bytes(dsa.decrypt(pkt))
                if got != plain:
                    raise ValueError(f"decrypted {got.hex()} != {plain.hex()}")
                # 2. Encrypt for Rust.
                inner = (IP if plain[0] >> 4 == 4 else IPv6)(plain)
                enc = make_sa(sa, not own).encrypt(inner, seq_num=seq + 1000)
                if own:
                    enc[ESP].data += own_icv(sa, bytes(enc[ESP]))
                if own or sa["udp"] == "1":
                    # Recompute lengths: after an appended ICV, and because scapy 2.5 emits
                    # NAT-T UDP headers with length 8 (the ESP payload is added later).
                    if sa["outer"] == "4":
                        del enc[IP].len
                        del enc[IP].chksum
                    else:
                        del enc[IPv6].plen
                    if enc.haslayer(UDP):
                        # scapy 2.5 names ESP, not UDP, in the IPv6 extension header before
                        # a NAT-T UDP header (transport mode): name UDP.
                        if sa["outer"] == "6":
                            enc[UDP].underlayer.nh = 17
                        del enc[UDP].len
                        enc[UDP].chksum = 0
                    enc = enc.__class__(bytes(enc))
                out.append(f"enc id={kv['id']} n={kv['n']} seq={seq + 1000} esp={bytes(enc).hex()}")
                ok += 1
            except Exception as ex:  # report every failure, keep going
                bad += 1
                print(f"FAIL {tag}: {ex!r}")
    with open(f"{d}/from_scapy.txt", "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"checked {ok + bad} packets: {ok} ok, {bad} failed")
    sys.exit(1 if bad or not ok else 0)


if __name__ == "__main__":
    main()
