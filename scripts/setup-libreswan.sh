#!/usr/bin/env bash
# libreswan 4.10 (Debian 12's `libreswan` package) in a private root, as a second independent
# IKEv1 peer (scripts/interop-libreswan.sh). The package conflicts with the strongSwan packages
# the other interop runs need, so it is downloaded with `apt-get download` and unpacked with
# `dpkg-deb -x`, not installed. The shared libraries it depends on that are not on the machine
# yet (the `lib*` entries of its Depends: Debian 12 packages that conflict with nothing) and
# NSS's certutil (libnss3-tools: pluto needs an NSS database even with PSK only) are installed
# with apt-get as usual.
#
# pluto looks for its helpers (addconn, _updown) under the compiled-in /usr/libexec/ipsec:
# interop-libreswan.sh runs it in its own mount namespace with this root's /usr/libexec
# bind-mounted over the system's.
#
# Idempotent: prints the root's path; downloads only when it is missing or incomplete.
# Usage: bash scripts/setup-libreswan.sh    Env: LIBRESWAN_DIR (default /var/cache/espgw/libreswan)
set -euo pipefail

DIR=${LIBRESWAN_DIR:-/var/cache/espgw/libreswan}
ROOT=$DIR/root
LIBS=(libldns3 libevent-pthreads-2.1-7 libnss3-tools)
export DEBIAN_FRONTEND=noninteractive

die() { echo "setup-libreswan: $*" >&2; exit 1; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Every binary the interop run starts, with every library resolved.
check_root() {
    local f out
    for f in "$ROOT"/usr/libexec/ipsec/{pluto,whack,addconn}; do
        [ -x "$f" ] || return 1
        out=$(ldd "$f" 2>&1) || return 1
        grep -q "not found" <<<"$out" && { echo "setup-libreswan: $f: $(grep "not found" <<<"$out" | tr -s ' \t\n' ' ')" >&2; return 1; }
    done
    command -v certutil >/dev/null || return 1
}

if [ -f "$ROOT/.complete" ] && check_root 2>/dev/null; then
    echo "$ROOT"
    exit 0
fi

missing=()
for p in "${LIBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
fetch() {
    $SUDO apt-get update -q >"$DIR/apt.log" 2>&1 || return 1
    rm -f "$DIR"/debs/*.deb
    # apt's download runs as _apt where it can: give it a directory it may write.
    (cd "$DIR/debs" && $SUDO apt-get download -q libreswan >>"$DIR/apt.log" 2>&1) || return 1
    # Every shared library the package depends on (first alternative, no version), so that a
    # fresh machine gets what this one happened to have; none conflicts with strongSwan.
    local deb dep
    for deb in "$DIR"/debs/libreswan_*.deb; do
        for dep in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*//' | tr -d ' '); do
            case $dep in lib*) ;; *) continue ;; esac
            dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "install ok installed" || missing+=("$dep")
        done
    done
    if [ ${#missing[@]} -gt 0 ]; then
        $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$DIR/apt.log" 2>&1 || return 1
    fi
}
rm -rf "$ROOT"
mkdir -p "$DIR/debs" "$ROOT"
chmod 0777 "$DIR/debs"
echo "setup-libreswan: fetching libreswan into $DIR, with the libraries it needs" >&2
# apt's lists have been seen to vanish mid-install here: retry once.
fetch || { sleep 2; fetch; } || { tail -20 "$DIR/apt.log" >&2; die "apt could not fetch libreswan"; }
for deb in "$DIR"/debs/libreswan_*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
check_root || die "the unpacked pluto is incomplete or misses libraries"
touch "$ROOT/.complete"
echo "$ROOT"
