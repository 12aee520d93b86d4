#!/usr/bin/env bash
# Builds the gateway's Debian package with cargo-deb: target/debian/espgw_<version>_<arch>.deb
# holding espd, espctl, iked, ikectl (/usr/sbin), their systemd units, example configurations
# (/etc/espd/espd.toml, /etc/iked/iked.toml), manual pages generated from the clap
# definitions, and the docs. The package's description is in control/iked/Cargo.toml.
# Usage: bash scripts/package.sh   (prints the package's path last)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null; then
    cargo install cargo-deb --locked --version 3.8.0
fi
cargo build --release --locked -p espd -p espctl -p iked
rm -rf target/man
cargo run --release --locked -q -p iked --example manpages -- target/man
cargo deb --locked -p iked --no-build --quiet
ls -t target/debian/espgw_*.deb | head -1
