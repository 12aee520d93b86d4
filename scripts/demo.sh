#!/usr/bin/env bash
# The gateway's main job, against a real IPsec implementation we did not write:
#   host-a -- [gw-a: espd + iked] == wire == [gw-b: strongSwan charon] -- host-b
# in network namespaces, with the shipped default configurations
# (scripts/conf/gw-a.toml for espd, scripts/conf/iked-demo.toml for iked,
# scripts/conf/swanctl-demo.conf for strongSwan). iked negotiates IKEv1 Main Mode with PSK
# and a Quick Mode with AES-GCM-128 and PFS (NAT-T: Debian 12's userspace strongSwan only
# speaks UDP-encapsulated ESP); hosts ping both ways and move 8 MiB over TCP (sha256
# compared); `ikectl list-sas`, `swanctl --list-sas` and the dataplane counters are printed;
# everything is torn down. Needs root. Usage: bash scripts/demo.sh
set -euo pipefail
export PYTHONWARNINGS=ignore
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p espd -p espctl -p iked
NS_TAG=demo bash scripts/interop.sh --demo
