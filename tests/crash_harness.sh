#!/usr/bin/env bash
# crash_harness.sh — kill -9 one named process of a run at random moments, ITERATIONS times, and
# check DESIGN.md's invariants after each kill and at the end:
#   coordinator  the coordinator under an `mpirun -np 2` group and a standby (coord_crash_e2e.sh):
#                no acknowledged record lost, the run bit-identical to one without a coordinator
#   save         a worker writing a checkpoint every step (ckpt_e2e.sh's crash loop, with the
#                rest of that test): every checkpoint on disk verifies, resume always finds one
#   coord-volunteer  the coordinator of a volunteer run (volunteer_crash_e2e.sh): no acknowledged
#                delta lost or applied twice
#   rank         one rank, chosen at random, of an `mpirun -np 2` group attached to a coordinator
#                (a checkpoint every step, so many kills land mid-save); mpirun brings the other
#                down and the group is started again. After each kill the ledger is checked from
#                a read snapshot (check_lineage.py: one chain, every committed checkpoint on disk
#                the one committed, every unit committed once) and the head checkpoint verifies;
#                at the end the run is bit-identical (metrics, final model) to the same run
#                without kills, and `cotrain verify --ckpts` passes
#   volunteer    a volunteer group mid-round (training, uploading its f32 delta in chunks, or
#                downloading the next version), joined again each time under the same name
#                beside a second group that stays; at the end the run finished all its outer
#                steps, `cotrain verify` passes (every unit once), every acknowledged delta is
#                in the log, and none is there more often than a group trained from its version
#   hang         one rank, chosen at random, of an `mpirun -np 2` group stopped (SIGSTOP: alive
#                but stuck, where kill -9 lets mpirun end the job) at a random moment after the
#                first log.every steps, ITERATIONS times, each a fresh job of config HANG_CONFIG
#                (default tiny) with comm.watchdog_factor = 2 (the issue's bound: 2 x the p99
#                step time), comm.watchdog_min_s = HANG_MIN_S (default 0.05) and
#                comm.watchdog_slow_s = 10: the other rank's watchdog must end the job, and not
#                before the stop (a false alarm fails). Prints how long after each stop the
#                verdict came, against the limit and the p99 step time it names (or the slow work
#                it was waiting in)
#   all          each of the above in turn with ITERATIONS kills (hang not included)
# Usage: crash_harness.sh BUILD_DIR TARGET [ITERATIONS (default 20)]
# `scripts/bench crash` runs it; scripts/test runs rank and volunteer with a few kills.
set -euo pipefail
if [ $# -lt 2 ] || [ "$1" = --help ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [ "${1:-}" = --help ] && exit 0 || exit 2
fi
build=$(cd "$1" && pwd)
target=$2
iterations=${3:-20}
here=$(cd "$(dirname "$0")" && pwd)
worker=$build/cotrain-worker
cotrain=$build/cotrain
coord=$build/cotrain-coordinator
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# Open MPI's plugins keep allocations past MPI_Finalize (see mpi_e2e.sh)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

case $target in
    coordinator) exec "$here/coord_crash_e2e.sh" "$worker" "$cotrain" "$coord" "$iterations" ;;
    save) exec "$here/ckpt_e2e.sh" "$worker" "$cotrain" "$iterations" ;;
    coord-volunteer) exec "$here/volunteer_crash_e2e.sh" "$worker" "$cotrain" "$coord" \
        "$iterations" ;;
    all)
        for t in coordinator save coord-volunteer rank volunteer; do
            echo "=== crash_harness: $t, $iterations kill(s)"
            "$0" "$build" "$t" "$iterations"
        done
        exit 0
        ;;
    rank | volunteer | hang) ;;
    *) echo "crash_harness: unknown target '$target' (try --help)" >&2; exit 2 ;;
esac

# shellcheck source=tests/coord_lib.sh
. "$here/coord_lib.sh"
coord_setup
coord_corpus
RANDOM=${SEED:-11}

# pause_random LO HI: sleeps a random time between LO and HI tenths of a second.
pause_random() { sleep "$(awk -v t=$(($1 + RANDOM % ($2 - $1 + 1))) 'BEGIN { print t / 10 }')"; }

# rank_kills: the group is started until it finishes; each start but the last loses a rank.
rank_kills() {
    local steps=$((iterations * 16 + 40)) # about 10 steps a start pass before its kill
    local sets=(--set "train.steps=$steps" --set train.warmup_steps=2 --set log.every=1
                --set train.global_batch=8 --set train.micro_batch=4 --set ckpt.every=1
                --set ckpt.keep_last=0)
    mpirun --oversubscribe --bind-to none -np 2 "$worker" --config tiny --data "$tmp/data" \
        --out "$tmp/straight" "${sets[@]}" > /dev/null 2> "$tmp/straight.err" \
        || { tail -n 20 "$tmp/straight.err"; fail "the run without kills"; }
    coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
        --out "$tmp/c" "${sets[@]}" --bind tcp://127.0.0.1:0 --lease-ttl 10 --http off
    local kills=0 starts=0 rc t_kill=
    while :; do
        starts=$((starts + 1))
        mpirun --oversubscribe --bind-to none -np 2 "$worker" --data "$tmp/data" \
            --out "$tmp/run" --coordinator "$ep" --group a > /dev/null 2> "$tmp/a.err" &
        wpid=$!
        if [ $kills -lt "$iterations" ]; then
            coord_wait_line "$tmp/a.err" "attached to the coordinator"
            pause_random 2 15
            local ranks
            mapfile -t ranks < <(pgrep -P "$wpid" -f cotrain-worker || true)
            if [ ${#ranks[@]} -gt 0 ]; then
                t_kill=$EPOCHREALTIME
                kill -9 "${ranks[RANDOM % ${#ranks[@]}]}" 2> /dev/null && kills=$((kills + 1))
            fi
        fi
        rc=0
        wait "$wpid" || rc=$?
        wpid=
        [ -n "$t_kill" ] && echo "$t_kill $EPOCHREALTIME" >> "$tmp/downs"
        t_kill=
        [ $rc = 0 ] && break
        [ $starts -le $((iterations * 2 + 5)) ] \
            || { tail -n 20 "$tmp/a.err"; fail "the group keeps failing ($starts starts)"; }
        "$PYTHON" "$here/check_lineage.py" "$tmp/c/coordinator.db" "$tmp/run/checkpoints" any \
            > "$tmp/lineage.out" || fail "after kill $kills: the ledger"
        local dirs=("$tmp"/run/checkpoints/ckpt-*) head
        head=${dirs[-1]}
        if [ -d "$head" ] && grep -qF "(step $((10#${head##*ckpt-})))" "$tmp/lineage.out"; then
            "$cotrain" inspect "$head" > /dev/null || fail "after kill $kills: $head"
        fi
    done
    [ $kills -ge "$iterations" ] || fail "only $kills of $iterations kills landed"
    local strip=("$PYTHON" "$here/strip_metrics.py")
    "${strip[@]}" "$tmp/straight/public/metrics.jsonl" --drop-group > "$tmp/a.m"
    "${strip[@]}" "$tmp/run/public/metrics.jsonl" --drop-group > "$tmp/b.m"
    cmp -s "$tmp/a.m" "$tmp/b.m" || { diff "$tmp/a.m" "$tmp/b.m" | head; fail "metrics differ"; }
    local final
    final=$(printf 'ckpt-%08d' "$steps")
    cmp -s "$tmp/straight/checkpoints/$final/model.h5" "$tmp/run/checkpoints/$final/model.h5" \
        || fail "the final model differs"
    coord_wait_line "$tmp/c/public/log.jsonl" '"type":"group_left","why":"finished"'
    coord_stop
    "$PYTHON" "$here/check_lineage.py" "$tmp/c/coordinator.db" "$tmp/run/checkpoints" "$steps" \
        || fail "the final ledger"
    "$cotrain" verify "$tmp/c/public" --ckpts "$tmp/run/checkpoints" > "$tmp/verify.out" \
        || { cat "$tmp/verify.out"; fail "cotrain verify"; }
    # how long a group with a dead rank takes to be gone (no rank left waiting on the dead one)
    "$PYTHON" - "$tmp/downs" "$tmp/straight/public/metrics.jsonl" << 'PY'
import json, sys
downs = sorted(float(b) - float(a) for a, b in (l.split() for l in open(sys.argv[1])))
recs = [json.loads(l) for l in open(sys.argv[2])]
steps = sorted((b["tokens"] - a["tokens"]) / b["tokens_per_s"] for a, b in zip(recs, recs[1:]))
p99 = steps[min(len(steps) - 1, int(0.99 * len(steps)))]
print("crash_harness rank: the group was gone %.2f s at most after a kill (median %.2f s); the "
      "p99 step time %.3f s" % (downs[-1], downs[len(downs) // 2], p99))
PY
    echo "crash_harness rank: $kills kill(s) over $starts start(s); the run is the run without" \
        "kills, bit for bit; the ledger and the log verify"
}

# volunteer_kills: g1 stays; g2 is killed -9 at random moments and joins again each time.
volunteer_kills() {
    local outer=$((iterations * 3 + 6)) # outer steps: train.steps counts them in volunteer mode
    coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
        --out "$tmp/coord" --bind tcp://127.0.0.1:0 --lease-ttl 3 --http off \
        --set volunteer.enabled=true --set train.steps=$outer \
        --set volunteer.inner_steps=4 --set volunteer.quorum=1 --set volunteer.deadline_s=2 \
        --set volunteer.max_staleness=2 --set volunteer.compress=f32 \
        --set train.warmup_steps=2 --set train.global_batch=8 --set train.micro_batch=8 \
        --set ckpt.keep_last=0
    "$worker" --join "$ep" --group g1 --out "$tmp/g1" > /dev/null 2> "$tmp/g1.log" &
    wpid=$!
    local kills=0 gpid
    while [ $kills -lt "$iterations" ] && kill -0 "$cpid" 2> /dev/null; do
        "$worker" --join "$ep" --group g2 --out "$tmp/g2" > /dev/null 2>> "$tmp/g2.log" &
        gpid=$!
        bpid=$gpid
        pause_random 5 30
        kill -9 "$gpid" 2> /dev/null && kills=$((kills + 1))
        wait "$gpid" 2> /dev/null || true
        bpid=
    done
    [ $kills -ge "$iterations" ] || fail "the run ended after $kills of $iterations kills"
    wait "$wpid" || { tail -n 5 "$tmp/g1.log"; fail "g1 failed"; }
    wpid=
    for _ in $(seq 1200); do kill -0 "$cpid" 2> /dev/null || break; sleep 0.05; done
    local rc=0
    wait "$cpid" || rc=$?
    cpid=
    [ $rc = 0 ] || fail "the coordinator exited $rc: $(tail -n 3 "$tmp/coord.err")"
    grep -q "volunteer: finished at version $outer of $outer" "$tmp/g1.log" \
        || { tail -n 5 "$tmp/g1.log"; fail "g1 did not see the run finish"; }
    "$cotrain" verify "$tmp/coord/public" > "$tmp/verify.out" \
        || { cat "$tmp/verify.out"; fail "cotrain verify"; }
    grep -q "committed, each once" "$tmp/verify.out" || fail "lineage: $(cat "$tmp/verify.out")"
    "$PYTHON" "$here/check_deltas.py" "$tmp/coord/public/log.jsonl" g1="$tmp/g1.log" \
        g2="$tmp/g2.log" --label "crash_harness volunteer" \
        || fail "a delta was lost or applied twice"
    echo "crash_harness volunteer: $kills kill(s) of a group; the run finished and verifies"
}

# hang_kills: each job loses a rank to SIGSTOP; the watchdog's verdicts go to $tmp/verdicts.
hang_kills() {
    local sets=(--config "${HANG_CONFIG:-tiny}" --set train.steps=1000000 --set ckpt.every=0
                --set train.global_batch=16 --set train.micro_batch=8
                --set log.every=20 --set "comm.watchdog_min_s=${HANG_MIN_S:-0.05}"
                --set comm.watchdog_factor=2 --set comm.watchdog_slow_s=10)
    local i victim ranks rc
    for i in $(seq "$iterations"); do
        rm -rf "$tmp/run"
        mpirun --oversubscribe --bind-to none -np 2 "$worker" --data "$tmp/data" \
            --out "$tmp/run" "${sets[@]}" > /dev/null 2> "$tmp/h.err" &
        wpid=$!
        # the watchdog has a p99 once the first log.every steps are done
        for _ in $(seq 1200); do
            [ -s "$tmp/run/public/metrics.jsonl" ] && break
            kill -0 "$wpid" 2> /dev/null || break
            sleep 0.05
        done
        pause_random 0 20
        mapfile -t ranks < <(pgrep -P "$wpid" -f cotrain-worker || true)
        kill -0 "$wpid" 2> /dev/null && [ ${#ranks[@]} -eq 2 ] \
            || { tail -n 5 "$tmp/h.err"; fail "stop $i: the job ended before its rank was stopped"; }
        victim=${ranks[RANDOM % 2]}
        kill -STOP "$victim"
        echo "$EPOCHREALTIME" > "$tmp/stopped"
        for _ in $(seq 1200); do kill -0 "$wpid" 2> /dev/null || break; sleep 0.05; done
        kill -9 "$victim" 2> /dev/null || true
        rc=0
        wait "$wpid" || rc=$?
        wpid=
        [ "$rc" -ne 0 ] || fail "stop $i: the job exited 0"
        grep -q "watchdog: .* another rank has died or hangs" "$tmp/h.err" \
            || { tail -n 5 "$tmp/h.err"; fail "stop $i: no watchdog verdict within 60 s"; }
        "$PYTHON" - "$(cat "$tmp/stopped")" "$tmp/h.err" >> "$tmp/verdicts" << 'PY'
import calendar, json, re, sys, time
stopped = float(sys.argv[1])
for line in open(sys.argv[2]):
    m = re.match(r"(\S+)\.(\d{3})Z .*watchdog: (.*) has taken ([\d.]+) s \(limit ([\d.]+) s", line)
    if not m:
        continue
    at = calendar.timegm(time.strptime(m[1], "%Y-%m-%dT%H:%M:%S")) + int(m[2]) / 1000
    p99 = re.search(r"p99 step time ([\d.]+) s", line)
    print(json.dumps({"after_s": round(at - stopped, 3), "in": m[3], "waited": float(m[4]),
                      "limit": float(m[5]), "p99": float(p99[1]) if p99 else None}))
    break
PY
    done
    "$PYTHON" - "$tmp/verdicts" "$iterations" << 'PY'
import json, sys
v = [json.loads(l) for l in open(sys.argv[1])]
if len(v) != int(sys.argv[2]):
    sys.exit("FAIL: %d verdicts for %s stops" % (len(v), sys.argv[2]))
steps = [r for r in v if r["p99"] is not None]
slow = [r for r in v if r["p99"] is None]
for r in v:
    print("stop: verdict %.3f s after it, in %s (limit %.3f s%s)" % (
        r["after_s"], r["in"], r["limit"],
        ", p99 %.3f s" % r["p99"] if r["p99"] is not None else ""))
# a verdict is due by the limit (the step's clock started before the stop) plus
# scheduling (a loaded machine: 0.25 s)
late = [r for r in steps if r["after_s"] > r["limit"] + 0.25]
if late:
    sys.exit("FAIL: verdicts late: %s" % late)
worst = max((r["after_s"] / r["p99"] for r in steps if r["p99"] > 0), default=0)
print("crash_harness hang: %d stop(s); %d verdicts in a step, at most %.3f s after the stop "
      "(%.2f x the p99 step time at most), %d in slow work at most %.3f s after" % (
          len(v), len(steps), max((r["after_s"] for r in steps), default=0), worst, len(slow),
          max((r["after_s"] for r in slow), default=0)))
PY
}

PYTHON=/usr/bin/python3
"${target}_kills"
