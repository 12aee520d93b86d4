#!/usr/bin/env python3
"""Searches what our gateway wrote for every secret the peer derived.

strongSwan's charon, logging `ike` and `chd` at level 4, dumps each secret it computes:
the Diffie-Hellman shared value g^xy (phase 1 and PFS), SKEYID, SKEYID_d/a/e, the phase-1
encryption key, and each child SA's encryption and integrity keys in both directions. Those
are the same values our side derived, so none of them may appear in our logs or in what our
tools print. Each secret is searched in every form a log line could carry it: raw bytes, hex
in either case (contiguous, or bytes separated by spaces, colons or dashes), Rust's `Debug`
of a byte slice (`[12, 34, ...]`) and base64. A GCM key's salt is searched apart from it.

Positive control: our key log (written on purpose, for Wireshark) must contain every ESP key
charon logged and every phase-1 encryption key; otherwise the parsing here is broken and the
check proves nothing.

Usage: secrets-check.py CHARON_KEYS_LOG KEYLOG_DIR PSK FILE...   exit 0 if nothing is found
       secrets-check.py --keylogs DIR[,DIR...] PSK FILE...
The second form takes the secrets from our own key logs instead (two iked, no strongSwan):
each phase-1 encryption key and each ESP key, a GCM key's salt apart.
"""
import base64
import re
import sys
from collections import Counter

if sys.argv[1] == "--keylogs":
    keylog_dirs, psk, files = sys.argv[2].split(","), sys.argv[3].encode(), sys.argv[4:]
    keys_log = None
else:
    keys_log, keylog_dir, psk = sys.argv[1], sys.argv[2], sys.argv[3].encode()
    files = sys.argv[4:]

# "12[IKE] SKEYID => 32 bytes @ 0x7f..." followed by "12[IKE]    0: CC 47 D8 ...  .G.m"
HEAD = re.compile(r"^\S+\[[A-Z]+\] (.+?) => (\d+) bytes @ 0x[0-9a-f]+$")
ROW = re.compile(r"^\S+\[[A-Z]+\]\s+\d+: ((?:[0-9A-F]{2} ){1,16})")
KINDS = {
    "shared Diffie Hellman secret": "g^xy",
    "DH secret": "g^xy (PFS)",
    "SKEYID": "SKEYID",
    "SKEYID_d": "SKEYID_d",
    "SKEYID_a": "SKEYID_a",
    "SKEYID_e": "SKEYID_e",
    "encryption key Ka": "phase-1 encryption key",
    "encryption initiator key": "ESP encryption key",
    "encryption responder key": "ESP encryption key",
    "integrity initiator key": "ESP integrity key",
    "integrity responder key": "ESP integrity key",
}

secrets = []  # (kind, bytes)
label, want, buf = None, 0, bytearray()
for line in open(keys_log, errors="replace") if keys_log else []:
    line = line.rstrip("\n")
    m = HEAD.match(line)
    if m:
        label, want, buf = m.group(1), int(m.group(2)), bytearray()
        continue
    r = ROW.match(line)
    if r and label is not None:
        buf += bytes.fromhex(r.group(1).replace(" ", ""))
        if len(buf) >= want:
            kind = KINDS.get(label)
            if kind is not None and want > 0:
                secrets.append((kind, bytes(buf[:want])))
            label = None
    elif not r:
        label = None


def hexfield(f):
    f = f.strip().strip('"')
    return bytes.fromhex(f[2:] if f.startswith("0x") else f)


if keys_log is None:
    # Wireshark's tables: ikev1_decryption_table "cookie","key"; esp_sa "IPv4","src","dst",
    # "0xspi","encryption","0xkey","integrity","0xkey".
    for d in keylog_dirs:
        for l in open(f"{d}/ikev1_decryption_table", errors="replace"):
            f = l.strip().split(",")
            if len(f) >= 2:
                secrets.append(("phase-1 encryption key", hexfield(f[1])))
        for l in open(f"{d}/esp_sa", errors="replace"):
            f = l.strip().split(",")
            if len(f) >= 8:
                secrets.append(("ESP encryption key", hexfield(f[5])))
                if hexfield(f[7]):
                    secrets.append(("ESP integrity key", hexfield(f[7])))

# GCM key material is key || 4-byte salt (RFC 4106 §8.1): 20, 28 or 36 bytes. CBC keys are
# 16, 24 or 32 bytes, so the length tells them apart.
esp_keys = [s for k, s in secrets if k == "ESP encryption key"]
split = []
for kind, s in secrets:
    if kind == "ESP encryption key" and len(s) in (20, 28, 36):
        split += [("ESP encryption key", s[:-4]), ("GCM salt", s[-4:])]
    else:
        split.append((kind, s))
split.append(("PSK", psk))
unique = {}
for kind, s in split:
    unique.setdefault(s, kind)

# The positive control (the first form).
keylog = b""
for name in ("esp_sa", "ikev1_decryption_table") if keys_log else ():
    try:
        keylog += open(f"{keylog_dir}/{name}", "rb").read().lower()
    except OSError:
        pass
missing = [s.hex() for s in esp_keys if s.hex().encode() not in keylog]
missing += [s.hex() for k, s in secrets if k == "phase-1 encryption key" and s.hex().encode() not in keylog]
if keys_log is None:
    pass
elif not esp_keys or missing:
    print(f"secrets: positive control failed: {len(esp_keys)} ESP keys parsed from {keys_log}, "
          f"{len(missing)} of them (or of the phase-1 keys) not in our key log {keylog_dir}")
    sys.exit(1)


def forms(s):
    h = s.hex()
    yield s
    for t in (h, h.upper()):
        yield t.encode()
        for sep in (" ", ":", "-"):
            yield sep.join(t[i:i + 2] for i in range(0, len(t), 2)).encode()
    yield ("[" + ", ".join(str(b) for b in s) + "]").encode()
    if len(s) >= 12:
        yield base64.b64encode(s).rstrip(b"=")[:-2]  # the stable prefix of any alignment-0 encoding


found = []
size = 0
for f in files:
    try:
        data = open(f, "rb").read()
    except OSError as e:
        print(f"secrets: cannot read {f}: {e}")
        sys.exit(1)
    size += len(data)
    for s, kind in unique.items():
        if any(x in data for x in forms(s)):
            found.append(f"{kind} {s.hex()[:16]}… in {f}")

kinds = Counter(kind for s, kind in unique.items())
summary = ", ".join(f"{kinds[k]} {k}" for k in sorted(kinds))
need = ["g^xy", "SKEYID", "SKEYID_d", "SKEYID_a", "SKEYID_e", "phase-1 encryption key", "ESP encryption key"]
if keys_log is None:
    need = ["phase-1 encryption key", "ESP encryption key", "GCM salt"]
short = [k for k in need if kinds[k] == 0]
if short:
    print(f"secrets: the peer's log gave no {', '.join(short)}: nothing to search for ({summary})")
    sys.exit(1)
if found:
    print("secrets: FOUND in our output:\n  " + "\n  ".join(found))
    sys.exit(1)
source = "strongSwan's level-4 log" if keys_log else "our key logs"
control = f"; positive control: all {len(esp_keys)} ESP keys in our key log" if keys_log else ""
print(f"secrets: {len(unique)} secrets from {source} ({summary}) searched in "
      f"{len(files)} files of ours ({size} bytes) in {len(list(forms(psk)))} encodings each: none found{control}")
