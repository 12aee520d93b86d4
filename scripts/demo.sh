#!/usr/bin/env bash
# The gateway's main job: two espd gateways in network namespaces, each with its shipped
# default configuration (scripts/conf/gw-a.toml, gw-b.toml) and manual keys installed with
# espctl, carry ping, ping6 and an 8 MiB TCP transfer between the hosts behind them through
# AES-GCM ESP tunnels; the gateways' host stacks reach each other through the exception
# path; then the SA list and the per-reason counters are printed and everything is torn
# down. Needs root. Usage: bash scripts/demo.sh
set -euo pipefail
export PYTHONWARNINGS=ignore
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p espd
DEMO=1 ESPD=target/release/espd ESPCTL=target/release/espctl NS_TAG=demo bash scripts/e2e-manual.sh
