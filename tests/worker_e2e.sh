#!/usr/bin/env bash
# worker_e2e.sh — end to end through the real cotrain-worker binary: two runs of the same config,
# seed and data give bit-identical metrics (loss, lr, grad_norm and the weights' hash at every
# step), the loss falls, the resolved config is canonical, and bad usage or bad data (a missing or
# corrupted shard) exits 2 with a clear message.
# Usage: worker_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain
set -euo pipefail
worker=$1
cotrain=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# a real English text that every Debian system has
cat /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 > "$tmp/corpus.txt"
"$cotrain" prep "$tmp/corpus.txt" --tokenizer bytes --out "$tmp/data" 2> "$tmp/prep.err" \
    || { cat "$tmp/prep.err"; fail "prep failed"; }
args=(--config tiny --data "$tmp/data" --set train.steps=30 --set log.every=1
      --set train.global_batch=8 --set train.micro_batch=4)
for run in a b; do
    "$worker" "${args[@]}" --out "$tmp/$run" > "$tmp/$run.out" 2> "$tmp/$run.err" \
        || { cat "$tmp/$run.err"; fail "run $run exited non-zero"; }
done
strip() { /usr/bin/python3 "$(dirname "$0")/strip_metrics.py" "$1"; }
strip "$tmp/a/public/metrics.jsonl" > "$tmp/a.m"
strip "$tmp/b/public/metrics.jsonl" > "$tmp/b.m"
[ "$(wc -l < "$tmp/a.m")" -eq 30 ] || fail "expected 30 metrics lines, got $(wc -l < "$tmp/a.m")"
cmp -s "$tmp/a.m" "$tmp/b.m" || { diff "$tmp/a.m" "$tmp/b.m" | head; fail "two identical runs differ"; }
cmp -s "$tmp/a/config.json" "$tmp/b/config.json" || fail "resolved configs differ"
grep -q '"param_hash":"[0-9a-f]\{16\}"' "$tmp/a/public/metrics.jsonl" || fail "no param_hash"
/usr/bin/python3 - "$tmp/a/public/metrics.jsonl" "$tmp/a/config.json" <<'PY' || fail "metrics content"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
need = {"step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "mfu", "param_hash", "group"}
assert all(need <= set(r) for r in rows), "missing fields"
assert [r["step"] for r in rows] == list(range(1, 31))
assert rows[-1]["tokens"] == 30 * 8 * 128
assert rows[-1]["loss"] < rows[0]["loss"] - 1.0, (rows[0]["loss"], rows[-1]["loss"])
assert len({r["param_hash"] for r in rows}) == 30, "weights did not change every step"
text = open(sys.argv[2]).read()
cfg = json.loads(text)
assert text == json.dumps(cfg, sort_keys=True, separators=(",", ":")) + "\n", "not canonical"
assert cfg["train"]["steps"] == 30 and cfg["model"]["vocab_size"] == 256
PY
grep -q "step .*30/30" "$tmp/a.out" || fail "no progress line for the last step"
grep -q "ETA" "$tmp/a.out" || fail "progress line has no ETA"

# A non-finite loss: one NaN in wte (tied to the output layer, so every logit row and every
# step's loss is NaN), put into run a's exported weights and started from with --init. With the
# spike guard every step is skipped and metrics.jsonl stays strict JSON, the NaNs written null;
# without it the run stops (exit 1) saying what to change.
"$cotrain" export "$tmp/a/checkpoints/ckpt-00000030" --format safetensors --out "$tmp/nan" \
    > /dev/null 2> "$tmp/nan.err" || { cat "$tmp/nan.err"; fail "export for the NaN run"; }
/usr/bin/python3 - "$tmp/nan/model.safetensors" <<'PY' || fail "cannot put a NaN into wte"
import json, struct, sys
with open(sys.argv[1], "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    t = header["transformer.wte.weight"]
    assert t["dtype"] == "F32", t
    f.seek(8 + n + t["data_offsets"][0] + 4 * 5)
    f.write(struct.pack("<f", float("nan")))
PY
nan_args=(--config tiny --data "$tmp/data" --set train.steps=3 --set train.warmup_steps=1
          --set log.every=1 --set train.global_batch=8 --set train.micro_batch=4 --init "$tmp/nan")
"$worker" "${nan_args[@]}" --set train.spike_guard=true --out "$tmp/nan-run" > "$tmp/nan.out" \
    2> "$tmp/nan.err" || { cat "$tmp/nan.err"; fail "spike-guarded NaN run exited non-zero"; }
grep -q "SKIPPED (spike guard)" "$tmp/nan.out" || { cat "$tmp/nan.out"; fail "no step was skipped"; }
/usr/bin/python3 - "$tmp/nan-run/public/metrics.jsonl" <<'PY' || fail "metrics of skipped steps"
import json, sys
def no_constants(name):  # Python's json takes NaN and Infinity; JSON does not
    raise ValueError(f"{name} is not JSON")
rows = []
for i, line in enumerate(open(sys.argv[1]), 1):
    try:
        rows.append(json.loads(line, parse_constant=no_constants))
    except ValueError as err:
        sys.exit(f"metrics.jsonl line {i} is not JSON ({err}): {line.strip()}")
assert [r["step"] for r in rows] == [1, 2, 3], rows
for r in rows:
    assert r["skipped"] == 1, r
    assert r["loss"] is None and r["grad_norm"] is None, r
    assert isinstance(r["lr"], float) and r["lr"] > 0, r
PY
set +e
"$worker" "${nan_args[@]}" --out "$tmp/nan-stop" > /dev/null 2> "$tmp/nan.err"
rc=$?
set -e
[ $rc -eq 1 ] || { cat "$tmp/nan.err"; fail "NaN loss without the spike guard: exit $rc, expected 1"; }
grep -q "train.spike_guard=true" "$tmp/nan.err" || { cat "$tmp/nan.err"; fail "NaN loss: no advice"; }

# bad usage: exit 2 and a message that says what to do
expect2() {
    local what=$1; shift
    set +e
    "$worker" "$@" > /dev/null 2> "$tmp/err"
    local rc=$?
    set -e
    [ $rc -eq 2 ] || fail "$what: exit $rc, expected 2"
}
expect2 "no --data" --config tiny --out "$tmp/x"
grep -q -- "--data" "$tmp/err" || fail "no --data: message does not name --data"
expect2 "missing manifest" --config tiny --data "$tmp/nope" --out "$tmp/x"
grep -q "nope" "$tmp/err" && grep -q "cotrain prep" "$tmp/err" || fail "missing manifest: message"
expect2 "unknown flag" --bogus
grep -q -- "--bogus" "$tmp/err" || fail "unknown flag not named"
printf 'ab' > "$tmp/short.txt"
"$cotrain" prep "$tmp/short.txt" --tokenizer bytes --out "$tmp/short" 2> /dev/null
expect2 "data shorter than one sample" --config tiny --data "$tmp/short" --out "$tmp/x"
grep -q "seq_len" "$tmp/err" || fail "short data: message does not say what to change"
expect2 "vocab smaller than the data's" --config tiny --data "$tmp/data" --out "$tmp/x" \
    --set model.vocab_size=100
grep -q "model.vocab_size" "$tmp/err" || fail "small vocab: key not named"
# (through a file: `grep -q` stops reading at the first match, and the worker's write of the rest
# of its --help would then fail with SIGPIPE under pipefail)
"$worker" --help > "$tmp/help" || fail "--help exits non-zero"
grep -q -- "--set" "$tmp/help" || fail "--help does not document --set"
# a group's name appears inside JSON lines: only [A-Za-z0-9._-] is taken
rc=0
"$worker" --coordinator tcp://127.0.0.1:1 --group 'a"b' > /dev/null 2> "$tmp/err" || rc=$?
[ $rc -eq 2 ] && grep -q "a group's name is 1 to 64 letters" "$tmp/err" \
    || { cat "$tmp/err"; fail "--group with a quote: exit $rc"; }
# a shard whose bytes changed, or that is gone: refused before training, naming the shard
shard=$(ls "$tmp/data"/*.h5)
cp "$shard" "$tmp/shard.bak"
printf 'X' | dd of="$shard" bs=1 seek=5000 conv=notrunc status=none
expect2 "corrupted shard" "${args[@]}" --out "$tmp/x"
grep -q "$(basename "$shard" .h5)" "$tmp/err" && grep -q "sha256" "$tmp/err" \
    || { cat "$tmp/err"; fail "corrupted shard: message does not name it and the hash"; }
rm "$shard"
expect2 "missing shard" "${args[@]}" --out "$tmp/x"
grep -q "$(basename "$shard" .h5).*missing" "$tmp/err" || { cat "$tmp/err"; fail "missing shard not named"; }
cp "$tmp/shard.bak" "$shard"

# the gpt2 tokenizer: model.vocab_size comes from the data (50257)
"$cotrain" prep "$tmp/corpus.txt" --tokenizer gpt2 --out "$tmp/data2" 2> /dev/null
"$worker" --config tiny --data "$tmp/data2" --set train.steps=2 --set train.warmup_steps=1 --set log.every=1 --out "$tmp/g" \
    > /dev/null 2> "$tmp/g.err" || { cat "$tmp/g.err"; fail "gpt2 run failed"; }
grep -q '"vocab_size":50257' "$tmp/g/config.json" || fail "vocab_size not taken from the gpt2 data"
# the MFU denominator: measured once per machine and thread count into the cache, read back by
# the next run (the log says which), or given by train.peak_gflops; mfu scales with 1 / peak
short=(--config tiny --data "$tmp/data" --set train.steps=3 --set train.warmup_steps=1
       --set log.every=1 --set train.global_batch=8 --set train.micro_batch=4)
export COTRAIN_CACHE_DIR=$tmp/cache
for run in p1 p2; do
    "$worker" "${short[@]}" --out "$tmp/$run" > /dev/null 2> "$tmp/$run.err" \
        || { cat "$tmp/$run.err"; fail "peak run $run"; }
done
grep -q "peak of .*measured now (.*), cached in $tmp/cache/peak-" "$tmp/p1.err" \
    || { cat "$tmp/p1.err"; fail "the first run does not say it measured and cached the peak"; }
grep -q "peak of .*: measured .*, cached in $tmp/cache/peak-" "$tmp/p2.err" \
    && ! grep -q "measured now" "$tmp/p2.err" \
    || { cat "$tmp/p2.err"; fail "the second run did not use the cached peak"; }
for g in 1 4; do
    "$worker" "${short[@]}" --set train.peak_gflops=$g --out "$tmp/g$g" > /dev/null \
        2> "$tmp/g$g.err" || { cat "$tmp/g$g.err"; fail "train.peak_gflops=$g"; }
    grep -q "peak of $g GFLOP/s .*: train.peak_gflops)" "$tmp/g$g.err" \
        || { cat "$tmp/g$g.err"; fail "train.peak_gflops=$g: source not logged"; }
done
/usr/bin/python3 - "$tmp/g1/public/metrics.jsonl" "$tmp/g4/public/metrics.jsonl" <<'PY' \
    || fail "mfu does not follow train.peak_gflops"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
for x, y in zip(a, b):
    # mfu = tokens_per_s * flops_per_token / peak: the same flops per token in both runs
    fa, fb = x["mfu"] * 1e9 / x["tokens_per_s"], y["mfu"] * 4e9 / y["tokens_per_s"]
    assert abs(fa / fb - 1) < 1e-6, (fa, fb)
PY
unset COTRAIN_CACHE_DIR

echo "worker_e2e: all checks passed"
