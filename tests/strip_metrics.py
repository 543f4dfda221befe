"""strip_metrics.py FILE [--drop-group] — prints a metrics.jsonl without its timing fields
(tokens_per_s, mfu), keys sorted, one record a line: what two runs of the same training must
agree on bit for bit. --drop-group also leaves out the group's name (to compare a run attached
to a coordinator, whose records carry its group's name, with one that is not)."""
import json
import sys

drop = ["tokens_per_s", "mfu"] + (["group"] if "--drop-group" in sys.argv[2:] else [])
for line in open(sys.argv[1]):
    r = json.loads(line)
    for k in drop:
        r.pop(k)
    print(json.dumps(r, sort_keys=True))
