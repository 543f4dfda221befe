#!/usr/bin/env bash
# volunteer_crash_e2e.sh — the coordinator killed -9 again and again during a volunteer run (while
# deltas are being uploaded, waiting, merged and the new version saved), brought back each time
# on the same port:
#   - the run finishes, its log verifies, every unit of data in its lineage once
#   - no acknowledged delta is lost: every delta a group saw acknowledged is in an outer_step
#     record, accepted or refused with its reason
#   - none is applied twice: each (group, version it started from) is in no more outer_step
#     records than the group trained rounds from that version (check_deltas.py)
# Deltas go f32 here (4 chunks each), so uploads are cut and resumed too.
# Usage: volunteer_crash_e2e.sh WORKER COTRAIN COORDINATOR [KILLS]
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
kills=${4:-12}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup
coord_corpus
start() { # start PORT
    coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
        --out "$tmp/coord" --bind "tcp://127.0.0.1:$1" --lease-ttl 5 --http off \
        --set volunteer.enabled=true --set train.steps=12 --set volunteer.inner_steps=6 \
        --set volunteer.quorum=2 --set volunteer.deadline_s=3 --set volunteer.max_staleness=3 \
        --set volunteer.compress=f32 --set train.warmup_steps=2 --set train.global_batch=8 \
        --set train.micro_batch=8 --set ckpt.keep_last=0
}
start 0
port=${ep##*:}
pids=()
for g in g1 g2; do
    "$worker" --join "$ep" --group $g --out "$tmp/$g" > /dev/null 2> "$tmp/$g.log" &
    pids+=($!)
done
for k in $(seq "$kills"); do
    sleep "0.$((RANDOM % 9 + 1))"
    kill -0 "$cpid" 2> /dev/null || break # the run may be over
    coord_stop
    start "$port"
done
echo "volunteer_crash_e2e: $k kill(s) of the coordinator"
for p in "${pids[@]}"; do wait "$p" || fail "a group failed: $(tail -3 "$tmp"/g*.log)"; done
for _ in $(seq 1200); do kill -0 "$cpid" 2> /dev/null || break; sleep 0.05; done
rc=0
wait "$cpid" || rc=$?
cpid=
[ $rc = 0 ] || fail "the coordinator exited $rc: $(tail -3 "$tmp/coord.err")"
grep -q "volunteer: finished at version 12 of 12" "$tmp/g1.log" || fail "g1 did not finish"
out=$("$cotrain" verify "$tmp/coord/public")
grep -q "committed, each once" <<< "$out" || fail "lineage: $out"
/usr/bin/python3 "$(dirname "$0")/check_deltas.py" "$tmp/coord/public/log.jsonl" \
    g1="$tmp/g1.log" g2="$tmp/g2.log" --label volunteer_crash_e2e \
    || fail "an acknowledged delta was lost or applied twice"
echo "ok: the run survived the kills: no delta lost or applied twice, one lineage"
