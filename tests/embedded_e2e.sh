#!/usr/bin/env bash
# embedded_e2e.sh — a run without --coordinator goes through the coordinator embedded in its
# rank 0, and its registry (RUN_DIR/coordinator.db) follows every way a run resumes:
#   1. `mpirun -np 2 cotrain-worker` with no coordinator flag trains, leases its data and commits
#      every checkpoint: the lineage is one chain of the checkpoints on disk and every unit before
#      the head's cursor is committed exactly once (check_lineage.py); held-out shards
#      (data.eval_shards) are not in the registry
#   2. a fresh start over that run is refused (exit 2, saying what to do) and changes nothing
#   3. a checkpoint saved but never committed (the crash between save and commit) is passed over
#      by --resume latest; the run resumes from the registry's head and ends bit-identical to a
#      straight run
#   4. --resume of an older checkpoint: the registry goes back to it (later checkpoints leave the
#      lineage, their data returns); the run ends bit-identical, the lineage whole
#   5. a run directory without a registry (made before it, or lost): --resume adopts the
#      checkpoint as the root of a new lineage; the run ends bit-identical, the lineage whole
#   6. a checkpoint of another run is refused (exit 2), the registry unchanged
# Usage: embedded_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain
set -euo pipefail
worker=$1
cotrain=$2
here=$(dirname "$0")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# Open MPI's plugins keep allocations past MPI_Finalize (see mpi_e2e.sh)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup
coord_corpus
args=(--config tiny --data "$tmp/data" --set train.steps=20 --set log.every=1
      --set train.global_batch=8 --set train.micro_batch=4 --set train.warmup_steps=2
      --set ckpt.every=5 --set ckpt.keep_last=0)
w() { # w OUT [ARGS...]: one rank, the log in OUT.err
    local out=$1
    shift
    timeout 300 "$worker" "${args[@]}" --out "$tmp/$out" "$@" > /dev/null 2> "$tmp/$out.err"
}
lineage() { # lineage RUN STEPS
    /usr/bin/python3 "$here/check_lineage.py" "$tmp/$1/coordinator.db" "$tmp/$1/checkpoints" "$2" \
        || fail "$1: the registry's lineage"
}
same_as_straight() { # same_as_straight RUN WHAT
    /usr/bin/python3 "$here/strip_metrics.py" "$tmp/straight/public/metrics.jsonl" > "$tmp/a.m"
    /usr/bin/python3 "$here/strip_metrics.py" "$tmp/$1/public/metrics.jsonl" > "$tmp/b.m"
    cmp -s "$tmp/a.m" "$tmp/b.m" || { diff "$tmp/a.m" "$tmp/b.m" | head; fail "$2: metrics differ"; }
    cmp -s "$tmp/straight/checkpoints/ckpt-00000020/model.h5" \
        "$tmp/$1/checkpoints/ckpt-00000020/model.h5" || fail "$2: the final model differs"
}
dump() { /usr/bin/python3 -c 'import sqlite3, sys
print("\n".join(sqlite3.connect(sys.argv[1]).iterdump()))' "$1"; }

# 1. two ranks, no coordinator flag: leases and commits through the embedded coordinator
timeout 300 mpirun --oversubscribe --bind-to none -np 2 "$worker" "${args[@]}" \
    --out "$tmp/np2" > /dev/null 2> "$tmp/np2.err" \
    || { tail -n 20 "$tmp/np2.err"; fail "mpirun -np 2 without a coordinator"; }
grep -q "rank 0 of 2 (mpi)" "$tmp/np2.err" || fail "np=2 did not run on the mpi backend"
grep -q "the embedded coordinator (.*coordinator.db), group local" "$tmp/np2.err" \
    || fail "no embedded coordinator named"
[ "$(grep -c "committed by the coordinator" "$tmp/np2.err")" -eq 4 ] \
    || fail "np2: 4 checkpoint commits expected"
lineage np2 20
# the manifest's last 2 shards held out for evaluation are not the registry's
w held --set data.eval_shards=2 --set log.eval_every=10 \
    || { tail -n 20 "$tmp/held.err"; fail "held-out run"; }
lineage held 20
/usr/bin/python3 - "$tmp/held/coordinator.db" "$tmp/data/manifest.json" <<'EOF' \
    || fail "held-out shards in the registry"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
shards = [s["id"] for s in json.load(open(sys.argv[2]))["shards"]]
ids = [r[0] for r in db.execute("SELECT id FROM shards ORDER BY idx")]
assert ids == shards[:-2], f"the registry's shards are not the manifest's minus the last 2"
EOF

# the straight one-rank run the others must equal
w straight || { tail -n 20 "$tmp/straight.err"; fail "straight run"; }
lineage straight 20

# 2. a fresh start over the run: refused, nothing changed
dump "$tmp/straight/coordinator.db" > "$tmp/db.before"
cp "$tmp/straight/config.json" "$tmp/config.before"
rc=0
w straight --set train.steps=30 || rc=$?
[ $rc -eq 2 ] || { tail -n 5 "$tmp/straight.err"; fail "fresh start over a run: exit $rc, not 2"; }
grep -q "go on with --resume latest, or start a new run in another --out" "$tmp/straight.err" \
    || { tail -n 5 "$tmp/straight.err"; fail "fresh start over a run: no advice"; }
dump "$tmp/straight/coordinator.db" | cmp -s - "$tmp/db.before" \
    || fail "the refused start changed the registry"
cmp -s "$tmp/straight/config.json" "$tmp/config.before" \
    || fail "the refused start rewrote config.json"

# 3. saved, never committed: a copy of the run goes on to step 15, and its ckpt-15 is put into
#    the run as if it had crashed between saving and committing
w crash --until 10 || fail "crash: --until 10"
cp -r "$tmp/crash" "$tmp/fork"
w fork --resume latest --until 15 || fail "fork: --until 15"
cp -r "$tmp/fork/checkpoints/ckpt-00000015" "$tmp/crash/checkpoints/"
w crash --resume latest || { tail -n 20 "$tmp/crash.err"; fail "crash: --resume latest"; }
grep -q "passing over checkpoint .*ckpt-00000015: the run's registry never committed it" \
    "$tmp/crash.err" || fail "crash: the uncommitted checkpoint was not passed over"
grep -q "resuming from .*ckpt-00000010" "$tmp/crash.err" || fail "crash: not resumed from 10"
same_as_straight crash "crash between save and commit"
lineage crash 20

# 4. back to an older checkpoint: the registry follows
w crash --resume "$tmp/crash/checkpoints/ckpt-00000005" \
    || { tail -n 20 "$tmp/crash.err"; fail "back: --resume ckpt-5"; }
grep -q "the run goes back to checkpoint .* (step 5): 3 later checkpoint(s) leave" \
    "$tmp/crash.err" || { grep registry "$tmp/crash.err"; fail "back: no rollback logged"; }
same_as_straight crash "back to step 5"
lineage crash 20

# 5. no registry: adopted
rm -f "$tmp/crash/coordinator.db"*
w crash --resume "$tmp/crash/checkpoints/ckpt-00000010" \
    || { tail -n 20 "$tmp/crash.err"; fail "adopt: --resume ckpt-10"; }
grep -q "starts its lineage at checkpoint .* (step 10)" "$tmp/crash.err" \
    || fail "adopt: not logged"
same_as_straight crash "adopted at step 10"
lineage crash 20

# 6. another run's checkpoint (the same config and data on 2 ranks: other bits): refused, the
#    registry unchanged
dump "$tmp/crash/coordinator.db" > "$tmp/db.before"
rc=0
w crash --resume "$tmp/np2/checkpoints/ckpt-00000010" || rc=$?
[ $rc -eq 2 ] || { tail -n 5 "$tmp/crash.err"; fail "another run's checkpoint: exit $rc, not 2"; }
grep -q "is not in this run's lineage" "$tmp/crash.err" \
    || { tail -n 5 "$tmp/crash.err"; fail "another run's checkpoint: not named"; }
dump "$tmp/crash/coordinator.db" | cmp -s - "$tmp/db.before" \
    || fail "the refused resume changed the registry"
echo "embedded_e2e: all checks passed"
