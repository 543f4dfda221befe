#!/usr/bin/env bash
# eval_e2e.sh — the held-out eval loss (log.eval_every) through the real binaries:
#   - data.eval_shards=1 holds the manifest's last shard out of training: the run's losses and
#     weights are bit-identical to a run on a manifest without that shard
#   - eval_loss appears at every log.eval_every step and the last, and equals `cotrain eval` of
#     the final checkpoint on a manifest of the held-out shard alone (the same windows)
#   - --eval-data with that manifest gives the same eval_loss; 2 ranks agree to float rounding
#   - log.eval_every without held-out data, or with both kinds, is refused (exit 2)
# Usage: eval_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain
set -euo pipefail
worker=$1
cotrain=$2
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Under sanitizers: Open MPI's plugins keep allocations past MPI_Finalize (see mpi_e2e.sh)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 > "$tmp/corpus.txt"
"$cotrain" prep "$tmp/corpus.txt" --split paragraphs --tokenizer bytes --shard-tokens 20000 \
    --out "$tmp/data" 2> /dev/null
# two manifests cut from it: every shard but the last (what training may see), the last alone
/usr/bin/python3 - "$tmp/data/manifest.json" "$tmp/train" "$tmp/held" <<'PY'
import json, os, shutil, sys
m = json.load(open(sys.argv[1]))
assert len(m["shards"]) >= 3, len(m["shards"])
for out, shards in ((sys.argv[2], m["shards"][:-1]), (sys.argv[3], m["shards"][-1:])):
    os.makedirs(out)
    for s in shards:
        shutil.copy(os.path.join(os.path.dirname(sys.argv[1]), s["file"]), out)
    c = dict(m, shards=shards, n_tokens=sum(s["n_tokens"] for s in shards),
             n_docs=sum(s["n_docs"] for s in shards))
    json.dump(c, open(os.path.join(out, "manifest.json"), "w"))
PY
args=(--config tiny --set train.steps=12 --set train.warmup_steps=2 --set log.every=1
      --set train.global_batch=8 --set train.micro_batch=4 --set ckpt.every=0)
run() { # run NAME ARGS...: a run that must succeed
    local name=$1
    shift
    "$worker" "${args[@]}" "$@" --out "$tmp/$name" > "$tmp/$name.out" 2> "$tmp/$name.err" \
        || { cat "$tmp/$name.err"; fail "run $name"; }
}
run held --data "$tmp/data" --set data.eval_shards=1 --set log.eval_every=5
run plain --data "$tmp/train"
run evaldata --data "$tmp/train" --eval-data "$tmp/held" --set log.eval_every=5

/usr/bin/python3 - "$tmp" <<'PY' || fail "metrics"
import json, sys
tmp = sys.argv[1]
def rows(name):
    return [json.loads(l) for l in open(f"{tmp}/{name}/public/metrics.jsonl")]
held, plain, evaldata = rows("held"), rows("plain"), rows("evaldata")
key = lambda r: (r["step"], r["loss"], r["grad_norm"], r["param_hash"])
# the held-out shard was never trained on: the same run as on the manifest without it
assert [key(r) for r in held] == [key(r) for r in plain], "held-out shard changed training"
steps = [r["step"] for r in held if "eval_loss" in r]
assert steps == [5, 10, 12], steps
assert all("eval_loss" not in r for r in plain)
ev = lambda rs: [r["eval_loss"] for r in rs if "eval_loss" in r]
assert ev(held) == ev(evaldata), ("--eval-data differs", ev(held), ev(evaldata))
e = ev(held)
assert e[-1] < e[0], f"eval loss did not fall: {e}"
open(f"{tmp}/eval_loss", "w").write(repr(e[-1]))
PY
# the same windows through `cotrain eval` of the final checkpoint (its micro_batch, one rank)
"$cotrain" eval "$tmp/held/checkpoints/ckpt-00000012" --data "$tmp/held" --tokens 1048576 \
    > "$tmp/eval.out" 2> "$tmp/eval.err" || { cat "$tmp/eval.err"; fail "cotrain eval"; }
/usr/bin/python3 - "$tmp/eval.out" "$tmp/eval_loss" <<'PY' || fail "eval_loss != cotrain eval"
import sys
tool = float(open(sys.argv[1]).read().split("loss ")[-1])
run = float(open(sys.argv[2]).read())
assert abs(tool - run) <= 1e-7 * abs(run), (tool, run)
PY

# 2 ranks: each evaluates half of the windows, summed in rank order
mpirun -np 2 --oversubscribe --bind-to none "$worker" "${args[@]}" --data "$tmp/data" \
    --set data.eval_shards=1 --set log.eval_every=5 --out "$tmp/np2" > /dev/null \
    2> "$tmp/np2.err" || { cat "$tmp/np2.err"; fail "mpirun -np 2"; }
/usr/bin/python3 - "$tmp/held/public/metrics.jsonl" "$tmp/np2/public/metrics.jsonl" <<'PY' \
    || fail "2 ranks' eval_loss"
import json, sys
a, b = ([json.loads(l).get("eval_loss") for l in open(p)] for p in sys.argv[1:])
for x, y in zip(a, b):
    assert (x is None) == (y is None) and (x is None or abs(x - y) <= 1e-5 * abs(x)), (x, y)
PY

# refused before anything runs
expect2() { # expect2 WHAT PATTERN ARGS...
    local what=$1 pattern=$2 rc=0
    shift 2
    "$worker" "${args[@]}" "$@" --out "$tmp/bad" > /dev/null 2> "$tmp/bad.err" || rc=$?
    [ $rc -eq 2 ] || { cat "$tmp/bad.err"; fail "$what: exit $rc, expected 2"; }
    grep -q -- "$pattern" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "$what: no '$pattern'"; }
    [ ! -e "$tmp/bad/config.json" ] || fail "$what: config.json written"
}
expect2 "eval_every without held-out data" "needs held-out data" --data "$tmp/data" \
    --set log.eval_every=5
expect2 "both kinds of held-out data" "use one" --data "$tmp/data" --set log.eval_every=5 \
    --set data.eval_shards=1 --eval-data "$tmp/held"
n=$(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["shards"]))' \
    "$tmp/data/manifest.json")
expect2 "every shard held out" "at least one must be left" --data "$tmp/data" \
    --set data.eval_shards="$n"
echo "eval_e2e: all checks passed"
