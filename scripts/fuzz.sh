#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target in the repository for a bounded time, on the stable
# toolchain, and fails if any of them crashes, times out or runs out of memory.
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60; CI runs 20)
#
# - Fuzz projects are the `*/fuzz/` directories whose Cargo.toml has `cargo-fuzz = true`;
#   their targets are what `cargo fuzz list` prints, so new projects and targets are picked up.
# - `--sanitizer none`: AddressSanitizer needs nightly, and the fuzzed crates forbid `unsafe`,
#   so a panic (bounds, overflow, unwrap, assert) is what we look for. cargo fuzz builds in
#   release mode with debug assertions and overflow checks on.
# - Each project builds into its own target dir (target/fuzz-<crate>) so it does not fight
#   the workspace build. The committed seed corpus (`<project>/corpus/<target>/`) is copied to
#   a temporary directory, so a run never changes the repository; crash inputs land there too
#   and are printed as hex. The temporary directory is kept when something failed, or when
#   FUZZ_KEEP=1 (to merge what a long run found into the committed corpus: docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

secs=${1:-60}
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
# A single input that runs longer than this counts as a hang (libFuzzer's default is 20 min).
per_input_timeout=${FUZZ_INPUT_TIMEOUT:-25}

# Pinned so CI does not change behaviour under us when cargo-fuzz releases.
CARGO_FUZZ_VERSION=0.13.2
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" # where `cargo install` puts it
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
work=$(mktemp -d -t fuzz.XXXXXX)

mapfile -t projects < <(
    find . \( -path ./target -o -path ./.git -o -path '*/fuzz/target' \) -prune -o \
        -path '*/fuzz/Cargo.toml' -print |
        while read -r m; do
            grep -q '^cargo-fuzz *= *true' "$m" && dirname "$m"
        done | sort
)
if [ ${#projects[@]} -eq 0 ]; then
    echo "fuzz: no cargo-fuzz project found" >&2
    exit 1
fi

# libFuzzer's -print_final_stats line `stat::NAME: VALUE`.
final_stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

failed=()
summary=()
for proj in "${projects[@]}"; do
    proj=${proj#./}
    name=$(basename "$(dirname "$proj")")
    export CARGO_TARGET_DIR="$root/target/fuzz-$name"
    list=$(cd "$proj" && cargo fuzz list)
    mapfile -t targets <<<"$list"
    if [ -z "$list" ]; then
        echo "fuzz: $proj has no fuzz target" >&2
        exit 1
    fi

    printf '\n=== fuzz: build %s (%s)\n' "$proj" "${targets[*]}" >&2
    (cd "$proj" && cargo fuzz build --sanitizer none)

    for t in "${targets[@]}"; do
        dir="$work/$name/$t"
        mkdir -p "$dir/corpus" "$dir/artifacts"
        if [ -d "$proj/corpus/$t" ]; then
            cp -R "$proj/corpus/$t/." "$dir/corpus/"
        else
            echo "fuzz: warning: $proj/corpus/$t does not exist, starting from nothing" >&2
        fi
        seeds=$(find "$dir/corpus" -type f | wc -l)
        printf '=== fuzz: run %s/%s for %ss from %s seeds\n' "$name" "$t" "$secs" "$seeds" >&2

        rc=0
        RUST_BACKTRACE=1 "$CARGO_TARGET_DIR/$triple/release/$t" \
            -max_total_time="$secs" -timeout="$per_input_timeout" -print_final_stats=1 \
            -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?

        execs=$(final_stat number_of_executed_units "$dir/log")
        rate=$(final_stat average_exec_per_sec "$dir/log")
        units=$(find "$dir/corpus" -type f | wc -l)
        if [ "$rc" -eq 0 ]; then
            result=ok
        else
            result="FAILED (exit $rc)"
            failed+=("$name/$t")
            printf '\n--- fuzz: %s/%s failed; last lines of its log (%s):\n' "$name" "$t" "$dir/log" >&2
            tail -n 60 "$dir/log" >&2
        fi
        summary+=("$(printf '%-28s %-18s %12s execs %8s exec/s %6s corpus' \
            "$name/$t" "$result" "${execs:-?}" "${rate:-?}" "$units")")

        for a in "$dir"/artifacts/*; do
            [ -f "$a" ] || continue
            printf '\n--- fuzz: %s/%s artifact %s (%s bytes), hex:\n%s\n' "$name" "$t" "$a" \
                "$(wc -c <"$a")" "$(od -An -v -tx1 "$a" | tr -d ' \n')" >&2
            printf 'reproduce: cd %s && cargo fuzz run --sanitizer none %s %s\n' "$proj" "$t" "$a" >&2
        done
    done
done

printf '\n=== fuzz: summary (%ss per target)\n' "$secs" >&2
printf '%s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs and logs kept in $work)" >&2
    exit 1
fi
if [ -n "${FUZZ_KEEP:-}" ]; then
    echo "fuzz: grown corpora kept in $work/<crate>/<target>/corpus" >&2
else
    rm -rf "$work"
fi
