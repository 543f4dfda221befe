#!/usr/bin/env python3
"""check_deltas.py — no acknowledged delta lost, none applied more often than trained.

Usage: check_deltas.py LOG GROUP=WORKER_LOG [GROUP=WORKER_LOG ...] [--label TEXT]

LOG is a volunteer run's public log.jsonl; each WORKER_LOG the stderr of a group's
`cotrain-worker --join` (its "delta of version V sent" and "version V: inner step S/H" lines).
A delta is named by (group, the version it started from). A group killed and joined again may
train from the same version twice (the second delta is another, on other data), so for each name:

    deltas acknowledged <= deltas in the log's outer_step records <= rounds trained to their end

The left side: an acknowledged delta is in an outer step (merged or refused with its reason),
never lost. The right side: none is applied twice (a retried upload after a coordinator restart
must get the stored answer, not a second merge). Exits 1 naming the first delta that breaks it.
Used by volunteer_crash_e2e.sh (the coordinator killed) and crash_harness.sh (a group killed).
"""
import collections
import json
import re
import sys


def main(argv):
    label = "check_deltas"
    if "--label" in argv:
        i = argv.index("--label")
        label = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) < 2 or any("=" not in a for a in argv[1:]):
        sys.exit(__doc__.split("\n\n")[1])
    logged = collections.Counter()
    steps = 0
    for line in open(argv[0]):
        r = json.loads(line)
        if r["type"] == "outer_step":
            steps += 1
            for c in r["contributors"] + r["rejected"]:
                logged[c["group"], c["base"]] += 1
    acked, trained = collections.Counter(), collections.Counter()
    for arg in argv[1:]:
        group, path = arg.split("=", 1)
        text = open(path).read()
        for v in re.findall(r"delta of version (\d+) sent", text):
            acked[group, int(v)] += 1
        for v, s, h in re.findall(r"version (\d+): inner step (\d+)/(\d+),", text):
            trained[group, int(v)] += s == h
    for key in sorted(set(acked) | set(logged)):
        if acked[key] > logged[key]:
            sys.exit("%s: %s: %d delta(s) acknowledged, %d in the log: one was lost"
                     % (label, key, acked[key], logged[key]))
        if logged[key] > trained[key]:
            sys.exit("%s: %s: %d delta(s) in the log, %d rounds trained: applied twice"
                     % (label, key, logged[key], trained[key]))
    print("%s: %d outer steps; %d deltas acknowledged, each in the log, none more often than "
          "trained" % (label, steps, sum(acked.values())))


if __name__ == "__main__":
    main(sys.argv[1:])
