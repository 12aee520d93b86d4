#!/usr/bin/env bash
# Installs every system package this workspace, its tests and its demos need.
# Idempotent and non-interactive: does nothing when everything is present.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# Debian packages, grouped by who needs them.
PKGS=(
    # build: bindgen over DPDK and intel-ipsec-mb
    pkg-config libclang-dev clang dpdk dpdk-dev libdpdk-dev libipsec-mb-dev libpcap-dev
    # tests and demos: namespaces, captures, the strongSwan peer, fingerprinting
    iproute2 iputils-ping ethtool tcpdump tshark ike-scan netcat-openbsd nftables
    strongswan-charon strongswan-swanctl libcharon-extra-plugins
    libstrongswan-extra-plugins libstrongswan-standard-plugins
    # the certificates of the signature-authentication cases (scripts/lib/pki.sh)
    strongswan-pki
    # independent implementations used by the tests
    python3 python3-scapy python3-cryptography
    # fuzzing (scripts/fuzz.sh): libfuzzer-sys compiles libFuzzer's C++17 sources
    g++
    # benchmarks (benches/run.sh): the plots of docs/benchmarks.md
    gnuplot-nox
    # operation: iked's metrics scraped by a real Prometheus, checked by promtool; the
    # Debian package installed into a fresh Debian 12 root (scripts/package-test.sh)
    prometheus curl debootstrap
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    # tshark asks whether non-root users may capture: answer it before it asks.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    install() {
        $SUDO apt-get update -q &&
            $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
    }
    echo "setup: installing ${missing[*]}" >&2
    # apt's lists have been seen to vanish mid-install here: retry once.
    install || { echo "setup: apt failed, retrying once" >&2; sleep 2; install; }
fi

# The Python that tests run must see scapy and cryptography. Debian's packages serve
# /usr/bin/python3; a different python3 first on PATH (pyenv) gets them from PyPI.
py=$(command -v python3)
if ! "$py" -c 'import scapy, cryptography' 2>/dev/null; then
    "$py" -m pip install -q 'scapy==2.5.0' 'cryptography>=41,<46'
fi

# strongSwan 6.0 (Debian 13) unpacked into a private root, for the plain-ESP interop subset
# (scripts/interop.sh --peer 6); the system's packages and apt state are left alone.
bash "$(dirname "$0")/setup-strongswan6.sh" >/dev/null

# libreswan 4.10 (Debian 12) unpacked into a private root, the second IKEv1 peer
# (scripts/interop-libreswan.sh): its package conflicts with strongSwan's, so it is not installed.
bash "$(dirname "$0")/setup-libreswan.sh" >/dev/null
