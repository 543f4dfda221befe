#!/usr/bin/env bash
# volunteer_e2e.sh — volunteer mode end to end (DESIGN.md, "Volunteer mode"), on loopback:
#   - the exact case: one group, inner_steps 1, outer lr 1, no momentum, f32 deltas and updates
#     is plain training: model.h5 byte-identical to the run without a coordinator
#   - groups come and go: an `mpirun -np 2` group and a single-process group join at the start,
#     a third joins and is killed -9 after its first delta, the single group is told to stop
#     (SIGTERM) halfway, a fourth joins halfway; the run finishes all its outer steps and the
#     coordinator exits 0 by itself, the groups that stayed exit 0 once the last version is out
#   - over CURVE with open join: each group is named and credited by its key id
#   - the signed log verifies, every unit of data in its lineage is committed once, it names the
#     group that stopped and the one killed (silent), credit goes to the groups that sent deltas,
#     and the loss falls from the first outer step to the last
#   - a group whose download of the model was cut (and partly damaged) resumes it, every file
#     checked by its hash
#   - a model update that does not arrive as expected is replaced by the whole checkpoint (a group
#     that falls two versions behind fetches it; checked by the log lines)
# Usage: volunteer_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain PATH/TO/cotrain-coordinator
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup
coord_corpus
sets=(--set volunteer.enabled=true --set train.steps=10 --set volunteer.inner_steps=6
      --set volunteer.quorum=2 --set volunteer.deadline_s=4 --set volunteer.max_staleness=2
      --set train.warmup_steps=2 --set train.global_batch=8 --set train.micro_batch=4
      --set ckpt.keep_last=0)
# over CURVE, open join: every group brings a key of its own, and is credited by its key id
"$cotrain" keygen "$tmp/coord.key" > /dev/null
for g in g1 g2 g3 g4; do "$cotrain" keygen "$tmp/$g.key" > /dev/null; done
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/coord" "${sets[@]}" --bind tcp://127.0.0.1:0 --lease-ttl 3 --http off \
    --key "$tmp/coord.key" --open-join

join() { # join NAME [mpirun -np N]: a group in the background, its log in $tmp/NAME.log
    local name=$1 asan=${ASAN_OPTIONS:-}
    shift
    # under ASan, an mpirun group's leak check would report Open MPI's own leaks at exit
    [ $# -gt 0 ] && asan="${asan:+$asan:}detect_leaks=0"
    ASAN_OPTIONS=$asan "$@" "$worker" --join "$ep" --group "$name" --out "$tmp/$name" \
        --server-key "$tmp/coord.key.pub" --key "$tmp/$name.key" \
        > "$tmp/$name.out" 2> "$tmp/$name.log" &
}
version() { # the coordinator's head step
    sed -n 's/.*outer step \([0-9]*\):.*/\1/p' "$tmp/coord.err" | tail -1
}
wait_version() { # wait_version V: until the run reaches version V (60 s at most)
    local _
    for _ in $(seq 1200); do
        [ "$(version)" ] && [ "$(version)" -ge "$1" ] && return 0
        kill -0 "$cpid" 2> /dev/null || fail "the coordinator exited before version $1"
        sleep 0.05
    done
    fail "version $1 not reached in 60 s: $(tail -3 "$tmp/coord.err")"
}

# the exact case first: one group, one inner step a round, outer lr 1 without momentum, f32 (no
# loss in either direction) is data parallel itself: the same weights, bit for bit, as the run
# without a coordinator on the same data
exact=(--config tiny --data "$tmp/data" --set train.steps=12 --set train.warmup_steps=2
       --set train.global_batch=8 --set train.micro_batch=8)
"$worker" "${exact[@]}" --out "$tmp/plain" --set ckpt.every=0 > /dev/null 2> "$tmp/plain.log" ||
    fail "the plain run: $(tail -2 "$tmp/plain.log")"
"$coord" "${exact[@]}" --out "$tmp/exact" --bind tcp://127.0.0.1:0 --http off \
    --set volunteer.enabled=true --set volunteer.inner_steps=1 --set volunteer.quorum=1 \
    --set volunteer.outer_lr=1 --set volunteer.outer_momentum=0 --set volunteer.compress=f32 \
    --set volunteer.error_feedback=false > "$tmp/exact.out" 2> "$tmp/exact.err" &
xpid=$!
for _ in $(seq 200); do
    xep=$(sed -n 's/^listening on //p' "$tmp/exact.out")
    [ -n "$xep" ] && break
    sleep 0.05
done
[ -n "$xep" ] || fail "the exact case's coordinator did not start"
"$worker" --join "$xep" --out "$tmp/exact-g" --data "$tmp/data" > /dev/null 2> "$tmp/exact-g.log" ||
    fail "the exact case's group: $(tail -2 "$tmp/exact-g.log")"
wait $xpid || fail "the exact case's coordinator failed"
cmp -s "$tmp/plain/checkpoints/ckpt-00000012/model.h5" "$tmp/exact/checkpoints/ckpt-00000012/model.h5" ||
    fail "volunteer mode's exact case differs from data parallel"
echo "ok: one group, one inner step, outer lr 1, f32: the same weights as the run without it"

# g2's download of version 0 was cut before (a .part of model.h5) and damaged (optim.h5): it
# goes on from the good bytes and starts the bad file again, each file checked by its hash
ck=$tmp/coord/checkpoints/ckpt-00000000
id=$("$cotrain" inspect "$ck" | sed -n 's/^  id *//p')
[ ${#id} -eq 64 ] || fail "no id for version 0"
part=$tmp/g2/checkpoints/.fetch-ckpt-00000000-${id:0:16}
mkdir -p "$part"
head -c 100000 "$ck/model.h5" > "$part/model.h5.part"
head -c 5000 /dev/urandom > "$part/optim.h5.part"
join g1 mpirun -np 2 --oversubscribe --bind-to none
p1=$!
join g2
p2=$!
join g3
p3=$!
coord_wait_line "$tmp/coord.err" "delta from g3"
kill -9 $p3
wait $p3 2> /dev/null || true
wait_version 4
kill -TERM $p2
join g4
p4=$!
rc2=0
wait $p2 || rc2=$?
[ $rc2 = 0 ] || fail "the group told to stop exited $rc2: $(tail -3 "$tmp/g2.log")"
grep -q "model.h5 goes on from byte 100000" "$tmp/g2.log" || fail "g2's cut download did not resume"
cmp -s "$ck/optim.h5" "$tmp/g2/checkpoints/ckpt-00000000/optim.h5" || fail "g2's optim.h5 differs"
grep -q "volunteer: stopped at version" "$tmp/g2.log" || fail "g2 did not say it stopped"

# the run ends by itself: the coordinator exits 0 once its groups left
for _ in $(seq 2400); do kill -0 "$cpid" 2> /dev/null || break; sleep 0.05; done
kill -0 "$cpid" 2> /dev/null && fail "the coordinator is still running 120 s after version 4"
rc=0
wait "$cpid" || rc=$?
cpid=
[ $rc = 0 ] || fail "the coordinator exited $rc: $(tail -3 "$tmp/coord.err")"
for g in g1 g4; do
    p=$p1
    [ $g = g4 ] && p=$p4
    rc=0
    wait $p || rc=$?
    [ $rc = 0 ] || fail "$g exited $rc: $(tail -3 "$tmp/$g.log")"
    grep -q "volunteer: finished at version 10 of 10" "$tmp/$g.log" || fail "$g did not finish"
done
echo "ok: 4 groups came and went, the run finished 10 outer steps"

out=$("$cotrain" verify "$tmp/coord/public" --ckpts "$tmp/coord/checkpoints")
grep -q "committed, each once" <<< "$out" || fail "lineage: $out"
grep -q "run finished" <<< "$out" || fail "no run_finished: $out"
for g in g1 g4; do
    kid=$(grep -o '"group":"'$g'","key":"[0-9a-f]*"' "$tmp/coord/public/log.jsonl" | head -1 |
          sed 's/.*"key":"\([0-9a-f]*\)"/\1/')
    [ -n "$kid" ] || fail "$g joined without its key id in the log"
    grep -q "credit: key $kid: [1-9][0-9]* delta(s) accepted" <<< "$out" ||
        fail "no credit for $g's key $kid: $out"
done
log=$tmp/coord/public/log.jsonl
grep -q '"group":"g2".*"type":"group_left".*"why":"stopped"' "$log" ||
    fail "no group_left {g2, stopped}"
grep -q '"group":"g3".*"type":"group_left".*"why":"silent"' "$log" ||
    fail "no group_left {g3, silent} for the group killed"
n_outer=$(grep -c '"type":"outer_step"' "$log")
[ "$n_outer" = 10 ] || fail "$n_outer outer_step records, not 10"
echo "ok: the log verifies, one lineage, group_left for the stopped and the killed group, credit"

# the loss falls: the last version against version 0, on the same held-in text (the merged
# groups' own last losses in metrics.jsonl are single batches: too noisy to compare)
lines=$(grep -c '"loss":[0-9]' "$tmp/coord/public/metrics.jsonl")
[ "$lines" = 10 ] || fail "$lines metrics lines with a loss, not 10"
l0=$("$cotrain" eval "$tmp/coord/checkpoints/ckpt-00000000" --data "$tmp/data" --tokens 20000 2> /dev/null | sed -n 's/^loss //p')
l10=$("$cotrain" eval "$tmp/coord/checkpoints/ckpt-00000010" --data "$tmp/data" --tokens 20000 2> /dev/null | sed -n 's/^loss //p')
echo "eval loss: version 0 $l0, version 10 $l10"
/usr/bin/python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) < float(sys.argv[1]) - 1.0 else 1)" "$l0" "$l10" ||
    fail "the loss does not fall: $l0 -> $l10"
# the updates came down as updates (hash-checked), except for a group that was behind
grep -q "fetching the checkpoint instead" "$tmp/g1.log" "$tmp/g4.log" &&
    fail "an update did not decode to the coordinator's hash"
echo "ok: the loss falls; every model update matched the coordinator's hash"
