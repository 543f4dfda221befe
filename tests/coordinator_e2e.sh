#!/usr/bin/env bash
# coordinator_e2e.sh — the real cotrain-coordinator over loopback:
#   - hello, lease, shard_done, checkpoint_commit, latest_checkpoint; `cotrain status` shows them
#   - kill -9 and restart on the same run directory: a retried request gets its stored reply
#     (the commit is not applied twice), the state is as acknowledged
#   - bad input (not JSON, unknown type, wrong version, stale token) gets an error reply and the
#     coordinator stays up; a non-loopback --bind is refused (exit 2)
#   - a client leasing and reporting in a loop while the coordinator is killed -9 again and again
#     (KILLS, default 20): every acknowledged report is in the ledger after each restart
# Usage: coordinator_e2e.sh PATH/TO/cotrain-coordinator PATH/TO/cotrain PATH/TO/coord_probe [KILLS]
set -euo pipefail
coord=$1
cotrain=$2
probe=$3
kills=${4:-20}
tmp=$(mktemp -d)
pid=
loop_pid=
cleanup() {
    [ -n "$loop_pid" ] && kill -9 "$loop_pid" 2> /dev/null || true
    [ -n "$pid" ] && kill -9 "$pid" 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

head -c 60000 /usr/share/common-licenses/GPL-3 > "$tmp/corpus.txt"
"$cotrain" prep "$tmp/corpus.txt" --split paragraphs --tokenizer bytes --shard-tokens 8000 \
    --out "$tmp/data" 2> /dev/null

# start: a free port each time (port 0), read back from the "listening on" line
start() {
    : > "$tmp/coord.out"
    "$coord" --config tiny --data "$tmp/data" --out "$tmp/run" --bind tcp://127.0.0.1:0 \
        --lease-ttl 600 > "$tmp/coord.out" 2>> "$tmp/coord.err" &
    pid=$!
    local i
    for i in $(seq 200); do
        ep=$(sed -n 's/^listening on //p' "$tmp/coord.out")
        [ -n "$ep" ] && return 0
        kill -0 $pid 2> /dev/null || { cat "$tmp/coord.err"; fail "the coordinator exited"; }
        sleep 0.05
    done
    fail "the coordinator did not say where it listens within 10 s"
}
field() { /usr/bin/python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

start
r=$("$probe" "$ep" '{"v":1,"type":"hello","req":1,"group":"g1"}')
[ "$(field "$r" type)" = welcome ] || fail "hello: $r"
/usr/bin/python3 -c 'import json, sys; c = json.loads(sys.argv[1])["config"]
assert c["model"]["vocab_size"] == 256, c' "$r" || fail "welcome carries no resolved config"
r=$("$probe" "$ep" '{"v":1,"type":"lease","req":2,"group":"g1"}')
[ "$(field "$r" type)" = lease_grant ] || fail "lease: $r"
shard=$(field "$r" shard)
fence=$(field "$r" fence)
stale=$("$probe" "$ep" "{\"v\":1,\"type\":\"shard_done\",\"req\":3,\"group\":\"g1\",\"shard\":\"$shard\",\"epoch\":0,\"fence\":$((fence + 1))}")
[ "$(field "$stale" code)" = stale ] || fail "a stale token was not refused: $stale"
r=$("$probe" "$ep" "{\"v\":1,\"type\":\"shard_done\",\"req\":4,\"group\":\"g1\",\"shard\":\"$shard\",\"epoch\":0,\"fence\":$fence}")
[ "$(field "$r" type)" = ok ] || fail "shard_done: $r"
id=$(printf 'a checkpoint' | sha256sum | cut -c1-64)
commit="{\"v\":1,\"type\":\"checkpoint_commit\",\"req\":5,\"group\":\"g1\",\"step\":10,\"id\":\"$id\",\"parent\":\"\",\"units\":[{\"shard\":\"$shard\",\"epoch\":0}]}"
first=$("$probe" "$ep" "$commit")
[ "$(field "$first" type)" = ok ] || fail "checkpoint_commit: $first"
"$cotrain" status "$ep" > "$tmp/status" || fail "cotrain status"
grep -q "head checkpoint  $id (step 10)" "$tmp/status" || { cat "$tmp/status"; fail "status: head"; }
grep -q "1 committed" "$tmp/status" || { cat "$tmp/status"; fail "status: committed units"; }

# bad input: an error reply each, the coordinator stays up
for bad in 'not json' '{"v":1,"type":"launch","req":6,"group":"g1"}' \
           '{"v":9,"type":"lease","req":6,"group":"g1"}' '{"v":1,"type":"lease","req":6}'; do
    r=$("$probe" "$ep" "$bad")
    [ "$(field "$r" type)" = error ] || fail "bad input '$bad' got: $r"
done
kill -0 $pid || fail "the coordinator died of bad input"

# kill -9 and restart: the retried commit gets its stored reply, not a second application
kill -9 $pid
wait $pid 2> /dev/null || true
start
again=$("$probe" "$ep" "$commit")
[ "$again" = "$first" ] || fail "the retried commit got '$again', first '$first'"
r=$("$probe" "$ep" '{"v":1,"type":"latest_checkpoint","req":7,"group":"g1"}')
[ "$(field "$r" id)" = "$id" ] || fail "latest_checkpoint after a restart: $r"
"$cotrain" status "$ep" | grep -q "1 committed" || fail "status after a restart"

# a public bind is refused until CURVE
set +e
"$coord" --config tiny --data "$tmp/data" --out "$tmp/run2" --bind tcp://0.0.0.0:0 \
    > /dev/null 2> "$tmp/public.err"
rc=$?
set -e
[ $rc -eq 2 ] || fail "--bind tcp://0.0.0.0:0: exit $rc, expected 2"
grep -q "only loopback" "$tmp/public.err" || { cat "$tmp/public.err"; fail "public bind: message"; }

# kill -9 again and again under a client that leases and reports in a loop
"$probe" --loop "$ep" g2 > "$tmp/loop.out" 2> "$tmp/loop.err" &
loop_pid=$!
for k in $(seq "$kills"); do
    sleep "0.$((RANDOM % 4 + 1))"
    kill -9 $pid
    wait $pid 2> /dev/null || true
    acked=$(tail -n 1 "$tmp/loop.out" | sed -n 's/^done //p')
    start
    kill -0 $loop_pid 2> /dev/null || { cat "$tmp/loop.err"; fail "the client gave up"; }
done
sleep 0.5
kill -9 $loop_pid
wait $loop_pid 2> /dev/null || true
loop_pid=
acked=$(tail -n 1 "$tmp/loop.out" | sed -n 's/^done //p')
[ "${acked:-0}" -gt "$kills" ] || fail "only ${acked:-0} reports acknowledged over $kills kills"
"$cotrain" status "$ep" > "$tmp/status"
done_n=$(sed -n 's/.* leased, \([0-9]*\) done.*/\1/p' "$tmp/status")
# g1's unit is committed; every report g2 saw acknowledged is done (one more may have landed
# just before a kill, unacknowledged)
[ "$done_n" -ge "$acked" ] && [ "$done_n" -le $((acked + 1)) ] \
    || { cat "$tmp/status"; fail "$acked reports acknowledged, the ledger holds $done_n done"; }
echo "coordinator_e2e: all checks passed ($kills kills, $acked reports)"
