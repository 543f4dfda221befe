#!/usr/bin/env bash
# dashboard_e2e.sh — the dashboard in a real browser (headless Debian chromium), checked through
# its DOM, not only a screenshot:
#   - live: a coordinator serving --http, an attached worker sharing its RUN_DIR; while the run
#     goes on the page at the coordinator's URL has plots with points (data-points), the
#     checkpoint table lists the checkpoints the ledger committed, every log line shown is
#     checked in the browser (no failure), and the browser logs no console message or error
#   - static: after the run, RUN_DIR/public/index.html opened from disk (file://) shows the same,
#     with every logged step plotted
#   - the JSON API: /api/status, /api/metrics?since=, a 404 and a 405
#   - a plain run (no coordinator flag) serves the same with cotrain-worker --http
# Screenshots are kept in ARTIFACTS (default ./artifacts): dashboard-live.png, dashboard-static.png.
# Usage: dashboard_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain PATH/TO/cotrain-coordinator
set -euo pipefail
worker=$1
cotrain=$2
coord=$3
art=${ARTIFACTS:-$PWD/artifacts}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "SKIP: no chromium (scripts/setup installs it)"
    exit 77
fi
# shellcheck source=tests/coord_lib.sh
. "$(dirname "$0")/coord_lib.sh"
coord_setup
mkdir -p "$art"

coord_corpus
sets=(--set train.steps=60 --set train.warmup_steps=2 --set log.every=2 --set train.global_batch=8
      --set train.micro_batch=4 --set ckpt.every=10 --set ckpt.keep_last=0
      --set data.eval_shards=1 --set log.eval_every=10)

# open URL OUT: the DOM after the page ran (its timers given 8 s of virtual time) in OUT.html,
# the browser's log in OUT.log, a screenshot in OUT.png
open_page() {
    local url=$1 out=$2 flags=(--headless=new --no-sandbox --disable-gpu --no-first-run
        --user-data-dir="$tmp/profile" --virtual-time-budget=8000)
    timeout 120 "$browser" "${flags[@]}" --enable-logging=stderr --v=0 --dump-dom "$url" \
        > "$out.html" 2> "$out.log" || fail "chromium could not open $url"
    timeout 120 "$browser" "${flags[@]}" --window-size=1280,2200 --screenshot="$out.png" "$url" \
        > /dev/null 2>&1 || fail "chromium could not take a screenshot of $url"
}

# check_page OUT DB all|prefix: the DOM's plots, checkpoint table (all the ledger's checkpoints, or
# during the run the first of them: the page is up to a second behind) and log verdicts; and no
# console messages
check_page() {
    /usr/bin/python3 - "$1.html" "$2" "$3" <<'EOF' || fail "the page at $1"
import html.parser, re, sqlite3, sys
dom = open(sys.argv[1]).read()
points = {m.group(1): int(m.group(2)) for m in
          re.finditer(r'id="(plot-[a-z-]+)"[^>]*data-points="(\d+)"', dom)}
assert len(points) == 6 and all(n > 0 for n in points.values()), f"plots: {points}"
ids = [r[0] for r in sqlite3.connect(sys.argv[2]).execute("SELECT id FROM checkpoints ORDER BY seq")]
table = dom[dom.index('id="checkpoints"'):dom.index('id="log"')]
shown = re.findall(r'title="([0-9a-f]{64})"', table)[::-1]  # newest first on the page
if sys.argv[3] == "prefix":
    assert len(shown) >= 2 and shown == ids[:len(shown)], f"checkpoints shown {shown}, committed {ids}"
else:
    assert ids and shown == ids, f"checkpoints shown {len(shown)}, committed {len(ids)}"
summary = re.search(r'id="log-summary">\(the last (\d+) of (\d+) records; (\d+) checked here\)<', dom)
assert summary, "no log summary"
assert summary.group(1) == summary.group(3) and "FAILED" not in dom, summary.group(0)
groups = dom[dom.index('id="groups"'):dom.index('id="data"')]
if sys.argv[3] == "all":
    assert f"in {len(ids)} checkpoint(s)" in groups, "the groups table shows no credit"
print(f"plots {points}; {len(shown)} checkpoints; {summary.group(3)} log lines checked")
EOF
    if grep -E "CONSOLE|Uncaught" "$1.log"; then fail "$1: the browser logged the lines above"; fi
}

# live, during the run
coord_start "$tmp/coord.out" "$tmp/coord.err" "$coord" --config tiny --data "$tmp/data" \
    --out "$tmp/run" "${sets[@]}" --bind tcp://127.0.0.1:0 --http 127.0.0.1:0
url=$(sed -n 's/^dashboard at //p' "$tmp/coord.out")
[ -n "$url" ] || fail "the coordinator printed no dashboard address"
"$worker" --data "$tmp/data" --out "$tmp/run" --coordinator "$ep" > /dev/null 2> "$tmp/w.err" &
wpid=$!
coord_wait_line "$tmp/w.err" "checkpoint .* of step 20 committed"
sleep 1.2 # status.json is rewritten at most once a second
open_page "$url" "$tmp/live"
check_page "$tmp/live" "$tmp/run/coordinator.db" prefix
kill -0 "$wpid" 2> /dev/null || echo "note: the run had finished before the live page was read"
cp "$tmp/live.png" "$art/dashboard-live.png"
wait $wpid || { tail -n 20 "$tmp/w.err"; fail "the run"; }
wpid=

# the API
status_done() {
    curl -fs "${url}api/status" | /usr/bin/python3 -c 'import json, sys
s = json.load(sys.stdin)
assert s["checkpoints"][-1]["step"] == 60 and s["run"]["head_seq"] > 0, s["checkpoints"]
per_step = s["config"]["train"]["global_batch"] * s["config"]["model"]["seq_len"]
assert [(c["group"], c["commits"], c["steps"], c["tokens"]) for c in s["credit"]] == \
    [("main", len(s["checkpoints"]), 60, 60 * per_step)], s["credit"]'
}
for _ in $(seq 50); do status_done 2> /dev/null && break; sleep 0.2; done # rewritten each second
status_done || fail "/api/status"
# (the coordinator writes the last lines a moment after their transaction)
for _ in $(seq 100); do
    [ "$(curl -fs "${url}api/metrics?since=56" | wc -l)" -eq 2 ] && break
    sleep 0.1
done
[ "$(curl -fs "${url}api/metrics?since=56" | wc -l)" -eq 2 ] || fail "/api/metrics?since=56"
[ "$(curl -s -o /dev/null -w '%{http_code}' "${url}nope")" = 404 ] || fail "a 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "${url}api/status")" = 405 ] || fail "a 405"
kill "$cpid"
wait "$cpid" 2> /dev/null || true
cpid=

# static, from disk, after the run
open_page "file://$tmp/run/public/index.html" "$tmp/static"
check_page "$tmp/static" "$tmp/run/coordinator.db" all
grep -q 'id="plot-loss"[^>]*data-points="30"' "$tmp/static.html" \
    || fail "the static page does not plot the 30 logged steps"
cp "$tmp/static.png" "$art/dashboard-static.png"
# a plain run (embedded coordinator) serves the same page with --http
"$worker" --config tiny --data "$tmp/data" --out "$tmp/plain" "${sets[@]}" --set train.steps=20 \
    --http 127.0.0.1:0 > /dev/null 2> "$tmp/plain.err" &
wpid=$!
coord_wait_line "$tmp/plain.err" "dashboard at "
purl=$(sed -n 's/.*dashboard at //p' "$tmp/plain.err")
curl -fs "${purl}api/status" | /usr/bin/python3 -c 'import json, sys
assert json.load(sys.stdin)["run"]["fingerprint"]' || fail "the plain run's --http dashboard"
wait $wpid || { tail -n 20 "$tmp/plain.err"; fail "the plain run with --http"; }
wpid=
echo "dashboard_e2e: all checks passed (screenshots in $art)"
