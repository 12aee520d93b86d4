#!/usr/bin/env bash
# strongSwan 6.0 (Debian 13 "trixie") in a private root, for the plain-ESP interop subset
# (`scripts/interop.sh --peer 6`). Debian 12's strongSwan 5.9.8 only speaks UDP-encapsulated
# ESP in userspace; 6.0's kernel-libipsec has `raw_esp`, so plain ESP (IP protocol 50) is
# proven against a third party too.
#
# Nothing of the system's is touched: apt runs with a private state and cache directory and
# a private source list (the system's own Debian mirror, suite trixie, checked against the
# trixie keys of debian-archive-keyring), and the packages are unpacked with `dpkg-deb -x`,
# not installed. charon then runs with that root's dynamic loader and libraries, its plugin
# directory bind-mounted over /usr/lib/ipsec inside its own mount namespace (interop.sh).
#
# Idempotent: prints the root's path; downloads only when it is missing or incomplete.
# Usage: bash scripts/setup-strongswan6.sh    Env: SWAN6_DIR (default /var/cache/espgw/strongswan6)
set -euo pipefail

DIR=${SWAN6_DIR:-/var/cache/espgw/strongswan6}
ROOT=$DIR/root
# charon, its plugins (IKE, crypto through OpenSSL, userspace ESP, vici) and the libraries
# they load that Debian 12 lacks or has too old (glibc, OpenSSL 3.5 ...).
PKGS=(strongswan-charon strongswan-libcharon libstrongswan libcharon-extra-plugins strongswan-swanctl
    libc6 libssl3t64 zlib1g libcap2 libsystemd0 libip4tc2 libpam0g libzstd1 liblzma5)

if [ -f "$ROOT/.complete" ] && [ -x "$ROOT/usr/lib/ipsec/charon" ]; then
    echo "$ROOT"
    exit 0
fi

die() { echo "setup-strongswan6: $*" >&2; exit 1; }
KEYS=/usr/share/keyrings/debian-archive-trixie-stable.gpg,/usr/share/keyrings/debian-archive-trixie-automatic.gpg
for k in ${KEYS//,/ }; do [ -f "$k" ] || die "$k missing: debian-archive-keyring has no trixie keys"; done

# The Debian mirror this machine already uses (deb822 sources, or a one-line sources.list).
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ && u !~ /security/ { print u; exit }' "$f")
    [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == "bookworm") { print $i; exit } }' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || die "no Debian bookworm mirror found in /etc/apt/sources.list{,.d}"

rm -rf "$DIR"
mkdir -p "$DIR/apt/lists/partial" "$DIR/cache/archives/partial" "$DIR/debs" "$ROOT"
echo "deb [signed-by=$KEYS] $mirror trixie main" >"$DIR/sources.list"
apt_opts=(-q -o "Dir::State=$DIR/apt" -o "Dir::State::status=/dev/null" -o "Dir::Cache=$DIR/cache"
    -o "Dir::Etc::SourceList=$DIR/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=/dev/null"
    -o "APT::Architecture=amd64" -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
fetch() {
    apt-get "${apt_opts[@]}" update >"$DIR/apt.log" 2>&1 &&
        (cd "$DIR/debs" && apt-get "${apt_opts[@]}" download "${PKGS[@]}" >>"$DIR/apt.log" 2>&1)
}
echo "setup-strongswan6: fetching ${PKGS[*]} (trixie) into $DIR" >&2
fetch || { sleep 2; fetch; } || { tail -20 "$DIR/apt.log" >&2; die "apt could not fetch the trixie packages"; }
for deb in "$DIR"/debs/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done

# Every library charon and the plugins interop.sh loads must come from the private root.
LDSO=$ROOT/usr/lib64/ld-linux-x86-64.so.2
[ -x "$LDSO" ] || die "no dynamic loader in $ROOT"
for f in "$ROOT"/usr/lib/ipsec/charon "$ROOT"/usr/lib/ipsec/plugins/libstrongswan-{openssl,kernel-libipsec,kernel-netlink,socket-default,vici,random,nonce}.so; do
    [ -e "$f" ] || die "$f missing from the packages"
    out=$("$LDSO" --library-path "$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/usr/lib/ipsec" --list "$f") || die "cannot load $f"
    grep "=>" <<<"$out" | grep -v -e "$ROOT" -e "linux-vdso" | grep -q . && die "$f needs libraries outside the root: $out"
done
touch "$ROOT/.complete"
echo "$ROOT"
