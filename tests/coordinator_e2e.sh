#!/usr/bin/env bash
# coordinator_e2e.sh — the real cotrain-coordinator over loopback:
#   - hello, lease, shard_done, checkpoint_commit, latest_checkpoint; `cotrain status` shows them
#   - kill -9 and restart on the same run directory: a retried request gets its stored reply
#     (the commit is not applied twice), the state is as acknowledged
#   - bad input (not JSON, unknown type, wrong version, stale token) gets an error reply and the
#     coordinator stays up; a non-loopback --bind is refused (exit 2)
#   - a client leasing and reporting in a loop while the coordinator is killed -9 again and again
#     (KILLS, default 20): every acknowledged report is in the ledger after each restart
#   - CURVE (cotrain keygen, --key, --allow): an allowed key is answered, a stranger's key and a
#     plain-text client are not; the refusal is logged by key id
#   - --open-join: any CURVE key is answered and logged by key id, plain text is not
#   - a malformed --http address is refused (exit 2) saying the form to give
#   - --rate: a peer past it gets `busy` replies that change nothing, and is served again later
# Usage: coordinator_e2e.sh PATH/TO/cotrain-coordinator PATH/TO/cotrain PATH/TO/coord_probe [KILLS]
set -euo pipefail
coord=$1
cotrain=$2
probe=$3
kills=${4:-20}
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup
pid=
loop_pid=
trap 'for p in "$loop_pid" "$pid"; do [ -n "$p" ] && kill -9 "$p" 2> /dev/null || true; done
      coord_cleanup' EXIT
coord_corpus 8000

start() { # [PORT] (default 0: a free one); sets cpid and ep
    coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
        --out "$tmp/run" --bind "tcp://127.0.0.1:${1:-0}" --lease-ttl 600
    pid=$cpid
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
grep -q "needs CURVE" "$tmp/public.err" || { cat "$tmp/public.err"; fail "public bind: message"; }

# kill -9 again and again under a client that leases and reports in a loop; the coordinator
# comes back on the same port, and the client, retrying, goes on through every restart
"$probe" --loop "$ep" g2 > "$tmp/loop.out" 2> "$tmp/loop.err" &
loop_pid=$!
port=${ep##*:}
for k in $(seq "$kills"); do
    sleep "0.$((RANDOM % 4 + 1))"
    before=$(tail -n 1 "$tmp/loop.out" | sed -n 's/^done //p')
    kill -9 $pid
    wait $pid 2> /dev/null || true
    start "$port"
    kill -0 $loop_pid 2> /dev/null || { cat "$tmp/loop.err"; fail "the client gave up"; }
    # the client is served by this coordinator before the next kill
    for _ in $(seq 300); do
        [ "$(tail -n 1 "$tmp/loop.out" | sed -n 's/^done //p')" != "$before" ] && break
        sleep 0.05
    done
    [ "$(tail -n 1 "$tmp/loop.out" | sed -n 's/^done //p')" != "$before" ] \
        || { cat "$tmp/loop.err"; fail "after kill $k the client got no acknowledged report"; }
done
sleep 0.5
kill -9 $loop_pid
wait $loop_pid 2> /dev/null || true
loop_pid=
acked=$(tail -n 1 "$tmp/loop.out" | sed -n 's/^done //p')
[ "${acked:-0}" -gt "$kills" ] || fail "only ${acked:-0} reports acknowledged over $kills kills"
echo "coordinator_e2e: $acked reports acknowledged through $kills kills"
"$cotrain" status "$ep" > "$tmp/status"
done_n=$(sed -n 's/.* leased, \([0-9]*\) done.*/\1/p' "$tmp/status")
# g1's unit is committed; every report g2 saw acknowledged is done (one more may have landed
# just before a kill, unacknowledged)
[ "$done_n" -ge "$acked" ] && [ "$done_n" -le $((acked + 1)) ] \
    || { cat "$tmp/status"; fail "$acked reports acknowledged, the ledger holds $done_n done"; }
kill -9 $pid
wait $pid 2> /dev/null || true

# CURVE: keys, an allow file with the worker's key; the stranger's and a plain client get nothing
"$cotrain" keygen "$tmp/coord.key" > "$tmp/keygen.out" || fail "keygen"
grep -q "^key id [0-9a-f]\{16\}$" "$tmp/keygen.out" || { cat "$tmp/keygen.out"; fail "keygen id"; }
[ "$(stat -c %a "$tmp/coord.key")" = 600 ] || fail "the secret key is not mode 600"
"$cotrain" keygen "$tmp/coord.key" > /dev/null 2>&1 && fail "keygen overwrote a key"
"$cotrain" keygen "$tmp/worker.key" > /dev/null
"$cotrain" keygen "$tmp/stranger.key" > /dev/null
printf '# workers admitted\n%s\n' "$(cat "$tmp/worker.key.pub")" > "$tmp/allow"
coord_start "$tmp/coord.out" "$tmp/curve.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/run" --bind tcp://127.0.0.1:0 --key "$tmp/coord.key" --allow "$tmp/allow"
pid=$cpid
"$cotrain" status "$ep" --server-key "$tmp/coord.key.pub" --key "$tmp/worker.key" \
    > "$tmp/status" || { cat "$tmp/curve.err"; fail "an allowed key was not answered"; }
grep -q "1 committed" "$tmp/status" || fail "status over CURVE"
"$cotrain" status "$ep" --server-key "$tmp/coord.key.pub" --key "$tmp/stranger.key" \
    --timeout 1500 > /dev/null 2>&1 && fail "a stranger's key was answered"
"$cotrain" status "$ep" --timeout 1500 > /dev/null 2>&1 && fail "a plain-text client was answered"
stranger_id=$(/usr/bin/python3 -c 'import hashlib, sys
z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
s = open(sys.argv[1]).read().strip()
key = b""
for g in range(0, 40, 5):
    n = 0
    for c in s[g:g + 5]: n = n * 85 + z85.index(c)
    key += n.to_bytes(4, "big")
print(hashlib.sha256(key).hexdigest()[:16])' "$tmp/stranger.key.pub")
grep -q "peer with key $stranger_id refused" "$tmp/curve.err" \
    || { cat "$tmp/curve.err"; fail "the refused peer is not named by its key id"; }
if grep -q "127.0.0.1" "$tmp/curve.err"; then fail "a peer's address was logged"; fi
coord_stop
# open join: any key gets in (named by key id); plain text still does not; the flags it needs
coord_start "$tmp/coord.out" "$tmp/open.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/run" --bind tcp://127.0.0.1:0 --key "$tmp/coord.key" --open-join
"$cotrain" status "$ep" --server-key "$tmp/coord.key.pub" --key "$tmp/stranger.key" \
    > /dev/null || { cat "$tmp/open.err"; fail "open join: a new key was not answered"; }
grep -q "peer with key $stranger_id admitted (open join)" "$tmp/open.err" \
    || { cat "$tmp/open.err"; fail "open join: the peer is not named by its key id"; }
"$cotrain" status "$ep" --timeout 1500 > /dev/null 2>&1 && fail "open join: plain text answered"
coord_stop
for bad in "--open-join" "--key $tmp/coord.key --open-join --allow $tmp/allow" \
    "--key $tmp/coord.key --open-join --rate 0" "--key $tmp/coord.key"; do
    set +e
    # shellcheck disable=SC2086
    "$coord" --config tiny --data "$tmp/data" --out "$tmp/run" --bind tcp://127.0.0.1:0 $bad \
        > /dev/null 2> "$tmp/bad.err"
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "$bad: exit $rc, expected 2"
    grep -q -e "--allow" -e "--open-join" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "$bad"; }
done

# a peer past --rate gets `busy` replies (and nothing changes); within the rate it is served
coord_start "$tmp/coord.out" "$tmp/rate.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/run" --bind tcp://127.0.0.1:0 --rate 2
hdrs=('{"v":1,"type":"hello","req":1,"group":"fast"}')
for r in 2 3 4 5 6 7 8; do hdrs+=("{\"v\":1,\"type\":\"lease\",\"req\":$r,\"group\":\"fast\"}"); done
"$probe" "$ep" "${hdrs[@]}" > "$tmp/rate.out" || { cat "$tmp/rate.out"; fail "the rate probe"; }
grants=$(grep -c '"lease_grant"' "$tmp/rate.out" || true)
busy=$(grep -c '"code":"busy"' "$tmp/rate.out" || true)
[ "$busy" -ge 4 ] && [ $((1 + grants + busy)) -eq 8 ] \
    || { cat "$tmp/rate.out"; fail "8 requests at once, rate 2: $grants leases, $busy busy"; }
grep -q "past its request rate" "$tmp/rate.err" || { cat "$tmp/rate.err"; fail "not logged"; }
"$cotrain" status "$ep" > "$tmp/status"
grep -Eq "^    fast +last heard .*, $grants unit\(s\) leased" "$tmp/status" \
    || { cat "$tmp/status"; fail "a busy reply changed the ledger"; }
sleep 1
"$probe" "$ep" '{"v":1,"type":"lease","req":9,"group":"fast"}' | grep -q '"lease_grant"' \
    || fail "within the rate again, the peer is not served"
coord_stop

# a malformed --http is refused with the form to give, exit 2, and nothing served
for bad in "nonsense" "127.0.0.1:" "127.0.0.1:70000" "localhost:8080"; do
    rc=0
    timeout 20 "$coord" --config tiny --data "$tmp/data" --out "$tmp/http" \
        --bind tcp://127.0.0.1:0 --http "$bad" > /dev/null 2> "$tmp/http.err" || rc=$?
    [ $rc -eq 2 ] || { cat "$tmp/http.err"; fail "--http $bad: exit $rc, expected 2"; }
    grep -q "give ADDR:PORT\|not an IPv4 address" "$tmp/http.err" \
        || { cat "$tmp/http.err"; fail "--http $bad: no advice"; }
done
echo "coordinator_e2e: all checks passed ($kills kills, $acked reports)"
