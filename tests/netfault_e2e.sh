#!/usr/bin/env bash
# netfault_e2e.sh — network faults between a coordinator and its volunteer groups, each in a network
# namespace of its own that the test makes (veth links; needs root: skipped, exit 77, without):
#   - group A is cut off (its link down) for longer than the lease TTL mid-run: its leases expire
#     and go to group B, the log says A went silent; the link comes back and A goes on (a delta
#     that lists units it lost is refused and A starts over from the next version)
#   - group B talks through tests/netproxy.py: every chunk delayed 30 ms, every connection cut
#     after 1-8 s (ZeroMQ reconnects, requests are sent again)
#   - over CURVE (a non-loopback bind needs it), open join
#   - the run finishes; the log verifies; every unit of data in its lineage once; no delta (group,
#     version it started from) in two outer steps: healing does not count anything twice
#   - cluster mode: group A trains (its RUN_DIR the coordinator's: shared storage), group B waits
#     as a standby in a RUN_DIR of its own; A is cut off past the lease TTL after a commit: B takes over from the head (which
#     it fetches); when A's link comes back, A is refused and stops with a clear message, never
#     committing on top of B; B finishes; one lineage, every unit once
# Usage: netfault_e2e.sh WORKER COTRAIN COORDINATOR
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"

ns=ct$$
nsc=${ns}c nsa=${ns}a nsb=${ns}b
if [ "$(id -u)" != 0 ] || ! ip netns add "$nsc" 2> /dev/null; then
    echo "SKIP: network namespaces need root (ip netns)"
    exit 77
fi
ppid_=
netns_cleanup() {
    [ -n "$cpid" ] && { kill -9 "$cpid" 2> /dev/null || true; wait "$cpid" 2> /dev/null || true; }
    if [ -n "$ppid_" ]; then
        kill -9 "$ppid_" 2> /dev/null || true
        wait "$ppid_" 2> /dev/null || true
    fi
    coord_cleanup
    for n in "$nsc" "$nsa" "$nsb"; do ip netns del "$n" 2> /dev/null || true; done
}
coord_setup
trap netns_cleanup EXIT
ip netns add "$nsa"
ip netns add "$nsb"
# C <-> A on 10.99.1.0/24, C <-> B on 10.99.2.0/24
link() { # link NS NAME OCTET: a veth pair NAMEc/NAMEg between the coordinator's namespace and NS
    ip link add "${2}c$$" type veth peer name "${2}g$$"
    ip link set "${2}c$$" netns "$nsc"
    ip link set "${2}g$$" netns "$1"
    ip -n "$nsc" addr add "10.99.$3.1/24" dev "${2}c$$"
    ip -n "$1" addr add "10.99.$3.2/24" dev "${2}g$$"
    ip -n "$nsc" link set "${2}c$$" up
    ip -n "$1" link set "${2}g$$" up
    ip -n "$1" link set lo up
}
ip -n "$nsc" link set lo up
link "$nsa" va 1
link "$nsb" vb 2
coord_corpus

"$cotrain" keygen "$tmp/coord.key" > /dev/null
"$cotrain" keygen "$tmp/a.key" > /dev/null
"$cotrain" keygen "$tmp/b.key" > /dev/null
coord_start "$tmp/coord.out" "$tmp/coord.err" ip netns exec "$nsc" "$coord" --config tiny \
    --data "$tmp/data" --out "$tmp/coord" --bind tcp://0.0.0.0:0 --key "$tmp/coord.key" \
    --open-join --lease-ttl 3 --http off --set volunteer.enabled=true --set train.steps=10 \
    --set volunteer.inner_steps=6 --set volunteer.quorum=2 --set volunteer.deadline_s=3 \
    --set volunteer.max_staleness=10 --set train.warmup_steps=2 --set train.global_batch=8 \
    --set train.micro_batch=8 --set ckpt.keep_last=0
port=${ep##*:}
ip netns exec "$nsc" /usr/bin/python3 "$(dirname "$0")/netproxy.py" 10.99.2.1 $((port + 1)) \
    127.0.0.1 "$port" 30 4 > "$tmp/proxy.out" 2>&1 &
ppid_=$!
coord_wait_line "$tmp/proxy.out" "proxy listening"

group() { # group NAME NS ENDPOINT
    ip netns exec "$2" "$worker" --join "$3" --group "$1" --out "$tmp/$1" \
        --server-key "$tmp/coord.key.pub" --key "$tmp/$1.key" > /dev/null 2> "$tmp/$1.log" &
}
# B first: through the proxy its download of version 0 takes most of a minute, in which A alone
# would finish the run (and a delta after the last version is refused, rightly)
group b "$nsb" "tcp://10.99.2.1:$((port + 1))"
pb=$!
wpid=$pb
for _ in $(seq 2400); do
    grep -q "volunteer: version 0 of 10" "$tmp/b.log" && break
    kill -0 "$pb" 2> /dev/null || fail "group B stopped: $(tail -3 "$tmp/b.log")"
    sleep 0.05
done
grep -q "volunteer: version 0 of 10" "$tmp/b.log" || fail "B did not get version 0 through the proxy"
group a "$nsa" "tcp://10.99.1.1:$port"
pa=$!
wpid="$pa $pb"
version() { sed -n 's/.*outer step \([0-9]*\):.*/\1/p' "$tmp/coord.err" | tail -1; }
for _ in $(seq 1200); do
    v=$(version)
    [ -n "$v" ] && [ "$v" -ge 2 ] && break
    sleep 0.05
done
[ -n "$(version)" ] && [ "$(version)" -ge 2 ] || fail "version 2 not reached: $(tail -3 "$tmp/coord.err")"

# the partition: A's link down for three lease TTLs, then back
ip -n "$nsa" link set "vag$$" down
coord_wait_line "$tmp/coord/public/log.jsonl" '"group":"a".*"type":"group_left".*"why":"silent"'
sleep 3
ip -n "$nsa" link set "vag$$" up
grep -q '"group":"a".*"type":"group_left".*"why":"silent"' "$tmp/coord/public/log.jsonl" ||
    fail "A's leases did not lapse while it was cut off"
echo "ok: group A cut off: its leases lapsed and the log says it went silent; the link is back"

for p in $pa $pb; do wait "$p" || fail "a group failed: $(tail -3 "$tmp/a.log" "$tmp/b.log")"; done
wpid=
for _ in $(seq 1200); do kill -0 "$cpid" 2> /dev/null || break; sleep 0.05; done
rc=0
wait "$cpid" || rc=$?
cpid=
[ $rc = 0 ] || fail "the coordinator exited $rc: $(tail -3 "$tmp/coord.err")"
for g in a b; do
    grep -q "volunteer: finished at version 10 of 10" "$tmp/$g.log" || fail "$g did not finish"
done
out=$("$cotrain" verify "$tmp/coord/public")
grep -q "committed, each once" <<< "$out" || fail "lineage: $out"
/usr/bin/python3 - "$tmp/coord/public/log.jsonl" << 'PY' || fail "a delta was counted twice"
import json, sys
seen = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["type"] == "outer_step":
        for c in r["contributors"] + r["rejected"]:
            key = (c["group"], c["base"])
            assert key not in seen, key
            seen.add(key)
PY
grep -q "delta from b" "$tmp/coord.err" || fail "no delta came through the proxy"
echo "ok: the run finished through a partition and a cutting, delaying proxy; one lineage"

# cluster mode: a partitioned active group and its standby
coord_start "$tmp/c2.out" "$tmp/c2.err" ip netns exec "$nsc" "$coord" --config tiny \
    --data "$tmp/data" --out "$tmp/c2" --bind tcp://0.0.0.0:0 --key "$tmp/coord.key" \
    --open-join --lease-ttl 3 --http off --set train.steps=40 --set train.warmup_steps=2 \
    --set train.global_batch=8 --set train.micro_batch=8 --set ckpt.every=5 --set ckpt.keep_last=0
port=${ep##*:}
# A writes its checkpoints where the coordinator reads them (storage they share); B, elsewhere,
# fetches the head from the coordinator when it takes over
ip netns exec "$nsa" "$worker" --coordinator "tcp://10.99.1.1:$port" --group a --out "$tmp/c2" \
    --data "$tmp/data" --server-key "$tmp/coord.key.pub" --key "$tmp/a.key" \
    > /dev/null 2> "$tmp/ca.log" &
pa=$!
coord_wait_line "$tmp/ca.log" "attached to the coordinator"
ip netns exec "$nsb" "$worker" --coordinator "tcp://10.99.2.1:$port" --group b --standby \
    --out "$tmp/cb" --data "$tmp/data" --server-key "$tmp/coord.key.pub" --key "$tmp/b.key" \
    > /dev/null 2> "$tmp/cb.log" &
pb=$!
wpid="$pa $pb"
coord_wait_line "$tmp/ca.log" "committed by the coordinator"
ip -n "$nsa" link set "vag$$" down
coord_wait_line "$tmp/cb.log" "resuming from"
grep -q "resuming from" "$tmp/cb.log" || fail "the standby did not take over: $(tail -3 "$tmp/cb.log")"
ip -n "$nsa" link set "vag$$" up
rc=0
wait "$pa" || rc=$?
[ $rc != 0 ] || fail "group A went on after B took over"
grep -Eq "refused|another group" "$tmp/ca.log" || fail "A stopped without saying why: $(tail -2 "$tmp/ca.log")"
wait "$pb" || fail "the standby that took over failed: $(tail -3 "$tmp/cb.log")"
wpid=
echo "ok: cluster mode: A cut off, B took over from the head; A, back, was refused: $(grep -Eo "refused [a-z_]*" "$tmp/ca.log" | head -1)"
out=$("$cotrain" verify "$tmp/c2/public")
grep -q "committed, each once" <<< "$out" || fail "lineage: $out"
grep -q "run finished" <<< "$out" || fail "the cluster run did not finish: $out"
grep -q '"group":"a".*"type":"group_left".*"why":"silent"' "$tmp/c2/public/log.jsonl" ||
    fail "no group_left {a, silent}"
coord_stop
echo "ok: the cluster run finished by the standby; one lineage, every unit once"

