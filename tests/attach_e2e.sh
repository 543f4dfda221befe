#!/usr/bin/env bash
# attach_e2e.sh — cotrain-worker attached to a cotrain-coordinator (--coordinator):
#   - the run through the coordinator (its last shard held out for evaluation: data.eval_shards)
#     is bit-identical to the same run without one (metrics and
#     the final model.h5), every checkpoint is committed with the units consumed since the last,
#     the coordinator's head is the final checkpoint, and the coordinator's public/metrics.jsonl
#     holds the group's lines as the group wrote them
#   - kill -9 the worker mid-run, start it again: it resumes from the coordinator's head (no
#     --resume) and ends bit-identical to the uninterrupted run; the same after a kill -9 of the
#     coordinator mid-run (the worker waits for it and retries)
#   - standby: a second group (--standby, same RUN_DIR) waits while the first trains; kill -9 the
#     first after a commit and the standby takes over from the head, ending bit-identical
#   - a live group whose steps outlast the lease TTL still heartbeats (a thread of its own): a standby
#     beside it waits
#   - over CURVE (--server-key, --key) the attached run is the same
#   - the worker may --set only the keys an attached worker may set; a second group taking the
#     run's data stops the first one with a clear message
# Usage: attach_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain PATH/TO/cotrain-coordinator
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup
coord_corpus
sets=(--set train.steps=24 --set train.warmup_steps=2 --set log.every=1 --set train.global_batch=8
      --set train.micro_batch=4 --set ckpt.every=8 --set ckpt.keep_last=0
      --set data.eval_shards=1 --set log.eval_every=8)

start_coord() { # start_coord RUN: a coordinator on a free port; sets cpid and ep
    coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
        --out "$tmp/$1" "${sets[@]}" --bind tcp://127.0.0.1:0
}
stop_coord() { coord_stop; }
strip() { /usr/bin/python3 "$(dirname "$0")/strip_metrics.py" "$1" --drop-group; }
same() { # same RUN WHAT: metrics and the final model.h5 equal the straight run's
    strip "$tmp/straight/public/metrics.jsonl" > "$tmp/a.m"
    strip "$tmp/$1/public/metrics.jsonl" > "$tmp/b.m"
    cmp -s "$tmp/a.m" "$tmp/b.m" || { diff "$tmp/a.m" "$tmp/b.m" | head; fail "$2: metrics differ"; }
    cmp -s "$tmp/straight/checkpoints/ckpt-00000024/model.h5" \
        "$tmp/$1/checkpoints/ckpt-00000024/model.h5" || fail "$2: the final model differs"
}
wait_step() { # wait_step OUT N: until the worker printed step N (or ended)
    for _ in $(seq 600); do
        [ "$(cat "$1" 2> /dev/null | grep -c '^step' || true)" -ge "$2" ] && return 0
        kill -0 "$wpid" 2> /dev/null || return 0
        sleep 0.05
    done
}

"$worker" --config tiny --data "$tmp/data" --out "$tmp/straight" "${sets[@]}" > /dev/null \
    2> "$tmp/straight.err" || { cat "$tmp/straight.err"; fail "the run without a coordinator"; }

# 1. attached, uninterrupted
start_coord c1
"$worker" --data "$tmp/data" --out "$tmp/a1" --coordinator "$ep" > /dev/null 2> "$tmp/a1.err" \
    || { cat "$tmp/a1.err"; fail "the attached run"; }
same a1 "attached"
# the coordinator writes the metrics it was sent into its own public/ (after their transaction,
# within a moment): the same lines
for _ in $(seq 100); do
    cmp -s "$tmp/a1/public/metrics.jsonl" "$tmp/c1/public/metrics.jsonl" && break
    sleep 0.1
done
cmp -s "$tmp/a1/public/metrics.jsonl" "$tmp/c1/public/metrics.jsonl" \
    || fail "the coordinator's metrics.jsonl is not the group's"
groups() { /usr/bin/python3 -c 'import json, sys
print(" ".join(sorted({json.loads(l)["group"] for l in open(sys.argv[1])})))' "$1"; }
[ "$(groups "$tmp/a1/public/metrics.jsonl")" = main ] || fail "metrics do not carry the group"
[ "$(groups "$tmp/straight/public/metrics.jsonl")" = local ] || fail "a plain run's group"
[ "$(grep -c 'committed by the coordinator' "$tmp/a1.err")" -eq 3 ] || fail "not 3 commits"
id=$("$cotrain" inspect "$tmp/a1/checkpoints/ckpt-00000024" | sed -n 's/^  id *//p')
"$cotrain" status "$ep" > "$tmp/status"
grep -q "head checkpoint  $id (step 24)" "$tmp/status" || { cat "$tmp/status"; fail "head"; }
grep -q "progress         step 24 of 24 (100.0%), ETA 0 s" "$tmp/status" \
    || { cat "$tmp/status"; fail "progress and ETA"; }
# the group finished and said goodbye: it is no longer in the run, and the log says why
grep -q "groups           0" "$tmp/status" || { cat "$tmp/status"; fail "group count"; }
grep -Eq "^    main +3 checkpoint\(s\), 24 step\(s\), [0-9]+ tokens" "$tmp/status" \
    || { cat "$tmp/status"; fail "the group's credit"; }
coord_wait_line "$tmp/c1/public/log.jsonl" '"type":"group_left","why":"finished"'
grep '"type":"group_left","why":"finished"' "$tmp/c1/public/log.jsonl" | grep -q '^{"group":"main"' \
    || fail "no group_left {main, finished} in the public log"
"$cotrain" status "$ep" --json | /usr/bin/python3 -c 'import json, sys
s = json.load(sys.stdin)
assert s["head"] == sys.argv[1] and s["head_step"] == 24 and s["steps"] == 24, s
cur = json.load(open(sys.argv[2]))["data_cursor"]
n = len(json.load(open(sys.argv[3]))["shards"]) - 1  # the last one is held out
assert s["groups"] == [], s  # the group finished and left
assert s["committed"] == cur["epoch"] * n + cur["shard_pos"], (s, cur)' "$id" \
    "$tmp/a1/checkpoints/ckpt-00000024/state.json" "$tmp/data/manifest.json" \
    || fail "cotrain status --json"
stop_coord

# 2. kill -9 the worker after its first checkpoint; started again it resumes from the head
start_coord c2
"$worker" --data "$tmp/data" --out "$tmp/a2" --coordinator "$ep" > "$tmp/a2.out" \
    2> "$tmp/a2.err" &
wpid=$!
wait_step "$tmp/a2.out" 12
kill -9 $wpid
wait $wpid 2> /dev/null || true
wpid=
# a group killed is still in the run (until its leases lapse): status lists it
"$cotrain" status "$ep" > "$tmp/status"
grep -Eq "^    [^ ]+ +last heard [0-9]+ s ago, [0-9]+ unit\(s\) leased" "$tmp/status" \
    || { cat "$tmp/status"; fail "the group line"; }
"$worker" --data "$tmp/data" --out "$tmp/a2" --coordinator "$ep" > /dev/null 2> "$tmp/a2b.err" \
    || { cat "$tmp/a2b.err"; fail "the restarted worker"; }
grep -q "resuming from .*ckpt-000000" "$tmp/a2b.err" || { cat "$tmp/a2b.err"; fail "no resume"; }
same a2 "worker killed and restarted"
stop_coord

# 3. kill -9 the coordinator mid-run; the worker waits and goes on once it is back
start_coord c3
"$worker" --data "$tmp/data" --out "$tmp/a3" --coordinator "$ep" > "$tmp/a3.out" \
    2> "$tmp/a3.err" &
wpid=$!
wait_step "$tmp/a3.out" 6
stop_coord
port=${ep##*:}
sleep 1
"$coord" --config tiny --data "$tmp/data" --out "$tmp/c3" "${sets[@]}" \
    --bind "tcp://127.0.0.1:$port" > /dev/null 2>> "$tmp/coord.err" &
cpid=$!
wait $wpid || { cat "$tmp/a3.err"; fail "the worker did not survive the coordinator's restart"; }
wpid=
same a3 "coordinator killed and restarted"
stop_coord

# 4. standby: b waits while a trains; a is killed after its first commit; b takes over
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/c7" "${sets[@]}" --bind tcp://127.0.0.1:0 --lease-ttl 2
"$worker" --data "$tmp/data" --out "$tmp/a7" --coordinator "$ep" --group a > "$tmp/a7.out" \
    2> "$tmp/a7.err" &
wpid=$!
coord_wait_line "$tmp/a7.err" "attached to the coordinator"
"$worker" --data "$tmp/data" --out "$tmp/a7" --coordinator "$ep" --group b --standby \
    > /dev/null 2> "$tmp/b7.err" &
bpid=$!
coord_wait_line "$tmp/a7.err" "committed by the coordinator"
kill -9 $wpid
wait $wpid 2> /dev/null || true
wpid=
"$cotrain" status "$ep" > "$tmp/status"
grep -Eq "^    b +last heard .*, standby$" "$tmp/status" || { cat "$tmp/status"; fail "b not standby"; }
wait $bpid || { cat "$tmp/b7.err"; fail "the standby group"; }
bpid=
grep -q "standby: group a is training" "$tmp/b7.err" || { cat "$tmp/b7.err"; fail "b did not wait"; }
grep -q "resuming from .*ckpt-00000008" "$tmp/b7.err" || { cat "$tmp/b7.err"; fail "no takeover"; }
same a7 "the standby took over"
[ "$(groups "$tmp/a7/public/metrics.jsonl")" = "a b" ] || fail "metrics: not a's, then b's"
stop_coord

# 4b. a live group whose steps last longer than the lease TTL is still heard: its heartbeats
#     come from a thread of their own every TTL/3, not between steps, so its leases stay alive
#     and the standby does not take over while it trains. Steps of 16x the batch (measured on
#     the straight run) against a TTL of half a step (0.3 s at least).
ttl=$(/usr/bin/python3 -c 'import json, statistics, sys
tps = [json.loads(l)["tokens_per_s"] for l in open(sys.argv[1])][1:]
print(round(max(0.3, 16 * 1024 / statistics.median(tps) / 2), 2))' "$tmp/straight/public/metrics.jsonl")
slow=(--set train.global_batch=128 --set train.micro_batch=8 --set train.steps=6
      --set ckpt.every=6)
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/c9" "${sets[@]}" "${slow[@]}" --bind tcp://127.0.0.1:0 --lease-ttl "$ttl"
"$worker" --data "$tmp/data" --out "$tmp/a9" --coordinator "$ep" --group a > /dev/null \
    2> "$tmp/a9.err" &
wpid=$!
coord_wait_line "$tmp/a9.err" "attached to the coordinator"
"$worker" --data "$tmp/data" --out "$tmp/a9" --coordinator "$ep" --group b --standby \
    > /dev/null 2> "$tmp/b9.err" &
bpid=$!
wait $wpid || { cat "$tmp/a9.err"; fail "the live group (TTL $ttl s) was cut off by the standby"; }
wpid=
kill -9 $bpid 2> /dev/null || true
wait $bpid 2> /dev/null || true
bpid=
grep -q "standby: group a is training" "$tmp/b9.err" || { cat "$tmp/b9.err"; fail "b9 no wait"; }
! grep -q '"type":"group_left".*"why":"silent"' "$tmp/c9/public/log.jsonl" \
    || fail "group a was taken for silent while it trained (TTL $ttl s)"
grep -q "checkpoint .* of step 6 committed" "$tmp/a9.err" || fail "a did not commit step 6"
stop_coord

# 5. over CURVE: the coordinator admits the worker's key (--allow); the run is the same
"$cotrain" keygen "$tmp/coord.key" > /dev/null && "$cotrain" keygen "$tmp/worker.key" > /dev/null
cp "$tmp/worker.key.pub" "$tmp/allow"
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/c8" "${sets[@]}" --bind tcp://127.0.0.1:0 --key "$tmp/coord.key" \
    --allow "$tmp/allow"
"$worker" --data "$tmp/data" --out "$tmp/a8" --coordinator "$ep" \
    --server-key "$tmp/coord.key.pub" --key "$tmp/worker.key" > /dev/null 2> "$tmp/a8.err" \
    || { cat "$tmp/a8.err"; fail "the worker over CURVE"; }
same a8 "over CURVE"
grep -q "peer with key [0-9a-f]* admitted" "$tmp/coord.err" || fail "the worker's key not logged"
kid=$(sed -n 's/.*peer with key \([0-9a-f]*\) admitted.*/\1/p' "$tmp/coord.err" | head -n 1)
stop_coord
# the verified log credits the worker's key with the lineage
"$cotrain" verify "$tmp/c8/public" > "$tmp/v8" 2>&1 || { cat "$tmp/v8"; fail "verify over CURVE"; }
grep -q "credit: key $kid committed 3 checkpoint(s), 24 step(s)" "$tmp/v8" \
    || { cat "$tmp/v8"; fail "the key's credit"; }
set +e
"$worker" --data "$tmp/data" --out "$tmp/a8" --server-key "$tmp/coord.key.pub" \
    --key "$tmp/worker.key" > /dev/null 2> "$tmp/a8b.err"
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "add --coordinator" "$tmp/a8b.err" || fail "--key without --coordinator"

# 6. refusals: a key an attached worker may not set; another group taking the data
start_coord c4
set +e
"$worker" --data "$tmp/data" --out "$tmp/a4" --coordinator "$ep" --set train.lr=0.1 \
    > /dev/null 2> "$tmp/a4.err"
rc=$?
set -e
[ $rc -eq 2 ] || { cat "$tmp/a4.err"; fail "--set train.lr attached: exit $rc, expected 2"; }
grep -q "train.lr" "$tmp/a4.err" || fail "the refused key is not named"
"$cotrain" status "$ep" > /dev/null
"$worker" --data "$tmp/data" --out "$tmp/a5" --coordinator "$ep" --group other \
    --set train.micro_batch=2 > /dev/null 2> "$tmp/a5.err" &
wpid=$!
sleep 0.2
set +e
"$worker" --data "$tmp/data" --out "$tmp/a6" --coordinator "$ep" > /dev/null 2> "$tmp/a6.err"
rc=$?
set -e
wait $wpid 2> /dev/null || true
wpid=
[ $rc -ne 0 ] || fail "two groups took the same data without a word"
grep -q -e "another group is taking" -e "is not in" -e "refused" "$tmp/a6.err" \
    || { cat "$tmp/a6.err"; fail "no clear message for two groups"; }
echo "attach_e2e: all checks passed"
