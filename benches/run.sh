#!/usr/bin/env bash
# The gateway benchmark: espd's built-in traffic source through the real
# pipeline for the matrix of algorithms, sizes, directions and SA counts, and, in the
# same run on the same machine, the references: dpdk-test-crypto-perf with the
# crypto_aesni_gcm / crypto_aesni_mb PMDs, `openssl speed -evp`, and the raw crypto of
# the library we call (ipsec-mb's burst API through our safe crate). Then it rewrites the
# gateway section of docs/benchmarks.md (tables, machine, commands) and its SVG plots.
#
#   bash benches/run.sh [--quick] [--out DIR] [--no-doc] [--secgw] [--rounds N] [--no-build]
#
#   --quick     fewer sizes (64, 1420, IMIX), 1 s per configuration, the SA-count sweep
#               (1 and 1,000 SAs) for AES-128-GCM and the CBC + HMAC-SHA1 1420 B case only
#   --out       where the raw results go (default: a new directory under /tmp)
#   --no-doc    measure only; leave docs/ alone (the section goes to OUT/section.md)
#   --secgw     also DPDK's examples/ipsec-secgw and espd --config on the same net_pcap feed
#               (benches/secgw.sh: downloads Debian's dpdk source package into /tmp)
#   --rounds N  rounds of the alternated part (default 5, also ROUNDS=N)
#   --no-build  use target/release/espd and espctl as they are (default: cargo build --release
#               -p espd -p espctl)
#
# One clock: every figure is the wall-clock (TSC) rate the worker achieved. A configuration
# whose worker had less than 95 % of its core (espd bench's `cpu_share`, from schedstat) is
# invalid: it is run again, up to ATTEMPTS times in all (default 3), and the first valid
# run is kept; if none is valid it is reported as invalid, never rescaled.
#
# Two parts:
#   1. the matrix, once per configuration (the tables);
#   2. ROUNDS rounds alternating espd (AES-128-GCM 64 and 1420 B, AES-128-CBC + HMAC-SHA1
#      1420 B, one SA, encap and decap) with every dpdk-test-crypto-perf reference, so the
#      verdicts against crypto-perf compare medians taken side by side. A crypto-perf figure
#      that is implausible (zero or missing, or decryption at least twice encryption) is run
#      again once in its round, and flagged if it still is.
#
# One worker lcore (lcore 1; lcore 0 supervises and sleeps), net_null ports, no hugepages,
# so it runs on a 2-core VM. Needs DPDK, intel-ipsec-mb, openssl, python3 and gnuplot
# (scripts/setup.sh installs them).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
DOC=1
SECGW=0
BUILD=1
OUT=""
ROUNDS=${ROUNDS:-5}
ATTEMPTS=${ATTEMPTS:-3}
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-doc) DOC=0 ;;
        --secgw) SECGW=1 ;;
        --no-build) BUILD=0 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-$(mktemp -d /tmp/espgw-bench.XXXXXX)}
mkdir -p "$OUT"
# espd.jsonl: every run of the matrix (invalid attempts included); rounds.jsonl:
# "<round><TAB><json>" for the alternated part; cryptoperf.tsv: "round pmd algo op size Mops".
: > "$OUT/espd.jsonl"
: > "$OUT/rounds.jsonl"
: > "$OUT/cryptoperf.tsv"
: > "$OUT/cryptoperf-reruns.tsv"
: > "$OUT/commands.txt"
T0=$(date +%s)

if [ $QUICK -eq 1 ]; then
    SIZES=64,1420,imix
    DUR=1; WARM=0.5; OPS=1000000; OSSL_SECS=1; IMB_SECS=0.5
else
    SIZES=64,128,256,512,1024,1420,imix
    DUR=2; WARM=1; OPS=5000000; OSSL_SECS=1; IMB_SECS=1
fi
# --quick leaves 100,000 SAs out: installing them takes minutes on a shared machine, and
# again for every configuration run again.
SAS=$([ $QUICK -eq 1 ] && echo 1,1000 || echo 1,1000,100000)
# Fixed sizes of the references: ours, plus what IMIX (7:4:1 of 64/570/1518) is made of.
REF_SIZES=$(echo "$SIZES" | tr ',' '\n' | grep -v imix | tr '\n' ',')570,1518
# CBC needs whole blocks: the nearest multiple of 16 at or above.
cbc_sizes() { echo "$1" | tr ',' '\n' | awk '{ printf "%s%d", (NR>1?",":""), int(($1+15)/16)*16 }'; }

log() { echo "run.sh: $*" >&2; }
record() { echo "$*" >> "$OUT/commands.txt"; }
report() { python3 "$ROOT/benches/report.py" "$@"; }

# crypto-perf leaves its EAL runtime directory behind (espd removes its own).
trap 'rm -rf "/var/run/dpdk/espgw-cperf-$$"' EXIT

cd "$ROOT"
if [ $BUILD -eq 1 ]; then
    log "building espd and espctl (release)"
    cargo build --release -q -p espd -p espctl
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ESPD="$TARGET/release/espd"
# Per-stage cycles, when this espd has them (`--stages`).
STAGES=()
if "$ESPD" bench --help 2>/dev/null | grep -q -- '--stages'; then
    STAGES=(--stages)
fi

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
    echo "espd: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
    echo "stages: $([ ${#STAGES[@]} -gt 0 ] && echo yes || echo no)"
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "quick: $QUICK"
    echo "rounds: $ROUNDS"
    echo "attempts: $ATTEMPTS"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"

# --- ours: espd bench ---------------------------------------------------------------------
n=0
bench_once() { # DEST MODES SIZES SAS [options...]: one espd bench invocation, lines to DEST
    local dest=$1 modes=$2 sizes=$3 sas=$4
    shift 4
    n=$((n + 1))
    local cmd=("$ESPD" bench --duration "$DUR" --warmup "$WARM" --stats-interval 0 "${STAGES[@]}"
        --mode "$modes" --size "$sizes" --sas "$sas" "$@" --
        -l 0,1 --no-pci --no-huge -m 2048 --no-shconf --no-telemetry --log-level error
        --file-prefix "espgw-bench-$$-$n" --vdev net_null0 --vdev net_null1)
    record "${cmd[*]}"
    "${cmd[@]}" < /dev/null | grep '^{' > "$dest" || log "espd bench failed: ${cmd[*]}"
}
# bench SINK PREFIX MODES SIZES SAS [options...]: the configurations, then each one whose
# worker had less than 95 % of its core again, up to ATTEMPTS runs in all. Every run is
# kept in SINK (with PREFIX in front of each line); report.py keeps the first valid one.
bench() {
    local sink=$1 prefix=$2 modes=$3 sizes=$4 sas=$5
    shift 5
    local tmp="$OUT/.bench.$$" again="$OUT/.again.$$"
    bench_once "$tmp" "$modes" "$sizes" "$sas" "$@"
    sed "s/^/$prefix/" "$tmp" >> "$sink"
    report --invalid "$tmp" > "$again"
    local a=1
    while [ -s "$again" ] && [ $a -lt "$ATTEMPTS" ]; do
        a=$((a + 1))
        : > "$tmp.next"
        while read -r m s k; do
            log "worker below 95 % of its core: $m, $s B, SAs $k again (run $a of $ATTEMPTS)"
            bench_once "$tmp" "$m" "$s" "$k" "$@"
            sed "s/^/$prefix/" "$tmp" >> "$sink"
            report --invalid "$tmp" >> "$tmp.next"
        done < "$again"
        mv "$tmp.next" "$again"
    done
    while read -r m s k; do
        log "no valid run in $ATTEMPTS (worker below 95 % of its core): $m, $s B, SAs $k $*"
    done < "$again"
    rm -f "$tmp" "$again"
}
matrix() { bench "$OUT/espd.jsonl" "" "$@"; }

log "part 1: the matrix (--stages: $([ ${#STAGES[@]} -gt 0 ] && echo yes || echo 'no, this espd lacks it'))"
# --quick: the SA-count sweep for AES-128-GCM only, one SA for the other algorithms.
OTHER_SAS=$([ $QUICK -eq 1 ] && echo 1 || echo "$SAS")
for spec in "aes-gcm 128 $SAS" "aes-gcm 256 $OTHER_SAS" "aes-cbc-sha1 128 $OTHER_SAS" \
    "aes-cbc-sha256 256 $OTHER_SAS"; do
    set -- $spec
    log "espd bench: $1 $2-bit, ipsec-mb, sizes $SIZES, SAs $3"
    matrix encap,decap "$SIZES" "$3" --algo "$1" --key-bits "$2" --backend ipsec-mb
done
if [ $QUICK -eq 1 ]; then
    # The CBC + HMAC-SHA1 flatness target at 1420 B (1,000 SAs) even when quick.
    log "espd bench: aes-cbc-sha1 128-bit, 1420 B, 1,000 SAs"
    matrix encap,decap 1420 1000 --algo aes-cbc-sha1 --key-bits 128 --backend ipsec-mb
fi
for spec in "aes-gcm 128" "aes-cbc-sha1 128"; do
    set -- $spec
    log "espd bench: $1 $2-bit, rust backend"
    matrix encap,decap "$SIZES" 1 --algo "$1" --key-bits "$2" --backend rust
done
log "espd bench: io baseline (source + TX, no gateway)"
matrix io "$SIZES" 1
# Latency at half the measured maximum (wall clock), AES-128-GCM, 1 SA.
for mode in encap decap; do
    for size in 64 1420; do
        max=$(report --max-mpps "$OUT" "$mode" "$size")
        [ -n "$max" ] || continue
        half=$(python3 -c "print(round($max / 2, 3))")
        log "espd bench: $mode $size B at 50% load ($half Mpps)"
        matrix "$mode" "$size" 1 --rate-mpps "$half"
    done
done

# --- part 2: espd alternated with dpdk-test-crypto-perf -----------------------------------
# CBC + HMAC inbound: crypto-perf's throughput test takes auth-then-cipher only with
# --auth-op verify, which needs a test-vector file; so the HMAC (generate: the same work but
# for the 12- or 16-byte compare) and the CBC decryption are measured apart and their times
# per packet added (report.py).
cperf() { # round pmd algo-label op sizes args...
    local round=$1 pmd=$2 label=$3 op=$4 sizes=$5
    shift 5
    local cmd=(dpdk-test-crypto-perf -l 0,1 --no-pci --no-huge -m 1024 --no-shconf --no-telemetry
        --file-prefix "espgw-cperf-$$" --log-level error --vdev "${pmd}0" --
        --ptest throughput --devtype "$pmd" --burst-sz 32 --silent --total-ops "$OPS"
        --buffer-sz "$sizes" "$@")
    [ "$round" -eq 1 ] && record "${cmd[*]}"
    { "${cmd[@]}" < /dev/null 2>/dev/null || log "crypto-perf failed: ${cmd[*]}"; } | awk -v r="$round" -v p="$pmd" -v a="$label" -v o="$op" \
        '$1 ~ /^[0-9]+$/ && NF >= 10 { print r "\t" p "\t" a "\t" o "\t" $2 "\t" $8 }'
}
CBC=$(cbc_sizes "$REF_SIZES")
# One reference: the encryption and the decryption of one algorithm on one PMD.
cperf_job() { # round job
    local r=$1
    case "$2" in
        gcm128|gcm256)
            local k=$([ "$2" = gcm128 ] && echo 16 || echo 32)
            for op in encrypt decrypt; do
                cperf "$r" crypto_aesni_gcm "aes-gcm-$((k * 8))" "$op" "$REF_SIZES" --optype aead \
                    --aead-algo aes-gcm --aead-op "$op" --aead-key-sz "$k" --aead-iv-sz 12 --aead-aad-sz 8 \
                    --digest-sz 16
            done ;;
        cbc-sha1)
            local a=aes-cbc-128-hmac-sha1-96
            cperf "$r" crypto_aesni_mb $a encrypt "$CBC" --optype cipher-then-auth --cipher-algo aes-cbc \
                --cipher-op encrypt --cipher-key-sz 16 --cipher-iv-sz 16 --auth-algo sha1-hmac --auth-op generate \
                --auth-key-sz 20 --digest-sz 12
            cperf "$r" crypto_aesni_mb $a decrypt-cipher-only "$CBC" --optype cipher-only --cipher-algo aes-cbc \
                --cipher-op decrypt --cipher-key-sz 16 --cipher-iv-sz 16
            cperf "$r" crypto_aesni_mb $a decrypt-auth-only "$CBC" --optype auth-only --auth-algo sha1-hmac \
                --auth-op generate --auth-key-sz 20 --digest-sz 12 ;;
        cbc-sha256)
            local a=aes-cbc-256-hmac-sha256-128
            cperf "$r" crypto_aesni_mb $a encrypt "$CBC" --optype cipher-then-auth --cipher-algo aes-cbc \
                --cipher-op encrypt --cipher-key-sz 32 --cipher-iv-sz 16 --auth-algo sha2-256-hmac \
                --auth-op generate --auth-key-sz 32 --digest-sz 16
            cperf "$r" crypto_aesni_mb $a decrypt-cipher-only "$CBC" --optype cipher-only --cipher-algo aes-cbc \
                --cipher-op decrypt --cipher-key-sz 32 --cipher-iv-sz 16
            cperf "$r" crypto_aesni_mb $a decrypt-auth-only "$CBC" --optype auth-only --auth-algo sha2-256-hmac \
                --auth-op generate --auth-key-sz 32 --digest-sz 16 ;;
        mb-gcm128)
            # The same AES-128-GCM through crypto_aesni_mb (what ipsec-secgw gets with that PMD).
            cperf "$r" crypto_aesni_mb aes-gcm-128 encrypt "$REF_SIZES" --optype aead --aead-algo aes-gcm \
                --aead-op encrypt --aead-key-sz 16 --aead-iv-sz 12 --aead-aad-sz 8 --digest-sz 16 ;;
    esac
}
JOBS="gcm128 gcm256 cbc-sha1 cbc-sha256 mb-gcm128"
for r in $(seq "$ROUNDS"); do
    log "part 2, round $r of $ROUNDS: espd bench"
    bench "$OUT/rounds.jsonl" "$r	" encap,decap 64,1420 1 --algo aes-gcm --key-bits 128 --backend ipsec-mb
    bench "$OUT/rounds.jsonl" "$r	" encap,decap 1420 1 --algo aes-cbc-sha1 --key-bits 128 --backend ipsec-mb
    log "part 2, round $r of $ROUNDS: dpdk-test-crypto-perf"
    for job in $JOBS; do
        cperf_job "$r" "$job" > "$OUT/.cperf.$$"
        why=$(report --check-cperf "$OUT/.cperf.$$" "$job" "$REF_SIZES")
        if [ -n "$why" ]; then
            log "crypto-perf $job, round $r, implausible ($why): run again once"
            cperf_job "$r" "$job" > "$OUT/.cperf.$$"
            printf '%s\t%s\t%s\t%s\n' "$r" "$job" "$why" \
                "$(report --check-cperf "$OUT/.cperf.$$" "$job" "$REF_SIZES")" >> "$OUT/cryptoperf-reruns.tsv"
        fi
        cat "$OUT/.cperf.$$" >> "$OUT/cryptoperf.tsv"
    done
    rm -f "$OUT/.cperf.$$"
done

# --- references: openssl speed -evp (once; no verdict uses them) ----------------------------
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
    log "ipsec-secgw, espd and testpmd io on the net_pcap feed, alternated (benches/secgw.sh)"
    record "ROUNDS=$ROUNDS bash benches/secgw.sh $OUT $((DUR + 3))"
    : > "$OUT/secgw.tsv"
    ROUNDS=$ROUNDS bash "$ROOT/benches/secgw.sh" "$OUT" $((DUR + 3)) || log "secgw.sh failed; no secgw figures"
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
echo "elapsed: $(( $(date +%s) - T0 )) s" >> "$OUT/machine.txt"
log "raw results in $OUT ($(wc -l < "$OUT/espd.jsonl") runs in the matrix, $(wc -l < "$OUT/rounds.jsonl") in the rounds)"
CMD="bash benches/run.sh"
[ $QUICK -eq 0 ] || CMD="$CMD --quick"
[ $SECGW -eq 0 ] || CMD="$CMD --secgw"
if [ $DOC -eq 1 ]; then
    report "$OUT" "$ROOT/docs/benchmarks.md" "$ROOT/docs/img" "$CMD"
    log "docs/benchmarks.md and docs/img/bench-*.svg rewritten"
else
    report "$OUT" - "$OUT" "$CMD" > "$OUT/section.md"
    log "section in $OUT/section.md (docs/ left alone)"
fi
