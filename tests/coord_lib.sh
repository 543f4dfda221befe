# coord_lib.sh — sourced by the coordinator tests (coordinator_e2e.sh, attach_e2e.sh,
# coord_crash_e2e.sh, embedded_e2e.sh, fetch_e2e.sh, verify_e2e.sh, dashboard_e2e.sh).
#
# coord_setup: makes $tmp, a temporary directory (kept when KEEP is set); at exit the processes
# named in $cpid, $wpid and $bpid are killed -9 and $tmp is removed. fail MSG: FAIL: MSG, exit 1.
coord_setup() {
    tmp=$(mktemp -d)
    cpid=
    wpid=
    bpid=
    trap coord_cleanup EXIT
}
coord_cleanup() {
    local p
    for p in "$wpid" "$bpid" "$cpid"; do [ -n "$p" ] && kill -9 "$p" 2> /dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
fail() { echo "FAIL: $*" >&2; exit 1; }

# coord_corpus [TOKENS]: the GPL's first 60,000 bytes as byte-token shards of TOKENS (default
# 3000) in $tmp/data, made by $cotrain prep.
coord_corpus() {
    head -c 60000 /usr/share/common-licenses/GPL-3 > "$tmp/corpus.txt"
    "$cotrain" prep "$tmp/corpus.txt" --split paragraphs --tokenizer bytes \
        --shard-tokens "${1:-3000}" --out "$tmp/data" 2> /dev/null
}
#
# coord_start OUT ERR COORDINATOR ARGS...: starts COORDINATOR ARGS... in the background (ARGS
# name the --bind, port 0 for a free one), its stdout in OUT and stderr appended to ERR; sets
# cpid to its pid and ep to the endpoint it printed ("listening on ..."), or calls fail (the
# caller's) when it exits or says nothing within 10 s.
coord_start() {
    local out=$1 err=$2
    shift 2
    : > "$out"
    "$@" > "$out" 2>> "$err" &
    cpid=$!
    local _
    for _ in $(seq 200); do
        ep=$(sed -n 's/^listening on //p' "$out")
        [ -n "$ep" ] && return 0
        kill -0 "$cpid" 2> /dev/null || break
        sleep 0.05
    done
    cat "$err" >&2
    fail "the coordinator did not say where it listens"
}

# coord_stop: kill -9 the coordinator started last and reap it.
coord_stop() {
    kill -9 "$cpid" 2> /dev/null || true
    wait "$cpid" 2> /dev/null || true
    cpid=
}

# coord_wait_line FILE TEXT: until FILE holds a line with TEXT, for up to 30 s (then returns
# anyway: the caller's next check says what is missing).
coord_wait_line() {
    local _
    for _ in $(seq 600); do
        grep -q "$2" "$1" 2> /dev/null && return 0
        sleep 0.05
    done
}
