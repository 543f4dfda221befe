#!/usr/bin/env bash
# run.sh — one libFuzzer target for a while on a copy of its seed corpus (the seeds in the tree
# stay as they are; what the run finds is kept in a temporary corpus, removed after).
# A crash, leak, timeout or sanitizer report fails the test; the input that caused it is kept in
# ARTIFACTS (a regression test to write from it). Prints the target's last status line.
# Usage: run.sh TARGET SEED_DIR SECONDS ARTIFACTS
set -euo pipefail
target=$1 seeds=$2 seconds=$3 art=$4
tmp=$(mktemp -d)
COTRAIN_FUZZ_DIR=$(mktemp -d -p /dev/shm cotrain-fuzz.XXXXXX) # the targets' files, in memory
export COTRAIN_FUZZ_DIR
trap 'rm -rf "$tmp" "$tmp.log" "$COTRAIN_FUZZ_DIR"' EXIT
cp -r "$seeds"/. "$tmp/"
mkdir -p "$art"
rc=0
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art/$(basename "$target")-" "$tmp" > "$tmp.log" 2>&1 || rc=$?
grep -E "^#[0-9]+.*(DONE|pulse|NEW)" "$tmp.log" | tail -n 1 || true
grep -E "stat::number_of_executed_units" "$tmp.log" || true
if [ $rc -ne 0 ]; then
    tail -n 40 "$tmp.log"
    echo "FAIL: $(basename "$target") (exit $rc); the input is in $art"
    exit 1
fi
rm -f "$tmp.log"
