#!/usr/bin/env bash
# The gateway benchmark: espd's built-in traffic source through the real
# pipeline for the matrix of algorithms, sizes, directions and SA counts, and, in the
# same run on the same machine, the references: dpdk-test-crypto-perf with the
# crypto_aesni_gcm / crypto_aesni_mb PMDs, `openssl speed -evp`, and the raw crypto of
# the library we call (ipsec-mb's burst API through our safe crate). Then it rewrites the
# gateway section of docs/benchmarks.md (tables, machine, commands) and its SVG plots.
#
#   bash benches/run.sh [--quick] [--out DIR] [--no-doc]
#
#   --quick   fewer sizes (64, 1420, IMIX), 1 s per configuration, the SA-count sweep
#             for AES-128-GCM only: a few minutes
#   --out     where the raw results go (default: a new directory under /tmp)
#   --no-doc  measure only; leave docs/ alone
#   --secgw   also DPDK's examples/ipsec-secgw and espd --config on the same net_pcap feed
#             (benches/secgw.sh: downloads Debian's dpdk source package into /tmp)
#
# One worker lcore (lcore 1; lcore 0 supervises and sleeps), net_null ports, no hugepages,
# so it runs on a 2-core VM. The machine is shared and noisy: compare the ratios, which
# come from one run. Needs DPDK, intel-ipsec-mb, openssl, python3 and gnuplot
# (scripts/setup.sh installs them).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
DOC=1
SECGW=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-doc) DOC=0 ;;
        --secgw) SECGW=1 ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-$(mktemp -d /tmp/espgw-bench.XXXXXX)}
mkdir -p "$OUT"
: > "$OUT/espd.jsonl"
: > "$OUT/commands.txt"
T0=$(date +%s)

if [ $QUICK -eq 1 ]; then
    SIZES=64,1420,imix
    DUR=1; WARM=0.5; OPS=1000000; OSSL_SECS=1; IMB_SECS=0.5
else
    SIZES=64,128,256,512,1024,1420,imix
    DUR=2; WARM=1; OPS=5000000; OSSL_SECS=1; IMB_SECS=1
fi
SAS=1,1000,100000
# --quick: the SA-count sweep for AES-128-GCM only, one SA for the other algorithms.
OTHER_SAS=$([ $QUICK -eq 1 ] && echo 1 || echo "$SAS")
# Fixed sizes of the references: ours, plus what IMIX (7:4:1 of 64/570/1518) is made of.
REF_SIZES=$(echo "$SIZES" | tr ',' '\n' | grep -v imix | tr '\n' ',')570,1518
# CBC needs whole blocks: the nearest multiple of 16 at or above.
cbc_sizes() { echo "$1" | tr ',' '\n' | awk '{ printf "%s%d", (NR>1?",":""), int(($1+15)/16)*16 }'; }

log() { echo "run.sh: $*" >&2; }
record() { echo "$*" >> "$OUT/commands.txt"; }

# crypto-perf leaves its EAL runtime directory behind (espd removes its own).
trap 'rm -rf "/var/run/dpdk/espgw-cperf-$$"' EXIT

cd "$ROOT"
log "building espd (release)"
cargo build --release -q -p espd
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ESPD="$TARGET/release/espd"

# --- the machine -------------------------------------------------------------------------
{
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "cpus: $(nproc)"
    echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'aes|vaes|vpclmulqdq|pclmulqdq|avx2|avx512f|avx512vl|sha_ni|gfni' | tr '\n' ' ')"
    echo "l3: $(lscpu 2>/dev/null | awk -F: '/L3 cache/ { gsub(/^ +/, "", $2); print $2 }')"
    echo "kernel: $(uname -r)"
    echo "dpdk: $(pkg-config --modversion libdpdk 2>/dev/null || echo '?')"
    echo "ipsec-mb: $(dpkg-query -W -f='${Version}' libipsec-mb-dev 2>/dev/null || echo '?')"
    echo "openssl: $(openssl version | cut -d' ' -f2)"
    echo "rustc: $(rustc --version | cut -d' ' -f2)"
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "quick: $QUICK"
} > "$OUT/machine.txt"

# --- ours: espd bench ---------------------------------------------------------------------
n=0
bench() {
    n=$((n + 1))
    local cmd=("$ESPD" bench --duration "$DUR" --warmup "$WARM" --stats-interval 0 "$@" --
        -l 0,1 --no-pci --no-huge -m 2048 --no-shconf --no-telemetry --log-level error
        --file-prefix "espgw-bench-$$-$n" --vdev net_null0 --vdev net_null1)
    record "${cmd[*]}"
    "${cmd[@]}" >> "$OUT/espd.jsonl"
}
for spec in "aes-gcm 128 $SAS" "aes-gcm 256 $OTHER_SAS" "aes-cbc-sha1 128 $OTHER_SAS" \
    "aes-cbc-sha256 256 $OTHER_SAS"; do
    set -- $spec
    log "espd bench: $1 $2-bit, ipsec-mb, sizes $SIZES, SAs $3"
    bench --mode encap,decap --algo "$1" --key-bits "$2" --backend ipsec-mb --size "$SIZES" --sas "$3"
done
for spec in "aes-gcm 128" "aes-cbc-sha1 128"; do
    set -- $spec
    log "espd bench: $1 $2-bit, rust backend"
    bench --mode encap,decap --algo "$1" --key-bits "$2" --backend rust --size "$SIZES" --sas 1
done
log "espd bench: io baseline (source + TX, no gateway)"
bench --mode io --size "$SIZES" --sas 1
# Latency at half the measured maximum, AES-128-GCM, 1 SA.
for mode in encap decap; do
    for size in 64 1420; do
        max=$(python3 "$ROOT/benches/report.py" --max-mpps "$OUT" "$mode" "$size")
        [ -n "$max" ] || continue
        half=$(python3 -c "print(round($max / 2, 3))")
        log "espd bench: $mode $size B at 50% load ($half Mpps)"
        bench --mode "$mode" --size "$size" --sas 1 --rate-mpps "$half"
    done
done

# --- references: dpdk-test-crypto-perf ----------------------------------------------------
# CBC + HMAC inbound: crypto-perf's throughput test takes auth-then-cipher only with
# --auth-op verify, which needs a test-vector file; so the HMAC (generate: the same work but
# for the 12- or 16-byte compare) and the CBC decryption are measured apart and their times
# per packet added (report.py).
: > "$OUT/cryptoperf.tsv"
cperf() { # pmd algo-label op sizes args...
    local pmd=$1 label=$2 op=$3 sizes=$4
    shift 4
    local cmd=(dpdk-test-crypto-perf -l 0,1 --no-pci --no-huge -m 1024 --no-shconf --no-telemetry
        --file-prefix "espgw-cperf-$$" --log-level error --vdev "${pmd}0" --
        --ptest throughput --devtype "$pmd" --burst-sz 32 --silent --total-ops "$OPS"
        --buffer-sz "$sizes" "$@")
    record "${cmd[*]}"
    { "${cmd[@]}" 2>/dev/null || log "crypto-perf failed: ${cmd[*]}"; } | awk -v p="$pmd" -v a="$label" -v o="$op" \
        '$1 ~ /^[0-9]+$/ && NF >= 10 { print p "\t" a "\t" o "\t" $2 "\t" $8 }' >> "$OUT/cryptoperf.tsv"
}
log "dpdk-test-crypto-perf"
for k in 16 32; do
    for op in encrypt decrypt; do
        cperf crypto_aesni_gcm "aes-gcm-$((k * 8))" "$op" "$REF_SIZES" --optype aead --aead-algo aes-gcm \
            --aead-op "$op" --aead-key-sz "$k" --aead-iv-sz 12 --aead-aad-sz 8 --digest-sz 16
    done
done
CBC=$(cbc_sizes "$REF_SIZES")
cperf crypto_aesni_mb aes-cbc-128-hmac-sha1-96 encrypt "$CBC" --optype cipher-then-auth --cipher-algo aes-cbc \
    --cipher-op encrypt --cipher-key-sz 16 --cipher-iv-sz 16 --auth-algo sha1-hmac --auth-op generate \
    --auth-key-sz 20 --digest-sz 12
for part in "cipher-only --cipher-algo aes-cbc --cipher-op decrypt --cipher-key-sz 16 --cipher-iv-sz 16" \
    "auth-only --auth-algo sha1-hmac --auth-op generate --auth-key-sz 20 --digest-sz 12"; do
    set -- $part
    cperf crypto_aesni_mb aes-cbc-128-hmac-sha1-96 "decrypt-$1" "$CBC" --optype $part
done
cperf crypto_aesni_mb aes-cbc-256-hmac-sha256-128 encrypt "$CBC" --optype cipher-then-auth --cipher-algo aes-cbc \
    --cipher-op encrypt --cipher-key-sz 32 --cipher-iv-sz 16 --auth-algo sha2-256-hmac --auth-op generate \
    --auth-key-sz 32 --digest-sz 16
for part in "cipher-only --cipher-algo aes-cbc --cipher-op decrypt --cipher-key-sz 32 --cipher-iv-sz 16" \
    "auth-only --auth-algo sha2-256-hmac --auth-op generate --auth-key-sz 32 --digest-sz 16"; do
    set -- $part
    cperf crypto_aesni_mb aes-cbc-256-hmac-sha256-128 "decrypt-$1" "$CBC" --optype $part
done
# The same AES-128-GCM through crypto_aesni_mb (what ipsec-secgw gets with that PMD).
cperf crypto_aesni_mb aes-gcm-128 encrypt "$REF_SIZES" --optype aead --aead-algo aes-gcm \
    --aead-op encrypt --aead-key-sz 16 --aead-iv-sz 12 --aead-aad-sz 8 --digest-sz 16

# --- references: openssl speed -evp --------------------------------------------------------
log "openssl speed"
: > "$OUT/openssl.tsv"
for spec in "aes-128-gcm aes-gcm-128" "aes-256-gcm aes-gcm-256" \
    "aes-128-cbc-hmac-sha1 aes-cbc-128-hmac-sha1-96" "aes-256-cbc-hmac-sha256 aes-cbc-256-hmac-sha256-128"; do
    set -- $spec
    for size in $(echo "$REF_SIZES" | tr ',' ' '); do
        cmd=(taskset -c 1 openssl speed -elapsed -seconds "$OSSL_SECS" -mr -evp "$1" -bytes "$size")
        record "${cmd[*]}"
        "${cmd[@]}" 2>/dev/null | awk -F: -v a="$2" -v s="$size" '/^\+F:/ { print a "\t" s "\t" $4 / s / 1e6 }' \
            >> "$OUT/openssl.tsv" || true
    done
done

# --- references: our crypto library alone (ipsec-mb burst API, burst 32) -------------------
log "cargo bench -p ipsec-mb --bench raw"
record "IMB_BENCH_SECS=$IMB_SECS taskset -c 1 cargo bench -p ipsec-mb --bench raw"
IMB_BENCH_SECS=$IMB_SECS taskset -c 1 cargo bench -q -p ipsec-mb --bench raw 2>/dev/null > "$OUT/ipsecmb-raw.txt" || true

if [ $SECGW -eq 1 ]; then
    log "ipsec-secgw and espd on the net_pcap feed (benches/secgw.sh)"
    record "bash benches/secgw.sh $OUT $((DUR + 3))"
    : > "$OUT/secgw.tsv"
    bash "$ROOT/benches/secgw.sh" "$OUT" $((DUR + 3)) || log "secgw.sh failed; no secgw figures"
fi

echo "elapsed: $(( $(date +%s) - T0 )) s" >> "$OUT/machine.txt"
log "raw results in $OUT ($(wc -l < "$OUT/espd.jsonl") configurations)"
if [ $DOC -eq 1 ]; then
    python3 "$ROOT/benches/report.py" "$OUT" "$ROOT/docs/benchmarks.md" "$ROOT/docs/img" \
        "bash benches/run.sh$([ $QUICK -eq 1 ] && echo ' --quick')"
    log "docs/benchmarks.md and docs/img/bench-*.svg rewritten"
else
    python3 "$ROOT/benches/report.py" "$OUT" - "$OUT" "bash benches/run.sh"
fi
