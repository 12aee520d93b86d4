#!/usr/bin/env python3
"""Hostile IKE traffic against a running iked, sent with scapy from a namespace
on the wire. Prints one JSON line with what was sent, by kind.

Usage: hostile-ike.py TARGET IFACE LEGIT_PEER ICOOKIE RCOOKIE [FLOOD]
  TARGET      the gateway's IKE address (UDP 500)
  IFACE       interface to send on
  LEGIT_PEER  the address of the legitimate peer (Aggressive Mode probes come from it)
  ICOOKIE, RCOOKIE  the cookies of the established IKE SA (16 hex digits each): messages
              with them and a bad HASH must change nothing
  FLOOD       Main Mode message-1s from distinct spoofed addresses (default 5000)
"""
import json
import os
import random
import struct
import sys

from scapy.all import IP, UDP, Raw, conf, send  # noqa: E402
from scapy.layers.isakmp import (  # noqa: E402
    ISAKMP,
    ISAKMP_payload_Proposal,
    ISAKMP_payload_SA,
    ISAKMP_payload_Transform,
)

conf.verb = 0
target, iface, legit = sys.argv[1], sys.argv[2], sys.argv[3]
icky, rcky = bytes.fromhex(sys.argv[4]), bytes.fromhex(sys.argv[5])
flood = int(sys.argv[6]) if len(sys.argv) > 6 else 5000
rnd = random.Random(1)
sent = {}


def count(kind, n=1):
    sent[kind] = sent.get(kind, 0) + n


def mm1(cookie, exch=2):
    t = ISAKMP_payload_Transform(
        num=1,
        transforms=[
            ("Encryption", "AES-CBC"),
            ("KeyLength", 128),
            ("Hash", "SHA2-256"),
            ("Authentication", "PSK"),
            ("GroupDesc", "2048MODPgr"),
            ("LifeType", "Seconds"),
            ("LifeDuration", 28800),
        ],
    )
    return ISAKMP(init_cookie=cookie, exch_type=exch, next_payload=1) / ISAKMP_payload_SA(
        prop=ISAKMP_payload_Proposal(trans_nb=1, trans=t)
    )


def spoofed():
    # 198.18.0.0/15 minus the wire's /24, so never a configured peer.
    return "198.%d.%d.%d" % (rnd.choice([18, 19]), rnd.randrange(2, 255), rnd.randrange(1, 255))


pkts = []
# 1. Main Mode message-1 flood from thousands of spoofed addresses and ports.
for _ in range(flood):
    pkts.append(IP(src=spoofed(), dst=target) / UDP(sport=rnd.randrange(1024, 65535), dport=500)
                / mm1(os.urandom(8)))
count("mm1-flood", flood)
# 2. Malformed: truncated headers, lengths that lie, random bytes, a bad version.
for n in range(200):
    kind = n % 4
    if kind == 0:
        body = os.urandom(rnd.randrange(1, 27))                       # shorter than a header
    elif kind == 1:
        m = bytearray(bytes(mm1(os.urandom(8))))
        struct.pack_into("!I", m, 24, len(m) + rnd.randrange(1, 5000))  # length beyond the datagram
        body = bytes(m)
    elif kind == 2:
        body = os.urandom(rnd.randrange(28, 600))
    else:
        m = bytearray(bytes(mm1(os.urandom(8))))
        m[17] = 0x20                                                  # ISAKMP version 2.0
        body = bytes(m)
    pkts.append(IP(src=legit, dst=target) / UDP(sport=500, dport=500) / Raw(body))
count("malformed", 200)
# 3. Unknown exchange types and wrong cookies (no such IKE SA).
for n in range(100):
    m = ISAKMP(init_cookie=os.urandom(8), resp_cookie=os.urandom(8), exch_type=rnd.choice([0, 3, 7, 33, 200, 255]),
               next_payload=0, id=rnd.randrange(1, 1 << 32))
    pkts.append(IP(src=legit, dst=target) / UDP(sport=500, dport=500) / m)
count("wrong-cookies-or-exchange", 100)
# 4. The established IKE SA's cookies with an encrypted Informational / Quick Mode whose HASH
#    cannot verify (random ciphertext).
for n in range(50):
    m = ISAKMP(init_cookie=icky, resp_cookie=rcky, exch_type=rnd.choice([5, 32]), flags=1,
               next_payload=8, id=rnd.randrange(1, 1 << 32)) / Raw(os.urandom(16 * rnd.randrange(2, 8)))
    pkts.append(IP(src=legit, dst=target) / UDP(sport=500, dport=500) / m)
count("bad-hash", 50)
# 5. Aggressive Mode probes (disabled on the target), sent first and on their own: shuffled
#    among the message-1s of 6 they would meet the per-source half-open limit instead, and
#    each must be seen and refused.
probes = [IP(src=legit, dst=target) / UDP(sport=500, dport=500) / mm1(os.urandom(8), exch=4) for _ in range(20)]
count("aggressive-probe", 20)

# 6. Message-1s from the legitimate peer's own address with fresh cookies: the per-peer
#    half-open limit keeps them from filling the table.
for _ in range(100):
    pkts.append(IP(src=legit, dst=target) / UDP(sport=500, dport=500) / mm1(os.urandom(8)))
count("mm1-from-peer-address", 100)

send(probes, iface=iface, inter=0.01)
rnd.shuffle(pkts)
send(pkts, iface=iface, inter=0.0002)
print(json.dumps({"sent": sent, "total": sum(sent.values())}))
