#!/usr/bin/env bash
# bad_configs.sh — end to end through the real cotrain-worker: every kind of bad config (unknown
# key or section, wrong type, out of range, cross-key rule, several at once, missing file, invalid
# JSON, bad --set) makes the worker exit 2 before it trains anything (no run directory appears),
# with a message on stderr that names the offending key, value or file. A good config run through
# the same harness must train (the positive control: a harness that fails every run cannot pass).
# Prints one line per case; exits 1 if any case failed.
set -euo pipefail

usage() { echo "usage: $0 PATH/TO/cotrain-worker PATH/TO/cotrain"; }
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then usage; exit 0; fi
if [ $# -ne 2 ]; then usage >&2; exit 2; fi
worker=$1
cotrain=$2
for exe in "$worker" "$cotrain"; do
    [ -x "$exe" ] || { echo "FAIL: $exe is not an executable" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for _ in $(seq 50); do echo "the quick brown fox jumps over the lazy dog"; done > "$tmp/data.txt"
"$cotrain" prep "$tmp/data.txt" --tokenizer bytes --out "$tmp/data" 2> "$tmp/prep.err" \
    || { cat "$tmp/prep.err"; echo "FAIL: cotrain prep"; exit 1; }
failed=0
# Every run is two short steps unless its config is refused, so a case that is not refused ends
# quickly with exit 0 instead of training for long.
quick=(--set train.steps=2 --set train.warmup_steps=1 --set train.global_batch=2
       --set train.micro_batch=1)

# conf NAME JSON: writes $tmp/NAME.json.
conf() { printf '%s\n' "$2" > "$tmp/$1.json"; }

# run_case NAME CONFIG [WORKER ARGS...]: the worker on the data, out to $tmp/run-NAME, stdout and
# stderr to $tmp/NAME.out and .err; sets rc to its exit code.
run_case() {
    local name=$1 config=$2
    shift 2
    rc=0
    "$worker" --config "$config" --data "$tmp/data" --out "$tmp/run-$name" "${quick[@]}" "$@" \
        > "$tmp/$name.out" 2> "$tmp/$name.err" || rc=$?
}

# report NAME WHY: one line for the case; a non-empty WHY fails it, showing its stderr.
report() {
    if [ -n "$2" ]; then
        echo "FAIL $1: $2; stderr was:"
        sed 's/^/    /' "$tmp/$1.err"
        failed=1
    else
        echo "ok   $1"
    fi
}

# check_good NAME CONFIG [WORKER ARGS...]: exit code 0 and the resolved config written.
check_good() {
    local name=$1 why=""
    run_case "$@"
    if [ "$rc" -ne 0 ]; then
        why="exit code $rc, expected 0 (a good config must train)"
    elif [ ! -s "$tmp/run-$name/config.json" ]; then
        why="no config.json in the run directory"
    fi
    report "$name" "$why"
}

# check NAME CONFIG 'PATTERN|PATTERN...' [WORKER ARGS...]: exit code 2, no run directory, and
# stderr contains every pattern (fixed strings).
check() {
    local name=$1 config=$2 patterns=$3 pattern
    shift 3
    run_case "$name" "$config" "$@"
    local why=""
    if [ "$rc" -ne 2 ]; then
        why="exit code $rc, expected 2"
    elif [ -e "$tmp/run-$name" ]; then
        why="the run directory was created: the config was not refused up front"
    else
        IFS='|' read -r -a list <<< "$patterns"
        for pattern in "${list[@]}"; do
            grep -qF -- "$pattern" "$tmp/$name.err" || { why="stderr does not name '$pattern'"; break; }
        done
    fi
    report "$name" "$why"
}

conf good '{"model": {"n_layer": 1, "n_head": 1, "d_model": 8, "seq_len": 8}}'
conf unknown_key '{"train": {"stpes": 10}}'
conf unknown_section '{"trian": {"steps": 10}}'
conf wrong_type '{"train": {"lr": "fast"}}'
conf float_for_int '{"model": {"n_layer": 2.5}}'
conf wrong_bool '{"train": {"spike_guard": 1}}'
conf bad_enum '{"train": {"schedule": "cosin"}}'
conf out_of_range '{"model": {"n_layer": 0}}'
conf cross_key '{"model": {"d_model": 100, "n_head": 3}}'
conf several '{"model": {"n_layer": -1}, "train": {"beta2": 2, "bogus": true}}'
printf '{\n  "model": {\n    "n_layer": 4,\n  }\n}\n' > "$tmp/bad_json.json"

check_good good "$tmp/good.json"
check_good good_set "$tmp/good.json" --set train.lr=1e-3
check unknown_key "$tmp/unknown_key.json" 'train.stpes|steps'
check unknown_section "$tmp/unknown_section.json" 'trian|model, train, ckpt, comm, log'
check wrong_type "$tmp/wrong_type.json" 'train.lr|"fast"'
check float_for_int "$tmp/float_for_int.json" 'model.n_layer|2.5|integer'
check wrong_bool "$tmp/wrong_bool.json" 'train.spike_guard|true or false'
check bad_enum "$tmp/bad_enum.json" 'train.schedule|"cosin"|"cosine"'
check out_of_range "$tmp/out_of_range.json" 'model.n_layer|0 is out of range'
check cross_key "$tmp/cross_key.json" 'model.d_model = 100|model.n_head = 3'
check several "$tmp/several.json" '3 problems|model.n_layer|train.beta2|train.bogus'
check missing_file "$tmp/nope.json" 'nope.json|tiny'
check missing_bundled nosuchconfig 'nosuchconfig|tiny'
check bad_json "$tmp/bad_json.json" 'bad_json.json:4:|invalid JSON'
check set_unknown_key "$tmp/good.json" 'train.nope|--set' --set train.nope=1
check set_wrong_value "$tmp/good.json" 'train.lr|fast' --set train.lr=fast
check set_out_of_range "$tmp/good.json" 'train.beta1|1.5' --set train.beta1=1.5
check set_no_equals "$tmp/good.json" 'train.lr|key=value' --set train.lr
check set_bucket_zero "$tmp/good.json" 'comm.bucket_mb|0 is out of range' --set comm.bucket_mb=0
check set_chunk_negative "$tmp/good.json" 'comm.chunk_mb|-1 is out of range' --set comm.chunk_mb=-1
check set_overlap_word "$tmp/good.json" 'comm.overlap|true or false' --set comm.overlap=yes

if [ "$failed" -ne 0 ]; then
    echo "bad_configs: some cases failed"
    exit 1
fi
echo "bad_configs: all cases passed"
