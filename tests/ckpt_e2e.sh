#!/usr/bin/env bash
# ckpt_e2e.sh — checkpoints end to end through the real binaries:
#   - bit-exact resume: 20 steps straight == --until 10 then --resume latest (metrics lines and
#     the step-20 model.h5 / optim.h5 / state.json bytes), also through SIGTERM and kill -9
#   - resuming with a changed schedule key is refused (exit 2, the key named)
#   - retention (ckpt.keep_last, ckpt.keep_every); --resume latest skips a damaged newest one
#   - tampering: one flipped byte in any checkpoint file is refused, naming the file
#   - crash safety: kill -9 at random moments while checkpoints are written every step, many
#     times: every ckpt-* directory verifies and --resume latest always finds one
#   - disk full (a file-size limit, no root needed): the save fails cleanly and the earlier
#     checkpoints verify
#   - --init from `cotrain export`'s model.safetensors gives the checkpoint's weights exactly
#   - cotrain sample: the same seed gives the same text, greedy == top-k 1, bad usage exits 2
# Usage: ckpt_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain [KILLS (default 50)]
set -euo pipefail
worker=$1
cotrain=$2
kills=${3:-50}
# One thread each: ctest runs tests side by side, and spinning OpenMP threads on shared cores
# slow everything down; results do not depend on the thread count.
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat /usr/share/common-licenses/GPL-3 > "$tmp/corpus.txt"
"$cotrain" prep "$tmp/corpus.txt" --tokenizer bytes --out "$tmp/data" 2> /dev/null
args=(--config tiny --data "$tmp/data" --set train.steps=20 --set log.every=1
      --set train.global_batch=8 --set train.micro_batch=4 --set train.warmup_steps=2
      --set ckpt.every=5 --set ckpt.keep_last=0 --set train.spike_guard=true)

# metrics without the timing fields
strip() { /usr/bin/python3 "$(dirname "$0")/strip_metrics.py" "$1"; }

same_run() { # same_run A B WHAT: metrics and the step-20 checkpoint bytes are identical
    strip "$tmp/$1/public/metrics.jsonl" > "$tmp/$1.m"
    strip "$tmp/$2/public/metrics.jsonl" > "$tmp/$2.m"
    cmp -s "$tmp/$1.m" "$tmp/$2.m" || { diff "$tmp/$1.m" "$tmp/$2.m" | head; fail "$3: metrics differ"; }
    [ "$(wc -l < "$tmp/$2.m")" -eq 20 ] || fail "$3: expected 20 metrics lines"
    local f a=$tmp/$1/checkpoints/ckpt-00000020 b=$tmp/$2/checkpoints/ckpt-00000020
    for f in model.h5 optim.h5 config.json; do
        cmp -s "$a/$f" "$b/$f" || fail "$3: $f of the step-20 checkpoint differs"
    done
    # state.json too, but for its parent: the lineage of a resumed run has more checkpoints
    /usr/bin/python3 -c 'import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
a.pop("parent"); b.pop("parent")
sys.exit(a != b)' "$a/state.json" "$b/state.json" || fail "$3: state.json differs (beyond parent)"
}

"$worker" "${args[@]}" --out "$tmp/straight" > /dev/null 2> "$tmp/straight.err" \
    || { cat "$tmp/straight.err"; fail "straight run"; }

# 0. the MANIFEST: sha256sum -c checks the whole files (it skips the #chunk lines as comments);
# the piece lines, recomputed here, cover every file; inspect shows them and the data's hash
ck=$tmp/straight/checkpoints/ckpt-00000010
(cd "$ck" && sha256sum --quiet -c MANIFEST) || fail "sha256sum -c MANIFEST"
/usr/bin/python3 - "$ck" "$tmp/data/manifest.json" <<'PY' || fail "MANIFEST pieces or state.json"
import hashlib, json, os, sys
ck, manifest = sys.argv[1], sys.argv[2]
lines = open(os.path.join(ck, "MANIFEST")).read().splitlines()
want = []
for name in ("config.json", "model.h5", "optim.h5", "state.json"):
    data = open(os.path.join(ck, name), "rb").read()
    for i in range(0, max(1, (len(data) + (1 << 26) - 1) >> 26)):
        piece = data[i << 26:(i + 1) << 26]
        want.append(f"#chunk {name} {i} {hashlib.sha256(piece).hexdigest()}")
assert lines[4:] == want, (lines[4:], want)
state = json.load(open(os.path.join(ck, "state.json")))
assert state["tokenizer"] == "bytes", state
assert state["data_sha256"] == hashlib.sha256(open(manifest, "rb").read()).hexdigest(), state
PY
"$cotrain" inspect "$ck" > "$tmp/inspect.out" || fail "inspect"
grep -q "^  model.h5         0  sha256 [0-9a-f]\{64\}$" "$tmp/inspect.out" \
    || { cat "$tmp/inspect.out"; fail "inspect does not show the pieces"; }
grep -q "bytes tokens, manifest sha256 [0-9a-f]\{64\}" "$tmp/inspect.out" \
    || { cat "$tmp/inspect.out"; fail "inspect does not show the data"; }

# param_hash recomputed by an outsider from model.h5 alone (tests/param_hash.py is its definition)
want=$(/usr/bin/python3 -c 'import json, sys
print([json.loads(l) for l in open(sys.argv[1])][9]["param_hash"])' "$tmp/straight/public/metrics.jsonl")
got=$(/usr/bin/python3 "$(dirname "$0")/param_hash.py" "$ck")
[ "$got" = "$want" ] || fail "param_hash of step 10: metrics say $want, model.h5 gives $got"

# resuming on other data is refused by the manifest's hash, before anything runs
head -c 20000 /usr/share/common-licenses/GPL-3 > "$tmp/other.txt"
"$cotrain" prep "$tmp/other.txt" --tokenizer bytes --out "$tmp/other" 2> /dev/null
cp -r "$tmp/straight" "$tmp/otherdata"
set +e
"$worker" "${args[@]}" --data "$tmp/other" --out "$tmp/otherdata" --resume "$ck" > /dev/null \
    2> "$tmp/other.err"
rc=$?
set -e
[ $rc -eq 2 ] || { cat "$tmp/other.err"; fail "resume on other data: exit $rc, expected 2"; }
grep -q "it was trained on the manifest with sha256" "$tmp/other.err" \
    || { cat "$tmp/other.err"; fail "resume on other data: no hash named"; }

# 1. --until 10, then --resume latest
"$worker" "${args[@]}" --out "$tmp/until" --until 10 > /dev/null 2> "$tmp/u1.err" \
    || { cat "$tmp/u1.err"; fail "--until 10"; }
[ -d "$tmp/until/checkpoints/ckpt-00000010" ] || fail "--until 10 wrote no step-10 checkpoint"
[ ! -d "$tmp/until/checkpoints/ckpt-00000015" ] || fail "--until 10 went past step 10"
"$worker" "${args[@]}" --out "$tmp/until" --resume latest > /dev/null 2> "$tmp/u2.err" \
    || { cat "$tmp/u2.err"; fail "--resume latest"; }
same_run straight until "--until + --resume"

# 2. SIGTERM mid-run: a checkpoint at the next step boundary, exit 0, then resume
"$worker" "${args[@]}" --set ckpt.every=0 --out "$tmp/term" > "$tmp/term.out" 2> "$tmp/term.err" &
pid=$!
# (cat: a file not made yet counts as no steps; grep alone would print nothing, and the loop end)
while [ "$(cat "$tmp/term.out" 2> /dev/null | grep -c '^step' || true)" -lt 3 ]; do
    kill -0 $pid 2> /dev/null || fail "SIGTERM run ended before the signal"
    sleep 0.05
done
kill -TERM $pid
set +e
wait $pid
rc=$?
set -e
[ $rc -eq 0 ] || { cat "$tmp/term.err"; fail "SIGTERM: exit $rc, expected 0"; }
grep -q "SIGTERM" "$tmp/term.err" || fail "SIGTERM: no checkpoint reported"
ls "$tmp/term/checkpoints" | grep -q ckpt- || fail "SIGTERM: no checkpoint written"
"$worker" "${args[@]}" --set ckpt.every=0 --out "$tmp/term" --resume latest > /dev/null \
    2> "$tmp/term2.err" || { cat "$tmp/term2.err"; fail "resume after SIGTERM"; }
"$worker" "${args[@]}" --set ckpt.every=0 --out "$tmp/straight0" > /dev/null 2>&1
same_run straight0 term "SIGTERM + --resume"

# 3. kill -9 after the step-10 checkpoint, then resume
"$worker" "${args[@]}" --out "$tmp/kill" > /dev/null 2> /dev/null &
pid=$!
until [ -d "$tmp/kill/checkpoints/ckpt-00000010" ]; do
    kill -0 $pid 2> /dev/null || fail "kill -9 run ended before its step-10 checkpoint"
    sleep 0.01
done
kill -KILL $pid || true
wait $pid 2> /dev/null || true
"$worker" "${args[@]}" --out "$tmp/kill" --resume latest > /dev/null 2> "$tmp/kill.err" \
    || { cat "$tmp/kill.err"; fail "resume after kill -9"; }
same_run straight kill "kill -9 + --resume"

# retention: keep_last 2 keeps the newest two, keep_every 10 also keeps step 10
"$worker" "${args[@]}" --set ckpt.keep_last=2 --set ckpt.keep_every=10 --out "$tmp/keep" \
    > /dev/null 2>&1 || fail "retention run"
kept=$(ls "$tmp/keep/checkpoints" | tr '\n' ' ')
[ "$kept" = "ckpt-00000010 ckpt-00000015 ckpt-00000020 " ] || fail "retention kept: $kept"
kept=$(ls "$tmp/straight/checkpoints" | tr '\n' ' ')
[ "$kept" = "ckpt-00000005 ckpt-00000010 ckpt-00000015 ckpt-00000020 " ] \
    || fail "keep_last 0 kept: $kept"

# --resume latest skips a newer checkpoint that does not verify
cp -r "$tmp/keep" "$tmp/skip"
printf 'X' | dd of="$tmp/skip/checkpoints/ckpt-00000020/model.h5" bs=1 seek=100 conv=notrunc status=none
"$worker" "${args[@]}" --set train.steps=20 --out "$tmp/skip" --resume latest > /dev/null \
    2> "$tmp/skip.err" || { cat "$tmp/skip.err"; fail "resume past a damaged checkpoint"; }
grep -q "skipped 1 newer checkpoint" "$tmp/skip.err" || fail "damaged checkpoint not reported"
grep -q "resuming from .*ckpt-00000015" "$tmp/skip.err" || fail "did not resume from step 15"

# 4. a changed schedule key is refused
set +e
"$worker" "${args[@]}" --set train.lr=0.01 --out "$tmp/until" --resume latest > /dev/null \
    2> "$tmp/lr.err"
rc=$?
set -e
[ $rc -eq 2 ] || fail "changed train.lr: exit $rc, expected 2"
grep -q "train.lr" "$tmp/lr.err" || { cat "$tmp/lr.err"; fail "changed train.lr not named"; }

# 5. tampering: flip one byte in each file in turn
ck=$tmp/straight/checkpoints/ckpt-00000010
for f in config.json model.h5 optim.h5 state.json MANIFEST; do
    cp "$ck/$f" "$tmp/saved"
    size=$(stat -c %s "$ck/$f")
    pos=$((size / 2))
    byte=$(dd if="$ck/$f" bs=1 skip=$pos count=1 status=none | od -An -tu1 | tr -d ' ')
    printf "\\$(printf '%03o' $(((byte + 1) % 256)))" | dd of="$ck/$f" bs=1 seek=$pos conv=notrunc status=none
    set +e
    "$cotrain" inspect "$ck" > /dev/null 2> "$tmp/tamper.err"
    rc=$?
    "$worker" "${args[@]}" --out "$tmp/straight" --resume "$ck" > /dev/null 2> "$tmp/tamper2.err"
    rc2=$?
    set -e
    [ $rc -eq 2 ] && [ $rc2 -eq 2 ] || fail "tampered $f: exit $rc / $rc2, expected 2"
    grep -q "$f\|MANIFEST" "$tmp/tamper.err" || { cat "$tmp/tamper.err"; fail "tampered $f not named"; }
    cp "$tmp/saved" "$ck/$f"
done
"$cotrain" inspect "$ck" > /dev/null || fail "restored checkpoint does not verify"

# 6. export, then --init from the export: identical weights (one step at lr 0 changes nothing)
"$cotrain" export "$tmp/straight/checkpoints/ckpt-00000020" --out "$tmp/export" > /dev/null 2>&1 \
    || fail "export"
"$worker" "${args[@]}" --set train.lr=0 --set train.min_lr=0 --set train.steps=1 \
    --set train.warmup_steps=0 --init "$tmp/export" --out "$tmp/init" > /dev/null 2> "$tmp/init.err" \
    || { cat "$tmp/init.err"; fail "--init"; }
/usr/bin/python3 - "$tmp/straight/checkpoints/ckpt-00000020/model.h5" \
    "$tmp/init/checkpoints/ckpt-00000001/model.h5" <<'PY' || fail "--init: weights differ from the exported checkpoint"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
assert sorted(a) == sorted(b)
for k in a:
    assert np.array_equal(a[k][...], b[k][...]), k
PY
set +e
"$worker" "${args[@]}" --set model.d_model=64 --init "$tmp/export" --out "$tmp/init2" > /dev/null \
    2> "$tmp/init2.err"
rc=$?
set -e
[ $rc -eq 2 ] || fail "--init with other dims: exit $rc, expected 2"
grep -q "shape" "$tmp/init2.err" || { cat "$tmp/init2.err"; fail "--init with other dims: no clear message"; }

# cotrain sample: deterministic for a seed; greedy = top-k 1; bad usage exits 2
ck20=$tmp/straight/checkpoints/ckpt-00000020
"$cotrain" sample "$ck20" --prompt "The " --tokens 30 --seed 5 > "$tmp/s1" 2> /dev/null || fail "sample"
"$cotrain" sample "$ck20" --prompt "The " --tokens 30 --seed 5 > "$tmp/s2" 2> /dev/null
"$cotrain" sample "$ck20" --prompt "The " --tokens 30 --seed 6 > "$tmp/s3" 2> /dev/null
cmp -s "$tmp/s1" "$tmp/s2" || fail "sample: the same seed gave different text"
cmp -s "$tmp/s1" "$tmp/s3" && fail "sample: seeds 5 and 6 gave the same text"
head -c 4 "$tmp/s1" | grep -q "^The " || fail "sample: the output does not start with the prompt"
"$cotrain" sample "$ck20" --prompt "The " --tokens 30 --temperature 0 > "$tmp/g1" 2> /dev/null
"$cotrain" sample "$ck20" --prompt "The " --tokens 30 --top-k 1 --seed 9 > "$tmp/g2" 2> /dev/null
cmp -s "$tmp/g1" "$tmp/g2" || fail "sample: --temperature 0 and --top-k 1 differ"
for bad in "--tokens 5000" "--temperature -1" "--bogus"; do
    set +e
    # shellcheck disable=SC2086
    "$cotrain" sample "$ck20" $bad > /dev/null 2> "$tmp/sbad.err"
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "sample $bad: exit $rc, expected 2"
    [ -s "$tmp/sbad.err" ] || fail "sample $bad: no message"
done

# 7. crash safety: kill -9 at random moments while a checkpoint is written every step
# lines in the crash run's metrics (0 before the first)
logged_steps() {
    if [ -f "$tmp/crash/public/metrics.jsonl" ]; then wc -l < "$tmp/crash/public/metrics.jsonl"; else echo 0; fi
}
crash_args=("${args[@]}" --set train.steps=100000 --set ckpt.every=1 --set ckpt.keep_last=3)
for i in $(seq "$kills"); do
    resume=()
    compgen -G "$tmp/crash/checkpoints/ckpt-*" > /dev/null && resume=(--resume latest)
    before=$(logged_steps)
    "$worker" "${crash_args[@]}" --out "$tmp/crash" "${resume[@]}" > /dev/null 2> "$tmp/crash.err" &
    pid=$!
    # once this run has trained a step (however slow the build: sanitizers), a random moment
    # among the steps and the checkpoint written after each of them
    until [ "$(logged_steps)" -gt "$before" ]; do
        kill -0 $pid 2> /dev/null || { cat "$tmp/crash.err"; fail "crash run $i ended by itself"; }
        sleep 0.02
    done
    sleep "0.$(printf '%03d' $((RANDOM % 400)))"
    kill -KILL $pid 2> /dev/null || { cat "$tmp/crash.err"; fail "crash run $i ended by itself"; }
    wait $pid 2> /dev/null || true
    for d in "$tmp/crash/checkpoints"/ckpt-*; do
        [ -e "$d" ] || continue
        "$cotrain" inspect "$d" > /dev/null 2> "$tmp/inspect.err" \
            || { cat "$tmp/inspect.err"; fail "after kill $i: $d does not verify"; }
    done
done
ls "$tmp/crash/checkpoints" | grep -q ckpt- || fail "no checkpoint survived the kills"

# 8. disk full, as a file-size limit (RLIMIT_FSIZE: `ulimit -f` works for any user, where a
#    small tmpfs needs root), with SIGXFSZ ignored so that writes past it fail (EFBIG) as they
#    would on a full disk: resumed from step 5 with files limited to half of model.h5, the
#    step-10 save fails cleanly (exit 1, not a crash; the file named), the step-5 checkpoint
#    still verifies, no temp directory is left, and the run goes on once there is room
"$worker" "${args[@]}" --until 5 --out "$tmp/full" > /dev/null 2> "$tmp/full.err" \
    || { cat "$tmp/full.err"; fail "disk full: the first 5 steps"; }
limit_kb=$(($(stat -c %s "$tmp/full/checkpoints/ckpt-00000005/model.h5") / 2048))
set +e
( trap '' XFSZ; ulimit -f "$limit_kb"; exec "$worker" "${args[@]}" --resume latest --out "$tmp/full" ) \
    > /dev/null 2> "$tmp/full.err"
rc=$?
set -e
[ $rc -eq 1 ] || { cat "$tmp/full.err"; fail "disk full: exit $rc, expected 1 (a clean failure)"; }
grep -q "ckpt-00000010.tmp/[a-z]*\.h5" "$tmp/full.err" && grep -q "File too large" "$tmp/full.err" \
    || { cat "$tmp/full.err"; fail "disk full: the message does not name the file and the error"; }
[ "$(ls -A "$tmp/full/checkpoints")" = ckpt-00000005 ] \
    || fail "disk full: checkpoints/ holds $(ls -A "$tmp/full/checkpoints" | tr '\n' ' ')(a temp directory left?)"
"$cotrain" inspect "$tmp/full/checkpoints/ckpt-00000005" > /dev/null \
    || fail "disk full: the earlier checkpoint does not verify"
"$worker" "${args[@]}" --resume latest --until 10 --out "$tmp/full" > /dev/null 2> "$tmp/full.err" \
    || { cat "$tmp/full.err"; fail "disk full: no resume once there is room"; }
echo "ckpt_e2e: all checks passed ($kills kills)"
