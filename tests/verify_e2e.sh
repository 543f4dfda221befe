#!/usr/bin/env bash
# verify_e2e.sh — the public log (RUN_DIR/public/log.jsonl, run.json) and `cotrain verify`:
#   1. a real run's log verifies (chain, signatures, head, lineage, --ckpts, --key), and the
#      units its checkpoint records commit are exactly the ones the ledger committed; `cotrain
#      lineage` of documents agrees with a recomputation from the shards and the log, and the
#      steps it says trained on them are those the data loader itself gives their tokens to
#   2. tampering, each caught and named: one byte edited, a line dropped, two lines swapped, the
#      last line cut mid-way, whole lines cut off the end, a record of another key appended, the
#      whole log re-signed with another key (refused under --key), a checkpoint file replaced
#   3. crash: the coordinator is killed -9 mid-run and started again, several times; each time
#      the complete lines written before the kill stay byte for byte, and the final log verifies
#      and holds every record of the ledger once; an edited line is written again at a restart;
#      a restart keeps the prefix RUN_DIR/public.mark vouches for instead of deriving it again
# Usage: verify_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain PATH/TO/cotrain-coordinator
#        PATH/TO/publog_forge PATH/TO/steps_probe
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
forge=$4
probe=$5
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup
coord_corpus
sets=(--set train.steps=24 --set train.warmup_steps=2 --set log.every=1 --set train.global_batch=8
      --set train.micro_batch=4 --set ckpt.every=8 --set ckpt.keep_last=0)

# 1. a run through the embedded coordinator
"$worker" --config tiny --data "$tmp/data" --out "$tmp/run" "${sets[@]}" > /dev/null \
    2> "$tmp/run.err" || { cat "$tmp/run.err"; fail "the run"; }
fp=$(sed -n 's/.*"fingerprint":"\([0-9a-f]*\)".*/\1/p' "$tmp/run/public/run.json")
[ ${#fp} -eq 16 ] || fail "no fingerprint in run.json"
"$cotrain" verify "$tmp/run/public" --key "$fp" --ckpts "$tmp/run/checkpoints" > "$tmp/v.out" \
    2>&1 || { cat "$tmp/v.out"; fail "a clean log does not verify"; }
grep -q "lineage: 3 checkpoint(s)" "$tmp/v.out" || { cat "$tmp/v.out"; fail "3 checkpoints"; }
grep -q "3 verified against their ids" "$tmp/v.out" || { cat "$tmp/v.out"; fail "--ckpts"; }
grep -q "run finished" "$tmp/v.out" || { cat "$tmp/v.out"; fail "run_finished"; }
grep -q "credit: group local committed 3 checkpoint(s), 24 step(s)" "$tmp/v.out" \
    || { cat "$tmp/v.out"; fail "the credit"; }
/usr/bin/python3 - "$tmp/run/public/log.jsonl" "$tmp/run/coordinator.db" <<'EOF' \
    || fail "the log's committed units are not the ledger's"
import json, sqlite3, sys
logged = [u for l in open(sys.argv[1]) for r in [json.loads(l)]
          if r["type"] == "checkpoint_committed" for u in r["shards"]]
db = sqlite3.connect(sys.argv[2])
ids = dict(db.execute("SELECT idx, id FROM shards"))
ledger = [f"{ids[s]}:{e}" for s, e in db.execute("SELECT shard, epoch FROM units WHERE state = 3")]
assert len(logged) == len(set(logged)), "a unit logged twice"
assert sorted(logged) == sorted(ledger), (len(logged), len(ledger))
n = db.execute("SELECT COUNT(*), MAX(seq) FROM log").fetchone()
lines = sum(1 for _ in open(sys.argv[1]))
assert n[0] == n[1] == lines, (n, lines)
EOF

# cotrain lineage of documents of three shards against a recomputation from the shards and the log
/usr/bin/python3 - "$cotrain" "$tmp/run" "$tmp/data" "$probe" <<'EOF' || fail "cotrain lineage"
import h5py, json, os, subprocess, sys
cotrain, run, data, probe = sys.argv[1:]
cfg = json.load(open(os.path.join(run, "public", "status.json")))["config"]
seen = 0
man = json.load(open(os.path.join(data, "manifest.json")))
ck, units = [], {}  # the lineage: [(id, step)], "shard:epoch" -> index into ck
for line in open(os.path.join(run, "public", "log.jsonl")):
    r = json.loads(line)
    if r["type"] == "checkpoint_committed":
        ck.append((r["id"], r["step"]))
        for u in r["shards"]:
            units[u] = len(ck) - 1
    elif r["type"] == "checkpoints_reverted":
        keep = [c for c, _ in ck].index(r["to"]) + 1
        ck = ck[:keep]
        units = {u: i for u, i in units.items() if i < keep}
for s in (man["shards"][0], man["shards"][3], man["shards"][-1]):
    ids = h5py.File(os.path.join(data, s["file"]))["doc_ids"]
    doc = ids[len(ids) // 2].decode()
    out = subprocess.run([cotrain, "lineage", run, doc, "--data", data, "--json"],
                         capture_output=True, text=True, check=True).stdout
    got = json.loads(out)
    assert got["shard"] == s["id"] and not got["excluded"], got
    want = sorted((int(u.split(":")[1]), ck[i][0], ck[i][1]) for u, i in units.items()
                  if u.split(":")[0] == s["id"])
    have = sorted((c["epoch"], c["checkpoint"], c["step"]) for c in got["committed"])
    assert have == want, (doc, have, want)
    # the steps: those whose samples the loader filled with the document's tokens
    loader = subprocess.run(
        [probe, data, str(cfg["model"]["seq_len"]), str(cfg["train"]["global_batch"]),
         str(cfg["train"]["seed"]), str(cfg["data"]["eval_shards"]), str(cfg["train"]["steps"]),
         data, str(man["shards"].index(s)), str(got["tokens"][0]), str(got["tokens"][1])],
        capture_output=True, text=True, check=True).stdout.split()
    said = sorted(t for c in got["committed"] for t in c["trained_at"])
    assert [int(x) for x in loader] == said, (doc, loader, said)
    seen += len(said)
    for c in got["committed"]:
        assert all(t <= c["step"] for t in c["trained_at"]), c
    print(f"lineage of {doc[:12]}...: shard {s['id']}, {len(have)} commit(s), as recomputed; "
          f"steps {said}, as the loader gives them")
assert seen > 0, "no document of the three was trained on: the check checked nothing"
EOF

# --replay: checkpoint 24 follows from checkpoint 8 and the data, bit for bit (the worker trains
# again); on another number of ranks the sums differ in the last bits, and that is caught
ck=$tmp/run/checkpoints
"$cotrain" verify "$tmp/run/public" --replay "$ck/ckpt-00000008" "$ck/ckpt-00000024" \
    --data "$tmp/data" > "$tmp/r.out" 2> "$tmp/r.err" || { cat "$tmp/r.err"; fail "--replay"; }
grep -q "replay: .*ckpt-00000024 (step 24) follows from .*ckpt-00000008 (step 8)" "$tmp/r.out" \
    || { cat "$tmp/r.out"; fail "--replay verdict"; }
rc=0 # (under ASan: Open MPI's own leaks at exit are not ours to report)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$cotrain" verify "$tmp/run/public" --replay "$ck/ckpt-00000008" "$ck/ckpt-00000016" \
    --data "$tmp/data" --np 2 > "$tmp/r.out" 2> "$tmp/r.err" || rc=$?
[ $rc -eq 2 ] && grep -q "ckpt-00000016 does not follow from .*its model.h5.*another number of ranks" \
    "$tmp/r.err" || { cat "$tmp/r.err"; fail "--replay on 2 ranks: exit $rc"; }
ls "${TMPDIR:-/tmp}" | grep -q "^cotrain-replay-" && fail "--replay left its run directory behind"

# 2. tampering: each on a fresh copy, each caught, naming the place
lines=$(wc -l < "$tmp/run/public/log.jsonl")
expect_fail() { # expect_fail WHAT PATTERN [VERIFY ARGS...]: verify the copy in $tmp/t
    local what=$1 pattern=$2 rc=0
    shift 2
    "$cotrain" verify "$tmp/t" "$@" > "$tmp/t.out" 2>&1 || rc=$?
    [ $rc -eq 2 ] || { cat "$tmp/t.out"; fail "$what: exit $rc, expected 2"; }
    grep -q "$pattern" "$tmp/t.out" || { cat "$tmp/t.out"; fail "$what: not named ($pattern)"; }
}
fresh() { rm -rf "$tmp/t"; cp -r "$tmp/run/public" "$tmp/t"; }
fresh
sed -i '5s/"epoch":0/"epoch":1/' "$tmp/t/log.jsonl"
cmp -s "$tmp/t/log.jsonl" "$tmp/run/public/log.jsonl" && fail "the edit did not change line 5"
expect_fail "one byte edited" "log.jsonl line 5: .*was changed"
fresh
sed -i '5d' "$tmp/t/log.jsonl"
expect_fail "a line dropped" "log.jsonl line 5: seq 6 where 5 comes next"
fresh
sed -i '5{h;d};6{G}' "$tmp/t/log.jsonl"
expect_fail "two lines swapped" "log.jsonl line 5: seq 6 where 5 comes next"
fresh
size=$(stat -c %s "$tmp/t/log.jsonl")
truncate -s $((size - 40)) "$tmp/t/log.jsonl"
expect_fail "cut mid-line" "log.jsonl line $lines is cut off"
fresh
head -n $((lines - 3)) "$tmp/run/public/log.jsonl" > "$tmp/t/log.jsonl"
expect_fail "lines cut off the end" "ends at seq $((lines - 3)), but run.json's signed head is seq $lines"
fresh
"$forge" append "$tmp/forger.key" "$tmp/t" || fail "publog_forge append"
expect_fail "a record of another key appended" \
    "log.jsonl line $((lines + 1)): the signature is not the run's key's"
fresh
"$forge" resign "$tmp/forger.key" "$tmp/t" || fail "publog_forge resign"
"$cotrain" verify "$tmp/t" > "$tmp/t.out" 2>&1 \
    || { cat "$tmp/t.out"; fail "a log re-signed whole is consistent without --key"; }
expect_fail "re-signed whole, under --key" "signed by key .*, not $fp" --key "$fp"
fresh
cp -r "$tmp/run/checkpoints" "$tmp/ck"
cp "$tmp/ck/ckpt-00000016/model.h5" "$tmp/ck/ckpt-00000008/model.h5"
expect_fail "a checkpoint file replaced" "ckpt-00000008 does not verify" --ckpts "$tmp/ck"

# 3. kill -9 the coordinator mid-run, again and again: the log is derived again byte for byte
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/c" "${sets[@]}" --bind tcp://127.0.0.1:0
port=${ep##*:}
"$worker" --data "$tmp/data" --out "$tmp/a" --coordinator "$ep" > /dev/null 2> "$tmp/a.err" &
wpid=$!
for k in 1 2 3 4 5; do
    sleep 0.$((k + 2))
    coord_stop
    # the complete lines as they were at the kill
    if [ -f "$tmp/c/public/log.jsonl" ]; then
        sed -n '/}$/p' "$tmp/c/public/log.jsonl" > "$tmp/before.$k"
        [ "$(tail -c 1 "$tmp/c/public/log.jsonl" | od -An -c | tr -d ' ')" = '\n' ] \
            || sed -i '$d' "$tmp/before.$k"
    fi
    if [ "$k" -eq 3 ]; then # an edited line as well: written again at the restart
        sed -i '2s/"group":"main"/"group":"mallory"/' "$tmp/c/public/log.jsonl"
    fi
    coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
        --out "$tmp/c" "${sets[@]}" --bind "tcp://127.0.0.1:$port"
    coord_wait_line "$tmp/coord.err" "public log .*record(s)"
    n=$(wc -l < "$tmp/before.$k")
    head -n "$n" "$tmp/c/public/log.jsonl" | cmp -s - "$tmp/before.$k" \
        || fail "restart $k: the $n lines written before the kill changed"
done
grep -q "the .* after them were written again" "$tmp/coord.err" || fail "the edit was not mended"
grep -q "record(s) kept as .*public.mark vouches" "$tmp/coord.err" \
    || fail "no restart kept the prefix RUN_DIR/public.mark vouches for"
wait $wpid || { tail -n 20 "$tmp/a.err"; fail "the attached run through the kills"; }
wpid=
coord_stop
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/c" "${sets[@]}" --bind "tcp://127.0.0.1:$port"
kill "$cpid" # a clean stop: the last records and run.json written
wait "$cpid" 2> /dev/null || true
cpid=
"$cotrain" verify "$tmp/c/public" --ckpts "$tmp/a/checkpoints" > "$tmp/v2.out" 2>&1 \
    || { cat "$tmp/v2.out"; fail "the log after the kills does not verify"; }
/usr/bin/python3 - "$tmp/c/public/log.jsonl" "$tmp/c/coordinator.db" <<'EOF' \
    || fail "the log after the kills is not the ledger's records"
import json, sqlite3, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
db = sqlite3.connect(sys.argv[2])
rows = db.execute("SELECT seq, type, body FROM log ORDER BY seq").fetchall()
assert len(recs) == len(rows), (len(recs), len(rows))
for r, (seq, typ, body) in zip(recs, rows):
    fields = {k: v for k, v in r.items() if k not in ("seq", "time", "type", "prev", "hash", "sig")}
    assert r["seq"] == seq and r["type"] == typ and fields == json.loads(body), seq
print(f"{len(recs)} records, each the ledger's, once")
EOF
echo "verify_e2e: all checks passed"
