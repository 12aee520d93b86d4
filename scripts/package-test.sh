#!/usr/bin/env bash
# The Debian package on a fresh Debian 12: debootstrap makes a minimal bookworm root, apt
# installs target/debian/espgw_*.deb into it (its dependencies from the archive, as on any
# new machine), and both units are started from what the package installed, as systemd
# would start them: their RuntimeDirectory= created, every ExecStartPre= run and required to
# succeed, then ExecStart= (no systemd runs in the root: a chroot with /proc, /sys, /dev and a
# fresh /run, in a network namespace of its own with only loopback, so that the example's IKE
# sockets on every address touch nothing of the host's). Checks: espd comes up with the shipped example (net_null ports) and a worker
# attached to the SA database; iked attaches the same database and answers ikectl with the
# example's connections; `systemctl reload`'s ExecReload= check passes; both stop cleanly
# on SIGTERM.
#
# Usage: scripts/package-test.sh [PACKAGE.deb]   (default: builds it with scripts/package.sh)
# Env: MIRROR (default: the first URI of the host's apt sources, else deb.debian.org), KEEP=1.
# Needs root and the Debian archive.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tunnel.sh   # step, fail

DEB=${1:-}
if [ -z "$DEB" ]; then
    step "building the package (scripts/package.sh)"
    DEB=$(bash scripts/package.sh | tail -1)
fi
[ -f "$DEB" ] || fail "no package at $DEB"
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
ROOT=$(mktemp -d /var/tmp/espgw-package.XXXXXX)
NS=espgw-pkg-$$
PIDS=()
cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    # Anything else still running in the root (a daemon a failed step left behind).
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null
    done
    wait 2>/dev/null
    if [ -n "${KEEP:-}" ]; then echo "kept: $ROOT (mounted)"; exit $rc; fi
    for m in run dev/shm dev/pts dev sys proc; do umount -l "$ROOT/$m" 2>/dev/null; done
    rm -rf "$ROOT"
    ip netns del "$NS" 2>/dev/null
    exit $rc
}
trap cleanup EXIT
# A command in the root, with the clean environment systemd gives a unit.
ROOT_ENV=(/usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
in_root() { chroot "$ROOT" "${ROOT_ENV[@]}" "$@"; }
# in_ns_root CMD...: in the root and in the test's network namespace (the daemons, their tools).
in_ns_root() { ip netns exec "$NS" chroot "$ROOT" "${ROOT_ENV[@]}" "$@"; }

step "a fresh Debian 12 (debootstrap --variant=minbase bookworm, $MIRROR)"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 \
    || { tail -20 "$ROOT.debootstrap.log"; fail "debootstrap"; }
rm -f "$ROOT.debootstrap.log"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"
mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run"

step "apt installs $(basename "$DEB") and its dependencies"
cp "$DEB" "$ROOT/tmp/"
in_root apt-get update -q >/dev/null
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "/tmp/$(basename "$DEB")" >"$ROOT/tmp/apt.log" 2>&1 || { tail -30 "$ROOT/tmp/apt.log"; fail "apt-get install"; }
for f in /usr/sbin/espd /usr/sbin/espctl /usr/sbin/iked /usr/sbin/ikectl /lib/systemd/system/espd.service \
    /lib/systemd/system/iked.service /etc/espd/espd.toml /etc/iked/iked.toml /usr/share/man/man8/iked.8.gz \
    /usr/share/doc/espgw/operation.md /usr/share/doc/espgw/grafana/espgw-dashboard.json; do
    [ -e "$ROOT$f" ] || fail "the package did not install $f"
done
[ "$(stat -c %a "$ROOT/etc/iked/iked.toml")" = 600 ] || fail "/etc/iked/iked.toml is not 0600"
in_root dpkg-query -W -f='${Package} ${Version} ${Status}\n' espgw

# unit_lines UNIT KEY: the unit's KEY= values, $VARs of an absent EnvironmentFile dropped.
unit_lines() { sed -n "s/^$2=//p" "$ROOT/lib/systemd/system/$1.service" | sed 's/ \$[A-Z_]*ARGS//'; }
# start UNIT: RuntimeDirectory= made (0700), ExecStartPre= run, ExecStart= started.
start() {
    local unit=$1 dir line
    for dir in $(unit_lines "$unit" RuntimeDirectory); do
        install -d -m 0700 "$ROOT/run/$dir"
    done
    while read -r line; do
        [ -n "$line" ] || continue
        echo "$unit: ExecStartPre=$line"
        # shellcheck disable=SC2086 # systemd splits these lines on spaces; they hold no quotes
        in_ns_root $line || fail "$unit: ExecStartPre failed"
    done < <(unit_lines "$unit" ExecStartPre)
    line=$(unit_lines "$unit" ExecStart)
    echo "$unit: ExecStart=$line"
    # Not through the function: a backgrounded function is a subshell, and $! must be the
    # daemon (ip netns exec, chroot and env each exec the next), which SIGTERM must reach.
    # shellcheck disable=SC2086
    ip netns exec "$NS" chroot "$ROOT" "${ROOT_ENV[@]}" $line >"$ROOT/tmp/$unit.log" 2>&1 &
    PIDS+=($!)
}

ip netns add "$NS"
ip -n "$NS" link set lo up

step "espd.service"
start espd
ESPD=${PIDS[-1]}
# espd_ready: espd says it runs and a worker of its is attached to the SA database.
espd_ready() {
    in_ns_root espctl --sadb /run/espgw/sadb --json stats >"$ROOT/tmp/espctl.json" 2>/dev/null || return 1
    python3 - "$ROOT/tmp/espctl.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
lcores = [f"lcore {x['lcore']} ({x['state']})" for x in s["lcores"] if x["state"] == "running"]
assert s["espd_running"] and lcores, s
print("espd: SA database attached, readers:", ", ".join(lcores))
PY
}
for _ in $(seq 150); do
    espd_ready >/dev/null 2>&1 && break
    kill -0 "$ESPD" 2>/dev/null || { cat "$ROOT/tmp/espd.log"; fail "espd exited"; }
    sleep 0.2
done
espd_ready || fail "espd's SA database has no worker"

step "iked.service"
start iked
IKED=${PIDS[-1]}
for _ in $(seq 100); do
    in_ns_root ikectl stats >"$ROOT/tmp/stats.out" 2>/dev/null && break
    kill -0 "$IKED" 2>/dev/null || { cat "$ROOT/tmp/iked.log"; fail "iked exited"; }
    sleep 0.2
done
cat "$ROOT/tmp/stats.out"
grep -q "dataplane:" "$ROOT/tmp/stats.out" || fail "ikectl stats: no dataplane line"
in_ns_root ikectl list-conns | tee "$ROOT/tmp/conns.out"
[ "$(grep -c '^[^ ].*: IKEv1' "$ROOT/tmp/conns.out")" -ge 1 ] || fail "ikectl list-conns: no connection of the example"
while read -r line; do
    case $line in /bin/kill*) continue ;; esac
    echo "iked: ExecReload=$line"
    # shellcheck disable=SC2086
    in_ns_root $line >/dev/null || fail "iked: ExecReload failed"
done < <(unit_lines iked ExecReload)

step "stopping both (SIGTERM, as systemctl stop)"
kill -TERM "$IKED"
wait "$IKED" || fail "iked exited with $? on SIGTERM"
kill -TERM "$ESPD"
wait "$ESPD" || fail "espd exited with $? on SIGTERM"
PIDS=()
echo "package-test: 1 passed, 0 failed"
