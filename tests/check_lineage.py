#!/usr/bin/env python3
"""check_lineage.py — checks a run's checkpoint registry (RUN_DIR/coordinator.db) against its
checkpoints, recomputing what the registry must hold from the checkpoints themselves:
  - the lineage is one chain: each checkpoint's parent is the one committed before it
  - every committed checkpoint whose directory is present is the one the group wrote: its id is
    the sha256 of its MANIFEST (the head's must be present; others ckpt.keep_last may remove)
  - the head is of step STEPS (with STEPS `any`, mid-run, it may be of any step, and no
    checkpoint committed yet passes)
  - every unit (shard, epoch) is held once, and the committed ones are exactly the units before
    the head checkpoint's data cursor (epoch * shards + shard_pos of them), each committed by a
    checkpoint of the lineage: every unit of data in the committed lineage exactly once

usage: check_lineage.py DB CHECKPOINTS_DIR STEPS
Prints one summary line; exits 1 naming the first problem."""
import hashlib
import json
import os
import sqlite3
import sys


def main(argv):
    if len(argv) != 3 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    db_path, ckpts, steps = argv[0], argv[1], None if argv[2] == "any" else int(argv[2])
    # one read transaction: a live coordinator's later commits stay out of what is checked
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("BEGIN")
    rows = db.execute("SELECT id, step, parent FROM checkpoints ORDER BY seq").fetchall()
    if not rows and steps is None:
        print("lineage: no checkpoint committed yet")
        return 0
    if not rows:
        return fail("no checkpoint committed")
    parent = rows[0][2]  # the root: "" or, adopted, the checkpoint's own parent is not recorded
    if parent != "":
        return fail(f"the first checkpoint names parent {parent[:16]}, not none")
    for cid, step, par in rows:
        if par != parent:
            return fail(f"checkpoint {cid[:16]} of step {step} has parent {par[:16]}, "
                        f"not {parent[:16]}")
        d = os.path.join(ckpts, "ckpt-%08d" % step)
        if not os.path.exists(d) and step != rows[-1][1]:
            parent = cid
            continue
        with open(os.path.join(d, "MANIFEST"), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != cid:
                return fail(f"step {step}: {d} is not the checkpoint committed ({cid[:16]})")
        parent = cid
    head_id, head_step = rows[-1][0], rows[-1][1]
    if steps is not None and head_step != steps:
        return fail(f"the head is of step {head_step}, not {steps}")
    dup = db.execute("SELECT shard, epoch, COUNT(*) FROM units GROUP BY shard, epoch "
                     "HAVING COUNT(*) > 1").fetchall()
    if dup:
        return fail(f"units held twice: {dup[:3]}")
    stray = db.execute("SELECT COUNT(*) FROM units WHERE state = 3 AND ckpt NOT IN "
                       "(SELECT id FROM checkpoints)").fetchone()[0]
    if stray:
        return fail(f"{stray} unit(s) committed by no checkpoint of the lineage")
    with open(os.path.join(ckpts, "ckpt-%08d" % head_step, "state.json")) as f:
        cur = json.load(f)["data_cursor"]
    n = db.execute("SELECT COUNT(*) FROM shards").fetchone()[0]
    changed = db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'changes'").fetchone()[0]
    if changed:
        changed = db.execute("SELECT COUNT(*) FROM changes WHERE state = 1").fetchone()[0]
    if not changed:
        want = cur["epoch"] * n + cur["shard_pos"]
        committed = db.execute("SELECT epoch * ? + pos FROM units WHERE state = 3", (n,)).fetchall()
        got = sorted(g for (g,) in committed)
        if got != list(range(want)):
            extra = sorted(set(got) - set(range(want)))[:3]
            missing = sorted(set(range(want)) - set(got))[:3]
            return fail(f"committed units are not the {want} before the head's cursor (epoch "
                        f"{cur['epoch']}, shard {cur['shard_pos']}): extra {extra}, missing "
                        f"{missing}")
    else:
        # data added or excluded mid-run: positions follow the plan (an epoch may be longer, an
        # excluded unit has no row), so: every unit before the cursor committed, none after, and
        # every epoch before the cursor's made
        e, p = cur["epoch"], cur["shard_pos"]
        before = "(epoch < ? OR (epoch = ? AND pos < ?))"
        bad = db.execute(f"SELECT epoch, pos, state FROM units WHERE ({before} AND state != 3) "
                         f"OR (NOT {before} AND state = 3) LIMIT 3", (e, e, p) * 2).fetchall()
        if bad:
            return fail(f"units committed out of place around the head's cursor (epoch {e}, "
                        f"shard {p}): (epoch, pos, state) {bad}")
        made = {r[0] for r in db.execute("SELECT DISTINCT epoch FROM units WHERE epoch < ?", (e,))}
        if made != set(range(e)):
            return fail(f"epochs before the head's cursor without units: "
                        f"{sorted(set(range(e)) - made)[:3]}")
        want = db.execute(f"SELECT COUNT(*) FROM units WHERE {before}", (e, e, p)).fetchone()[0]
    per = dict(db.execute("SELECT state, COUNT(*) FROM units GROUP BY state").fetchall())
    print(f"lineage: {len(rows)} checkpoint(s) in one chain to {head_id[:16]} (step {head_step}); "
          f"{want} unit(s) committed once each; units by state {per}")
    return 0


def fail(msg):
    print(f"check_lineage: {msg}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
