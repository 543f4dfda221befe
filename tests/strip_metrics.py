"""strip_metrics.py FILE — prints a metrics.jsonl without its timing fields (tokens_per_s, mfu),
keys sorted, one record a line: what two runs of the same training must agree on bit for bit."""
import json
import sys

for line in open(sys.argv[1]):
    r = json.loads(line)
    r.pop("tokens_per_s")
    r.pop("mfu")
    print(json.dumps(r, sort_keys=True))
