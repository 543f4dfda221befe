#!/usr/bin/env bash
# volunteer_robust_e2e.sh — robust aggregation against a malicious group (DESIGN.md, "Volunteer
# mode"): three honest groups and bad_group (random deltas, uniform in [-1, 1]: far larger than honest ones; then
# scaled copies of the last model update, undoing it amplified) train together.
#   - with volunteer.aggregate=median (the norm check off, so the rule itself is tested) the final
#     eval loss stays within 5% of the same run (same rule) without the bad group
#   - with the plain mean it visibly does not (over 1.5 times the clean loss)
#   - with the defaults (trimmed_mean, the norm check on) the bad deltas are refused, each with its
#     reason in the signed outer_step record, and the loss again stays within 5% of the clean run
#     (without a bad group the rules agree: 2.6403 with the median, 2.6401 with the defaults, at 8
#     versions; so the clean run is run once)
# Runs differ by which units each group happens to lease: batch 16 at lr 1e-3 keeps three runs of
# the same config within ~1% of each other (batch 8 at 2e-3 spread ~6%, too close to the 5% checked).
# Five versions of 8 inner steps keep each run near 20 s on 2 cores.
# Usage: volunteer_robust_e2e.sh WORKER COTRAIN COORDINATOR BAD_GROUP
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
bad=$4
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup
coord_corpus

# run NAME BAD_MODE BAD_ARG SETS...: a run of 3 honest groups (+ bad_group unless BAD_MODE is
# none) to its end; prints the final checkpoint's eval loss
run() {
    local name=$1 mode=$2 arg=$3 pids=() n=3 p
    shift 3
    [ "$mode" = none ] || n=4
    coord_start "$tmp/$name.coord.out" "$tmp/$name.coord.err" "$coord" --config tiny \
        --data "$tmp/data" --out "$tmp/$name" --bind tcp://127.0.0.1:0 --http off \
        --set volunteer.enabled=true --set train.steps=5 --set volunteer.inner_steps=8 \
        --set volunteer.quorum=$n --set volunteer.deadline_s=30 --set train.warmup_steps=2 \
        --set train.global_batch=16 --set train.micro_batch=16 --set train.lr=1e-3 \
        --set ckpt.keep_last=0 "$@"
    for g in h1 h2 h3; do
        "$worker" --join "$ep" --group "$g" --out "$tmp/$name.$g" \
            > /dev/null 2> "$tmp/$name.$g.log" &
        pids+=($!)
    done
    if [ "$mode" != none ]; then
        "$bad" "$ep" evil "$mode" "$arg" > "$tmp/$name.bad.out" 2> "$tmp/$name.bad.err" &
        pids+=($!)
    fi
    for p in "${pids[@]}"; do wait "$p" || fail "$name: a group failed: $(tail -2 "$tmp"/$name.*.log)"; done
    local rc=0
    wait "$cpid" || rc=$?
    cpid=
    [ $rc = 0 ] || fail "$name: the coordinator exited $rc"
    "$cotrain" eval "$tmp/$name/checkpoints/ckpt-00000005" --data "$tmp/data" --tokens 20000 \
        2> /dev/null | sed -n 's/^loss //p'
}
within() { /usr/bin/python3 -c "import sys; a,b,r=map(float,sys.argv[1:]); sys.exit(0 if abs(a-b)<=r*b else 1)" "$@"; }
above() { /usr/bin/python3 -c "import sys; a,b,r=map(float,sys.argv[1:]); sys.exit(0 if a>r*b else 1)" "$@"; }

# each rule against the same run without the bad group
clean=$(run clean none 0 --set volunteer.aggregate=median --set volunteer.outlier_ratio=0)
echo "no bad group, median: eval loss $clean"
median=$(run median random 1 --set volunteer.aggregate=median --set volunteer.outlier_ratio=0)
echo "random deltas, median: eval loss $median"
within "$median" "$clean" 0.05 || fail "with the median the loss $median is not within 5% of $clean"
scaled=$(run scaled scaled -20 --set volunteer.aggregate=median --set volunteer.outlier_ratio=0)
echo "scaled deltas, median: eval loss $scaled"
within "$scaled" "$clean" 0.05 || fail "with the median the loss $scaled is not within 5% of $clean"
mean=$(run mean random 1 --set volunteer.aggregate=mean --set volunteer.outlier_ratio=0)
echo "random deltas, mean: eval loss $mean"
above "$mean" "$clean" 1.5 || fail "with the mean the bad group should hurt: $mean vs $clean"
defaults=$(run defaults random 1)
echo "random deltas, defaults: eval loss $defaults"
within "$defaults" "$clean" 0.05 || fail "with the defaults the loss $defaults is not within 5% of $clean"
log=$tmp/defaults/public/log.jsonl
grep -q '"group":"evil","steps":8,"tokens":16384,"why":"its norm' "$log" ||
    fail "the bad deltas were not refused by their norm in the signed log"
"$cotrain" verify "$tmp/defaults/public" > /dev/null || fail "the log does not verify"
echo "ok: robust rules hold against a malicious group, the mean does not; refusals are logged"
