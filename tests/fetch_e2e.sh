#!/usr/bin/env bash
# fetch_e2e.sh — an attached worker without --data gets the run's data from the coordinator
# (data_manifest, shard_fetch) into RUN_DIR/data:
#   1. the files it fetched are byte for byte the coordinator's (a shard of more than one chunk
#      among them), and the run is bit-identical to the same run reading the data itself
#   2. an interrupted fetch goes on: a shard cut short resumes from the bytes there (fewer bytes
#      cross the wire), a .part longer than its shard starts again; the files end up the same
#   3. a coordinator whose copy of a shard is damaged: the worker stops naming the shard (exit 2)
#      and leaves no unverified shard file behind
#   4. the head checkpoint (model_fetch): a group whose RUN_DIR lacks it fetches it from the
#      coordinator (a file cut short goes on from its bytes, a .part of other bytes starts
#      again), gets the coordinator's files byte for byte, resumes, and ends bit-identical
# Usage: fetch_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain PATH/TO/cotrain-coordinator
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup

# ~1.4 MB of text in shards of 600k tokens (2 bytes each): some span two 1 MiB chunks
for _ in $(seq 40); do cat /usr/share/common-licenses/GPL-3; done > "$tmp/corpus.txt"
"$cotrain" prep "$tmp/corpus.txt" --split paragraphs --tokenizer bytes --shard-tokens 600000 \
    --out "$tmp/data" 2> /dev/null
big=$(find "$tmp/data" -name '*.h5' -size +1024k | head -n 1)
[ -n "$big" ] || fail "no shard larger than one chunk (1 MiB) to test with"
sets=(--set train.steps=12 --set train.warmup_steps=2 --set log.every=1 --set train.global_batch=8
      --set train.micro_batch=4 --set ckpt.every=6 --set ckpt.keep_last=0)
"$worker" --config tiny --data "$tmp/data" --out "$tmp/straight" "${sets[@]}" > /dev/null \
    2> "$tmp/straight.err" || { cat "$tmp/straight.err"; fail "the run reading its data"; }

same_files() { # same_files DIR: DIR holds the coordinator's manifest and shards, byte for byte
    cmp -s "$tmp/data/manifest.json" "$1/manifest.json" || fail "$1: manifest.json differs"
    local f
    for f in "$tmp"/data/*.h5; do
        cmp -s "$f" "$1/$(basename "$f")" || fail "$1: $(basename "$f") differs or is missing"
    done
    ! compgen -G "$1/*.part" > /dev/null || fail "$1: a .part file is left"
}
mib() { sed -n 's/.*fetching data: .* shard(s), \([0-9.]*\) MiB at.*/\1/p' "$1" | tail -n 1; }

# 1. no --data: fetched, the same files, the same run
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/c1" "${sets[@]}" --bind tcp://127.0.0.1:0
"$worker" --coordinator "$ep" --out "$tmp/a1" > /dev/null 2> "$tmp/a1.err" \
    || { cat "$tmp/a1.err"; fail "the attached run without --data"; }
same_files "$tmp/a1/data"
grep -q "fetching data: \([0-9]*\) of \1 shard(s)" "$tmp/a1.err" || fail "no fetch progress logged"
strip() { /usr/bin/python3 "$(dirname "$0")/strip_metrics.py" "$1" --drop-group; }
strip "$tmp/straight/public/metrics.jsonl" > "$tmp/a.m"
strip "$tmp/a1/public/metrics.jsonl" > "$tmp/b.m"
cmp -s "$tmp/a.m" "$tmp/b.m" || { diff "$tmp/a.m" "$tmp/b.m" | head; fail "metrics differ"; }
cmp -s "$tmp/straight/checkpoints/ckpt-00000012/model.h5" \
    "$tmp/a1/checkpoints/ckpt-00000012/model.h5" || fail "the final model differs"
all=$(mib "$tmp/a1.err")
coord_stop

# 2. an interrupted fetch: the big shard cut at 700 KB, another shard's .part too long
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/c2" "${sets[@]}" --bind tcp://127.0.0.1:0
mkdir -p "$tmp/a2/data"
cp "$tmp/data/manifest.json" "$tmp/a2/data/"
head -c 700000 "$big" > "$tmp/a2/data/$(basename "$big").part"
other=$(find "$tmp/data" -name '*.h5' ! -path "$big" | head -n 1)
head -c 3000000 /dev/urandom > "$tmp/a2/data/$(basename "$other").part"
"$worker" --coordinator "$ep" --out "$tmp/a2" --until 1 > /dev/null 2> "$tmp/a2.err" \
    || { cat "$tmp/a2.err"; fail "the resumed fetch"; }
same_files "$tmp/a2/data"
part=$(mib "$tmp/a2.err")
/usr/bin/python3 -c 'import sys; a, p = float(sys.argv[1]), float(sys.argv[2])
assert abs((a - p) - 700000 / 1048576) < 0.15, (a, p)' "$all" "$part" \
    || fail "the resumed fetch moved $part MiB, the whole one $all MiB: not 700 KB less"
coord_stop

# 3. the coordinator's copy of a shard is damaged: refused, named, nothing unverified kept
cp -r "$tmp/data" "$tmp/bad"
printf 'X' | dd of="$tmp/bad/$(basename "$big")" bs=1 seek=5000 conv=notrunc status=none
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/bad" \
    --out "$tmp/c3" "${sets[@]}" --bind tcp://127.0.0.1:0
rc=0
"$worker" --coordinator "$ep" --out "$tmp/a3" > /dev/null 2> "$tmp/a3.err" || rc=$?
[ $rc -eq 2 ] || { cat "$tmp/a3.err"; fail "a damaged shard: exit $rc, expected 2"; }
grep -q "shard .* from the coordinator has sha256 .* the manifest says" "$tmp/a3.err" \
    || { cat "$tmp/a3.err"; fail "a damaged shard: not named"; }
[ ! -e "$tmp/a3/data/$(basename "$big")" ] || fail "the damaged shard was kept"
! compgen -G "$tmp/a3/data/*.part" > /dev/null || fail "the damaged shard's .part was kept"
coord_stop

# 4. the head checkpoint: one group saves into the coordinator's RUN_DIR (shared storage) and
#    stops at step 6; another, in a RUN_DIR of its own, fetches checkpoint 6 and goes on
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/c4" "${sets[@]}" --bind tcp://127.0.0.1:0
"$worker" --coordinator "$ep" --data "$tmp/data" --out "$tmp/c4" --until 6 > /dev/null \
    2> "$tmp/a4.err" || { cat "$tmp/a4.err"; fail "the group that saves checkpoint 6"; }
ck=$tmp/c4/checkpoints/ckpt-00000006
id=$("$cotrain" inspect "$ck" | sed -n 's/^  id *//p')
[ ${#id} -eq 64 ] || fail "no id for checkpoint 6"
part=$tmp/a5/checkpoints/.fetch-ckpt-00000006-${id:0:16}
mkdir -p "$part"
head -c 100000 "$ck/model.h5" > "$part/model.h5.part"
head -c 5000 /dev/urandom > "$part/optim.h5.part"
"$worker" --coordinator "$ep" --data "$tmp/data" --out "$tmp/a5" > /dev/null 2> "$tmp/a5.err" \
    || { cat "$tmp/a5.err"; fail "the group that fetches the head checkpoint"; }
grep -q "fetching the run's head checkpoint ${id:0:16}... (step 6" "$tmp/a5.err" \
    || { cat "$tmp/a5.err"; fail "no checkpoint fetch logged"; }
grep -q "model.h5 goes on from byte 100000" "$tmp/a5.err" || fail "the cut model.h5 did not resume"
grep -q "resuming from .*ckpt-00000006" "$tmp/a5.err" || fail "no resume from the fetched checkpoint"
for f in MANIFEST config.json model.h5 optim.h5 state.json; do
    cmp -s "$ck/$f" "$tmp/a5/checkpoints/ckpt-00000006/$f" || fail "fetched $f differs"
done
! compgen -G "$tmp/a5/checkpoints/.fetch-*" > /dev/null || fail "the fetch folder was left"
cmp -s "$tmp/straight/checkpoints/ckpt-00000012/model.h5" \
    "$tmp/a5/checkpoints/ckpt-00000012/model.h5" || fail "the run through a fetched checkpoint differs"
coord_stop
echo "fetch_e2e: all checks passed"
