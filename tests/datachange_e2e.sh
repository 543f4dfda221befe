#!/usr/bin/env bash
# datachange_e2e.sh — data added to and excluded from a run while it goes on (`cotrain add-data`,
# `cotrain exclude`; DESIGN.md invariant 1: "shards added mid-run follow the current ones"):
#   1. refusals, each with exit 2, saying why, the ledger unchanged: no --reason, another
#      tokenizer, data the run has already, an unknown shard or document, a run directory
#      without a ledger
#   2. a run without --coordinator, stopped at step 10: a document's shard excluded (by its id)
#      and a second corpus added; on resume they take effect at the next commit (step 15): both
#      logged (data_added, data_excluded) with the epoch and unit they start from, the added
#      shards committed in that epoch after the others, the excluded shard in no unit after its
#      point, one lineage (check_lineage.py), `cotrain verify` passes, `cotrain lineage` says
#      where the document's shard was excluded, and the steps that trained on it and on a
#      document of the added data are those the loader gives following the log's changes
#      (steps_probe)
#   3. the same run stopped and resumed once more after the change ends bit-identical
#   4. `cotrain verify --replay` past the change: refused without the added data, and with it
#      (--added) the last checkpoint follows bit for bit
#   5. a volunteer run refuses both commands
#   6. a cotrain-coordinator with an `mpirun -np 2` group attached: the change asked for while it
#      trains takes effect at its next commit on both ranks (each replans its loader), the run
#      finishes with one lineage, its log verifies
# Usage: datachange_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain PATH/TO/cotrain-coordinator
#        PATH/TO/steps_probe
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
probe=$4
here=$(dirname "$0")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# Open MPI's plugins keep allocations past MPI_Finalize (see mpi_e2e.sh)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# shellcheck source=tests/coord_lib.sh
. "$here/coord_lib.sh"
coord_setup
coord_corpus
cat /usr/share/common-licenses/Apache-2.0 /usr/share/common-licenses/Artistic > "$tmp/more.txt"
"$cotrain" prep "$tmp/more.txt" --split paragraphs --tokenizer bytes --shard-tokens 3000 \
    --out "$tmp/more" 2> /dev/null
head -c 4000 /usr/share/common-licenses/Apache-2.0 > "$tmp/gpt2.txt"
"$cotrain" prep "$tmp/gpt2.txt" --tokenizer gpt2 --out "$tmp/gpt2" 2> /dev/null

# 110 steps: into epoch 1 past where the excluded shard would have been
args=(--config tiny --data "$tmp/data" --set train.steps=110 --set log.every=1
      --set train.global_batch=8 --set train.micro_batch=4 --set train.warmup_steps=2
      --set ckpt.every=5 --set ckpt.keep_last=0)
w() { # w OUT [ARGS...]: one rank without a coordinator, the log appended to OUT.err
    local out=$1
    shift
    timeout 300 "$worker" "${args[@]}" --out "$tmp/$out" "$@" > /dev/null 2>> "$tmp/$out.err" \
        || { tail -n 20 "$tmp/$out.err"; fail "$out: the worker failed"; }
}
refused() { # refused WHAT TEXT CMD...: exit 2 with TEXT on stderr
    local what=$1 text=$2 rc=0
    shift 2
    "$@" > /dev/null 2> "$tmp/refused.err" || rc=$?
    [ "$rc" -eq 2 ] || { cat "$tmp/refused.err"; fail "$what: exit $rc, not 2"; }
    grep -q -- "$text" "$tmp/refused.err" || { cat "$tmp/refused.err"; fail "$what: no '$text'"; }
}
dump() { /usr/bin/python3 -c 'import sqlite3, sys
print("\n".join(sqlite3.connect(sys.argv[1]).iterdump()))' "$1"; }
q() { /usr/bin/python3 -c 'import sqlite3, sys
for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print(*r)' "$@"; }

# the document to exclude: the first of the 11th shard (trained last in epoch 0 or not, its
# whole shard leaves the rest of the run)
victim_shard=$(/usr/bin/python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["shards"][10]["id"])' "$tmp/data/manifest.json")
victim_doc=$(/usr/bin/python3 -c 'import h5py, sys
print(h5py.File(sys.argv[1])["doc_ids"][0].decode())' "$tmp/data/$victim_shard.h5")

# 2. a run stopped at step 10, the changes asked for, resumed
w a --until 10
dump "$tmp/a/coordinator.db" > "$tmp/db.before"
# 1. refusals leave the ledger as it was
refused "no reason" "--reason" "$cotrain" add-data "$tmp/a" "$tmp/more"
refused "another tokenizer" "prepare the data with the run's tokenizer" \
    "$cotrain" add-data "$tmp/a" "$tmp/gpt2" --reason x
refused "data already in the run" "already in this run" \
    "$cotrain" add-data "$tmp/a" "$tmp/data" --reason x
refused "an unknown shard" "which this run does not have" \
    "$cotrain" exclude "$tmp/a" --shard 00099-0000000000000000 --reason x
refused "an unknown document" "no shard of the run holds a document with id no-such-doc" \
    "$cotrain" exclude "$tmp/a" --doc no-such-doc --reason x
refused "no ledger" "has no coordinator.db" "$cotrain" add-data "$tmp/data" "$tmp/more" --reason x
echo '{"not": "a list"}' > "$tmp/bad-changes.json"
refused "--data-changes not a JSON array" "are not a JSON array" \
    "$worker" "${args[@]}" --out "$tmp/badchanges" --data-changes "$tmp/bad-changes.json"
refused "--data-changes with --coordinator" "for a run without a coordinator" \
    "$worker" --data "$tmp/data" --out "$tmp/badchanges" --coordinator tcp://127.0.0.1:1 \
    --data-changes "$tmp/bad-changes.json"
dump "$tmp/a/coordinator.db" > "$tmp/db.after"
cmp -s "$tmp/db.before" "$tmp/db.after" || fail "a refused change changed the ledger"

"$cotrain" exclude "$tmp/a" --doc "$victim_doc" --reason "opt-out request" > "$tmp/ex.out" \
    || fail "exclude by document"
grep -q "excluding 1 shard(s) (0 named, 1 holding the 1 document(s) asked for)" "$tmp/ex.out" \
    || { cat "$tmp/ex.out"; fail "exclude did not name the document's shard"; }
"$cotrain" add-data "$tmp/a" "$tmp/more" --reason "two more licenses" > /dev/null 2>&1 \
    || fail "add-data"
# the same data again, while the first is pending: refused
refused "data asked for twice" "already in this run" \
    "$cotrain" add-data "$tmp/a" "$tmp/more" --reason x
cp -r "$tmp/a" "$tmp/b" # 3. the same run, to be stopped once more
w a --resume latest
grep -q "data excluded from the run: 1 shard(s)" "$tmp/a.err" || fail "no exclusion in the log"
grep -q "data added to the run: .*(6 shard(s))" "$tmp/a.err" || fail "no addition in the log"
/usr/bin/python3 "$here/check_lineage.py" "$tmp/a/coordinator.db" "$tmp/a/checkpoints" 110 \
    || fail "the lineage after the changes"
"$cotrain" verify "$tmp/a/public" --ckpts "$tmp/a/checkpoints" > "$tmp/verify.out" \
    || { cat "$tmp/verify.out"; fail "verify after the changes"; }
/usr/bin/python3 - "$tmp/a" "$victim_shard" <<'EOF' || fail "the changes in the log and units"
import json, os, sqlite3, sys
run, victim = sys.argv[1], sys.argv[2]
recs = [json.loads(l) for l in open(os.path.join(run, "public/log.jsonl"))]
ex = [r for r in recs if r["type"] == "data_excluded"]
ad = [r for r in recs if r["type"] == "data_added"]
assert len(ex) == 1 and len(ad) == 1, (len(ex), len(ad))
ex, ad = ex[0], ad[0]
assert ex["shards"] == [victim] and ex["docs"] == 1 and ex["reason"] == "opt-out request", ex
assert ad["reason"] == "two more licenses" and len(ad["shards"]) == 6 and ad["docs"] > 0, ad
# both took effect at the commit of step 15: the records follow it
commits = [r for r in recs if r["type"] == "checkpoint_committed"]
c15 = next(r for r in commits if r["step"] == 15)
assert c15["seq"] < ex["seq"] and ex["seq"] < ad["seq"], "not in commit order"
state = json.load(open(os.path.join(run, "checkpoints/ckpt-00000015/state.json")))["data_cursor"]
assert ex["epoch"] == state["epoch"] and ex["from_pos"] == state["shard_pos"] + 1, (ex, state)
assert ad["epoch"] == state["epoch"]
db = sqlite3.connect(os.path.join(run, "coordinator.db"))
ids = dict(db.execute("SELECT idx, id FROM shards"))
units = db.execute("SELECT epoch, pos, shard, state FROM units ORDER BY epoch, pos").fetchall()
e0 = [u for u in units if u[0] == ad["epoch"]]
added = [u for u in e0 if ids[u[2]] in ad["shards"]]
assert [ids[u[2]] for u in added] == ad["shards"], "added shards not in order at the epoch's end"
assert min(u[1] for u in added) == 11, "added shards do not follow the 11 others"
for ep, pos, shard, st in units:
    if ids[shard] == victim:
        assert (ep, pos) < (ex["epoch"], ex["from_pos"]), f"excluded shard at {ep}, {pos}"
assert any(u[0] > ad["epoch"] for u in units), "the run never reached the next epoch"
later = [ids[u[2]] for u in units if u[0] == ad["epoch"] + 1]
assert set(ad["shards"]) <= set(later) and victim not in later, "next epoch's shards"
print(f"changes: excluded {victim} from unit {ex['from_pos']} of epoch {ex['epoch']}, "
      f"added 6 shards at units 11..16; {len(units)} units")
EOF

# `cotrain lineage` of the excluded document: excluded from where the log says; without the
# added data its steps are not known from the epoch the data changed in on
"$cotrain" lineage "$tmp/a" "$victim_doc" --data "$tmp/data" > "$tmp/lin.out" \
    || { cat "$tmp/lin.out"; fail "lineage of the excluded document"; }
grep -q "excluded later: yes, its shard from unit [0-9]* of epoch 0 on (log line [0-9]*)" \
    "$tmp/lin.out" || { cat "$tmp/lin.out"; fail "lineage: the exclusion"; }
"$cotrain" lineage "$tmp/a" "$victim_doc" --data "$tmp/data" --json > "$tmp/lin.json"
/usr/bin/python3 -c 'import json, sys
o = json.load(open(sys.argv[1]))
assert o["excluded"] is True, o
assert all(c["trained_at"] is None for c in o["committed"] if c["epoch"] >= 0), o' "$tmp/lin.json" \
    || fail "lineage --json after a data change"

# a document of the added data: found with --added, committed in the epoch it was added in
added_shard=$(/usr/bin/python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["shards"][0]["id"])' "$tmp/more/manifest.json")
added_doc=$(/usr/bin/python3 -c 'import h5py, sys
print(h5py.File(sys.argv[1])["doc_ids"][0].decode())' "$tmp/more/$added_shard.h5")
refused "lineage of added data without --added" "nor of the data added\|holds a document" \
    "$cotrain" lineage "$tmp/a" "$added_doc" --data "$tmp/data"
"$cotrain" lineage "$tmp/a" "$added_doc" --data "$tmp/data" --added "$tmp/more" \
    > "$tmp/lin2.out" || { cat "$tmp/lin2.out"; fail "lineage of a document of the added data"; }
grep -q "in shard $added_shard" "$tmp/lin2.out" && grep -q "epoch 0: trained at" "$tmp/lin2.out" \
    && grep -q "added while the run went on" "$tmp/lin2.out" \
    || { cat "$tmp/lin2.out"; fail "lineage: the added document's shard and commit"; }

# with the added data (--added), the steps of every epoch, for the first document of each shard
# of the run's data and of the added data: those whose samples the loader fills with the
# document's tokens when it follows the log's changes from the first step (the plan is a function
# of the changes, whenever they took effect); none after its committing checkpoint
/usr/bin/python3 - "$cotrain" "$probe" "$tmp/a" "$tmp/data" "$tmp/more" "$added_doc" \
    "$tmp/changes.json" <<'EOF' || fail "lineage's steps after the data changes"
import h5py, json, subprocess, sys
cotrain, probe, run, data, more, added_doc, changes_path = sys.argv[1:]
changes = []
for line in open(f"{run}/public/log.jsonl"):
    r = json.loads(line)
    if r["type"] == "data_added":
        changes.append({"kind": "add", "epoch": r["epoch"], "manifest": more,
                        "sha256": r["data_sha256"], "shards": len(r["shards"])})
    elif r["type"] == "data_excluded":
        changes.append({"kind": "exclude", "epoch": r["epoch"], "pos": r["from_pos"],
                        "shards": r["shards"]})
json.dump(changes, open(changes_path, "w"))
cfg = json.load(open(f"{run}/public/status.json"))["config"]
epochs, n = set(), 0
for where in (data, more):
    shards = json.load(open(f"{where}/manifest.json"))["shards"]
    for i, s in enumerate(shards):
        doc = h5py.File(f"{where}/{s['file']}")["doc_ids"][0].decode()
        got = json.loads(subprocess.run(
            [cotrain, "lineage", run, doc, "--data", data, "--added", more, "--json"],
            capture_output=True, text=True, check=True).stdout)
        loader = subprocess.run(
            [probe, data, str(cfg["model"]["seq_len"]), str(cfg["train"]["global_batch"]),
             str(cfg["train"]["seed"]), str(cfg["data"]["eval_shards"]),
             str(cfg["train"]["steps"]), where, str(i), str(got["tokens"][0]),
             str(got["tokens"][1]), changes_path], capture_output=True, text=True,
            check=True).stdout.split()
        committed = got["committed"]
        for c in committed:
            assert c["trained_at"] is not None and all(t <= c["step"] for t in c["trained_at"]), c
            epochs.add(c["epoch"])
        said = sorted(t for c in committed for t in c["trained_at"])
        assert said == [int(t) for t in loader], (doc, said, loader)
        assert got["added"] == (where == more), got
        if doc == added_doc:
            assert said and committed[0]["epoch"] == changes[-1]["epoch"], got
        n += 1
print(f"lineage: the steps of the first document of each of {n} shards (the run's and the "
      f"added), in epochs {sorted(epochs)}, as the loader gives them after the changes")
assert len(epochs) > 1, "no document committed in an epoch after the change's"
EOF

# `cotrain verify --replay` past the data changes: without the added data, refused (exit 2,
# naming it); with it (--added), the last checkpoint follows from the one before bit for bit —
# the replay's worker takes the log's changes (--data-changes) into a new run directory
# (the replays' run directories under $tmp: verify_e2e checks that /tmp holds none of its own)
refused "replay without the added data" "give that manifest with --added MANIFEST" \
    env TMPDIR="$tmp" "$cotrain" verify "$tmp/a/public" --replay "$tmp/a/checkpoints/ckpt-00000105" \
    "$tmp/a/checkpoints/ckpt-00000110" --data "$tmp/data"
TMPDIR="$tmp" "$cotrain" verify "$tmp/a/public" --replay "$tmp/a/checkpoints/ckpt-00000105" \
    "$tmp/a/checkpoints/ckpt-00000110" --data "$tmp/data" --added "$tmp/more" \
    > "$tmp/replay.out" 2> "$tmp/replay.err" || { tail "$tmp/replay.err"; fail "replay"; }
grep -q "replay: .*ckpt-00000110 (step 110) follows from" "$tmp/replay.out" \
    || { cat "$tmp/replay.out"; fail "replay verdict"; }
grep -q "the run's plan takes the 2 data change(s)" "$tmp/replay.err" \
    || fail "the replay's worker did not take the data changes"

# 3. stopped after the change and resumed: bit-identical
w b --resume latest --until 20
w b --resume latest
cmp -s "$tmp/a/checkpoints/ckpt-00000110/model.h5" "$tmp/b/checkpoints/ckpt-00000110/model.h5" \
    || fail "stopped and resumed after the change: the final model differs"

# 6. asked for while an attached mpirun -np 2 group trains
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" "${args[@]}" --set train.steps=60 \
    --out "$tmp/c" --bind tcp://127.0.0.1:0
timeout 300 mpirun --oversubscribe --bind-to none -np 2 "$worker" --data "$tmp/data" \
    --out "$tmp/g" --coordinator "$ep" > /dev/null 2> "$tmp/g.err" &
wpid=$!
coord_wait_line "$tmp/g.err" "of step 5 committed by the coordinator"
"$cotrain" exclude "$tmp/c" --shard "$victim_shard" --reason "live" > /dev/null \
    || fail "exclude while the group trains"
"$cotrain" add-data "$tmp/c" "$tmp/more" --reason "live" > /dev/null 2>&1 \
    || fail "add-data while the group trains"
"$cotrain" status "$ep" > "$tmp/status.out"
grep -q "data changes     [0-2] in effect, [0-2] pending" "$tmp/status.out" \
    || { cat "$tmp/status.out"; fail "cotrain status does not show the data changes"; }
wait "$wpid" || { tail -n 20 "$tmp/g.err"; fail "the attached group"; }
wpid=
grep -q "data added to the run" "$tmp/g.err" || fail "the group did not replan"
coord_stop
/usr/bin/python3 "$here/check_lineage.py" "$tmp/c/coordinator.db" "$tmp/g/checkpoints" 60 \
    || fail "the attached run's lineage"
"$cotrain" verify "$tmp/c/public" > "$tmp/verify.out" || { cat "$tmp/verify.out"; fail "verify"; }
[ "$(grep -c '"type":"data_added"' "$tmp/c/public/log.jsonl")" -eq 1 ] || fail "live data_added"
[ "$(grep -c '"type":"data_excluded"' "$tmp/c/public/log.jsonl")" -eq 1 ] \
    || fail "live data_excluded"
# a volunteer run refuses both: its groups fetch the run's data when they join
coord_start "$tmp/coord.out" "$tmp/vol.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/v" --set volunteer.enabled=true --bind tcp://127.0.0.1:0 --http off
refused "a volunteer run" "is a volunteer run" "$cotrain" add-data "$tmp/v" "$tmp/more" --reason x
refused "a volunteer run" "is a volunteer run" \
    "$cotrain" exclude "$tmp/v" --shard "$victim_shard" --reason x
coord_stop
echo "datachange_e2e: refusals, add and exclude at a commit, bit-identical resume, live on 2 ranks"
