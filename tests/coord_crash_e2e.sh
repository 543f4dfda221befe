#!/usr/bin/env bash
# coord_crash_e2e.sh — kill -9 the coordinator at random moments of a real run, again and again:
#   - an `mpirun -np 2` group trains attached, a standby group (1 rank, same RUN_DIR) waits;
#     the coordinator is killed -9 KILLS times (default 50) at random moments and started again
#     on the same port and run directory; the group waits for it and goes on each time
#   - the run finishes bit-identical (metrics and final model) to the same 2-rank run without a
#     coordinator; the standby never took over (the active group never fell silent)
#   - the ledger (check_lineage.py): every unit the final checkpoint consumed is committed exactly
#     once, in the checkpoints of the lineage, and every committed checkpoint is one the group
#     wrote
# Usage: coord_crash_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain PATH/TO/cotrain-coordinator
#        [KILLS]
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
kills_want=${4:-50}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# Open MPI's plugins keep allocations past MPI_Finalize (see mpi_e2e.sh)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup
coord_corpus
steps=${STEPS:-400}
# each run's limit: 600 s, or more for a long soak (about 8 steps/s on a busy 2-CPU machine)
limit=$((steps / 4 > 600 ? steps / 4 : 600))
keep=${KEEP_LAST:-0} # the soak keeps the last few checkpoints only (disk)
sets=(--set train.steps="$steps" --set train.warmup_steps=2 --set log.every=1
      --set train.global_batch=8 --set train.micro_batch=4 --set ckpt.every=10
      --set ckpt.keep_last="$keep")

timeout "$limit" mpirun --oversubscribe --bind-to none -np 2 "$worker" --config tiny \
    --data "$tmp/data" --out "$tmp/straight" "${sets[@]}" > /dev/null 2> "$tmp/straight.err" \
    || { tail -n 20 "$tmp/straight.err"; fail "the run without a coordinator"; }

coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/c" "${sets[@]}" --bind tcp://127.0.0.1:0 --lease-ttl 10
port=${ep##*:}
timeout "$limit" mpirun --oversubscribe --bind-to none -np 2 "$worker" --data "$tmp/data" \
    --out "$tmp/run" --coordinator "$ep" --group a > "$tmp/a.out" 2> "$tmp/a.err" &
wpid=$!
coord_wait_line "$tmp/a.err" "attached to the coordinator"
"$worker" --data "$tmp/data" --out "$tmp/run" --coordinator "$ep" --group b --standby \
    > /dev/null 2> "$tmp/b.err" &
bpid=$!

kills=0
RANDOM=7
while [ $kills -lt "$kills_want" ] && kill -0 "$wpid" 2> /dev/null; do
    sleep "0.$((RANDOM % 4 + 1))"
    coord_stop
    kills=$((kills + 1))
    sleep "0.$((RANDOM % 3))"
    coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
        --out "$tmp/c" "${sets[@]}" --bind "tcp://127.0.0.1:$port" --lease-ttl 10
done
[ $kills -ge "$kills_want" ] \
    || { tail -n 20 "$tmp/a.err"; fail "the group ended after $kills kills (wanted $kills_want)"; }
wait $wpid || { tail -n 30 "$tmp/a.err"; fail "the group did not finish through $kills kills"; }
wpid=
coord_wait_line "$tmp/c/public/log.jsonl" '"type":"group_left","why":"finished"' 

# the run is the run without a coordinator
strip() { /usr/bin/python3 "$(dirname "$0")/strip_metrics.py" "$1" --drop-group; }
strip "$tmp/straight/public/metrics.jsonl" > "$tmp/a.m"
strip "$tmp/run/public/metrics.jsonl" > "$tmp/b.m"
cmp -s "$tmp/a.m" "$tmp/b.m" || { diff "$tmp/a.m" "$tmp/b.m" | head; fail "metrics differ"; }
final=$(printf 'ckpt-%08d' "$steps")
cmp -s "$tmp/straight/checkpoints/$final/model.h5" "$tmp/run/checkpoints/$final/model.h5" \
    || fail "the final model differs"
# a takeover is logged as group_left {a, silent, successor b}; once a has finished and left, b
# may attach to the finished run (and find nothing to do), which is no takeover
if grep -q '"group":"a".*"successor":"b".*"type":"group_left","why":"silent"' \
    "$tmp/c/public/log.jsonl"; then
    cat "$tmp/b.err"
    fail "the standby took over while the active group was alive"
fi
grep -q "standby: group a is training" "$tmp/b.err" || { cat "$tmp/b.err"; fail "no standby"; }

# the ledger: the lineage runs through every committed checkpoint, each the group's, and the
# units before the head's cursor are committed exactly once
coord_stop
/usr/bin/python3 "$(dirname "$0")/check_lineage.py" "$tmp/c/coordinator.db" \
    "$tmp/run/checkpoints" "$steps" || fail "the ledger's lineage"
echo "coord_crash_e2e: all checks passed ($kills kills)"
