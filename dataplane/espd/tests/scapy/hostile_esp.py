#!/usr/bin/env python3
"""Hostile ESP against a running espd (scapy 2.5): the traffic of tests/hostile_esp.rs.

  hostile_esp.py make DIR   writes DIR/outside_in.pcap: the peer's legitimate ESP on SPI
                            0x1000 (sequence numbers 1..64, in order) with hostile packets
                            interleaved at fixed pseudo-random places, DIR/inside_in.pcap:
                            legitimate plaintext from host A, and DIR/expect.json: how many
                            packets of each kind were written and the counter each must
                            land in (espd's names, as `espctl stats --json` shows them)
  hostile_esp.py check DIR  every legitimate packet delivered: DIR/inside_out.pcap holds
                            exactly the 64 inner packets, in order, and DIR/outside_out.pcap
                            the 20 plaintext packets encrypted on SPI 0x2000 (decrypted here)

The keys and addresses are gw_pcap.py's (tests/common/mod.rs creates the same SA database
through espctl); SPI 0x1001 is an SA the test installs and deletes before the run.
"""
import json
import random
import struct
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import Ether, IP, UDP, TCP, Raw, rdpcap, wrpcap  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

GW_OUT_MAC = "02:70:63:61:70:00"
GW_IN_MAC = "02:70:63:61:70:01"
PEER_MAC = "02:00:00:00:00:02"
HOST_A_MAC = "02:00:00:00:0a:10"
GW_OUT, PEER = "198.18.0.1", "198.18.0.2"
HOST_A, HOST_B = "198.18.1.10", "198.19.1.10"
KEY_OUT = bytes(range(16)) + b"\x01\x02\x03\x04"  # SPI 0x2000, ours -> peer
KEY_IN = bytes(range(16, 32)) + b"\x05\x06\x07\x08"  # SPI 0x1000, peer -> us
KEY_DELETED = bytes(range(32, 48)) + b"\x09\x0a\x0b\x0c"  # SPI 0x1001, deleted before the run

LEGIT_IN = 64
LEGIT_OUT = 20


def sa(spi, key, src, dst):
    return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key,
                               auth_algo="NULL", tunnel_header=IP(src=src, dst=dst))


def inner_b_to_a(i, size=None):
    n = size if size is not None else 20 + 41 * i % 900
    return IP(src=HOST_B, dst=HOST_A, ttl=64, id=2000 + i) / TCP(sport=443, dport=30000 + i, flags="A") / Raw(bytes([i % 256]) * n)


def inner_a_to_b(i):
    return IP(src=HOST_A, dst=HOST_B, ttl=64, id=i) / UDP(sport=20000 + i, dport=53) / Raw(bytes([(3 * i) % 256]) * (12 + 29 * i % 700))


def eth(ip_bytes):
    return Ether(src=PEER_MAC, dst=GW_OUT_MAC, type=0x0800) / Raw(ip_bytes)


def esp_ip(spi, key, seq, inner):
    return bytes(sa(spi, key, PEER, GW_OUT).encrypt(inner, seq_num=seq))


def with_esp_payload(ip_bytes, esp_payload):
    """The same outer IPv4 header with another ESP payload, total length and checksum fixed."""
    ip = IP(ip_bytes[:20])
    del ip.len
    del ip.chksum
    return bytes(IP(bytes(ip / Raw(esp_payload))))


def flip(b, bit):
    b = bytearray(b)
    b[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(b)


def make(d):
    rng = random.Random(10)
    legit = [eth(esp_ip(0x1000, KEY_IN, i + 1, inner_b_to_a(i))) for i in range(LEGIT_IN)]
    hostile = []  # (earliest position in the legit stream, kind, frame)

    # Replays: copies of accepted packets, sent after the original (some inside the
    # 64-packet window, some left of it by the end).
    for k in [0, 1, 5, 17, 30, 31, 40, 50, 62, 63]:
        hostile.append((k + 1, "replay", legit[k]))
    # Flipped bits: fresh sequence numbers (so not replays), one bit changed in the IV,
    # the ciphertext, the ICV or the sequence number (authenticated data).
    for j in range(12):
        ip = esp_ip(0x1000, KEY_IN, 1000 + j, inner_b_to_a(100 + j))
        esp_off = 20
        region = j % 4
        if region == 0:
            bit = (esp_off + 8 + j % 8) * 8 + j % 8  # explicit IV
        elif region == 1:
            bit = (esp_off + 16 + 3 * j) * 8 + 1  # ciphertext
        elif region == 2:
            bit = (len(ip) - 1 - j % 16) * 8 + 7  # ICV
        else:
            bit = (esp_off + 4) * 8 + j  # sequence number, high bits
        hostile.append((rng.randrange(LEGIT_IN), "auth", eth(flip(ip, bit))))
    # A flipped bit in the SPI makes it an unknown SPI.
    ip = esp_ip(0x1000, KEY_IN, 1100, inner_b_to_a(120))
    hostile.append((rng.randrange(LEGIT_IN), "no-sa", eth(flip(ip, 20 * 8))))
    # Unknown SPIs.
    for j in range(8):
        spi = rng.randrange(0x10000, 0xffffffff)
        hostile.append((rng.randrange(LEGIT_IN), "no-sa", eth(esp_ip(spi, KEY_IN, j + 1, inner_b_to_a(130 + j)))))
    # ESP for the deleted SA, correctly encrypted with its key.
    for j in range(6):
        hostile.append((rng.randrange(LEGIT_IN), "no-sa",
                        eth(esp_ip(0x1001, KEY_DELETED, j + 1, inner_b_to_a(140 + j)))))
    # Truncated: the outer header is consistent, the ESP payload too short for
    # SPI + seq + IV + ICV + trailer.
    for j, keep in enumerate([8, 12, 20, 33]):
        ip = esp_ip(0x1000, KEY_IN, 2000 + j, inner_b_to_a(150 + j))
        hostile.append((rng.randrange(LEGIT_IN), "bad-length", eth(with_esp_payload(ip, ip[20:20 + keep]))))
    # Truncated below the ESP header (runt: malformed, counted before any SA lookup), and
    # frames cut short of the IPv4 total length.
    for j, keep in enumerate([0, 4]):
        ip = esp_ip(0x1000, KEY_IN, 2100 + j, inner_b_to_a(160 + j))
        hostile.append((rng.randrange(LEGIT_IN), "malformed", eth(with_esp_payload(ip, ip[20:20 + keep]))))
    for j in range(2):
        ip = esp_ip(0x1000, KEY_IN, 2200 + j, inner_b_to_a(170 + j))
        hostile.append((rng.randrange(LEGIT_IN), "malformed", eth(ip[:len(ip) - 40 - j])))
    # SPI 0 is reserved (RFC 4303 §2.1): malformed.
    ip = esp_ip(0x1000, KEY_IN, 2300, inner_b_to_a(180))
    hostile.append((rng.randrange(LEGIT_IN), "malformed", eth(ip[:20] + b"\0\0\0\0" + ip[24:])))
    # Oversize: genuine ESP frames bigger than one mbuf (2 KiB) arrive as mbuf chains.
    for j, size in enumerate([3000, 8000]):
        hostile.append((rng.randrange(LEGIT_IN), "oversize",
                        eth(esp_ip(0x1000, KEY_IN, 3000 + j, inner_b_to_a(190 + j, size)))))

    # Interleave: each hostile frame goes after legit frame number `at` (stable).
    hostile.sort(key=lambda h: h[0])
    frames, h = [], 0
    for i, f in enumerate(legit):
        while h < len(hostile) and hostile[h][0] <= i:
            frames.append(hostile[h][2])
            h += 1
        frames.append(f)
    frames += [x[2] for x in hostile[h:]]
    wrpcap(f"{d}/outside_in.pcap", frames)
    plain = [Ether(src=HOST_A_MAC, dst=GW_IN_MAC) / inner_a_to_b(i) for i in range(LEGIT_OUT)]
    wrpcap(f"{d}/inside_in.pcap", plain)

    kinds = {}
    for _, k, _ in hostile:
        kinds[k] = kinds.get(k, 0) + 1
    counter = {"replay": "drop-replay", "auth": "drop-auth", "no-sa": "drop-no-sa",
               "bad-length": "drop-bad-length", "malformed": "drop-malformed",
               "oversize": "drop-chained-mbuf"}
    expect = {"sent": {"legit_in": LEGIT_IN, "legit_out": LEGIT_OUT, **kinds},
              "outside_frames": len(frames),
              "counters": {"decap-packets": LEGIT_IN, "encap-packets": LEGIT_OUT}}
    for k, n in kinds.items():
        c = counter[k]
        expect["counters"][c] = expect["counters"].get(c, 0) + n
    json.dump(expect, open(f"{d}/expect.json", "w"), indent=1)
    print(json.dumps(expect["sent"]))


def check(d):
    ok = True
    inside = rdpcap(f"{d}/inside_out.pcap")
    want = [bytes(IP(bytes(inner_b_to_a(i)))) for i in range(LEGIT_IN)]
    got = [bytes(f[IP]) for f in inside]
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        print(f"inside: {len(got)} packets delivered, {len(want)} legitimate sent; first difference at {first}")
        ok = False
    if not all(f[Ether].dst == HOST_A_MAC and f[Ether].src == GW_IN_MAC for f in inside):
        print("inside: wrong MACs")
        ok = False
    ours = sa(0x2000, KEY_OUT, GW_OUT, PEER)
    out = rdpcap(f"{d}/outside_out.pcap")
    dec = []
    for f in out:
        ip = f[IP]
        if (ip.src, ip.dst, ip.proto, ip[ESP].spi) != (GW_OUT, PEER, 50, 0x2000):
            print(f"outside: unexpected frame {ip.summary()}")
            ok = False
            continue
        dec.append(bytes(ours.decrypt(IP(bytes(ip)))))
    want_out = [bytes(IP(bytes(inner_a_to_b(i)))) for i in range(LEGIT_OUT)]
    if dec != want_out:
        print(f"outside: {len(dec)} ESP packets decrypted, {len(want_out)} plaintext sent")
        ok = False
    print(f"inside: {len(got)} of {LEGIT_IN} legitimate ESP packets delivered; "
          f"outside: {len(dec)} of {LEGIT_OUT} plaintext packets encrypted")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        sys.exit("usage: hostile_esp.py make|check DIR")
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
