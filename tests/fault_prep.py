#!/usr/bin/python3
"""fault_prep.py — `cotrain prep` under fault injection, through the real binary (COTRAIN_FAULT).

For each kind of call (alloc, write, fsync, rename) the Nth call is failed, N = 1, 2, ... until a
run makes no call of that kind that fails; each alone ("write:N") and from the Nth on
("write:N+", a disk that stays full). Three starting points for --out:
  fresh      an empty folder
  replace    an earlier prep's output of other documents (--force)
  same-name  an earlier prep's output of the same texts under other ids (--force): the same
             tokens, so the same shard names, with other bytes
After every faulted run:
  - it exits 1 (a runtime failure, not "bad input") and says why: "(injected)" or "out of memory";
    no crash. (A fault the run absorbed, exit 0, must have given the right output.)
  - --out holds what it held before, file for file and byte for byte: no shard, temp file or
    manifest of the failed run (same-name: once the new shards started to replace the earlier
    ones, the earlier manifest is gone and every file left is whole). The one exception is the
    fsync of the folder after manifest.json was renamed into place: the run then reports the
    failure with the new output complete, byte-identical to a clean run's.
  - an unfaulted rerun (--force) gives output byte-identical to a clean run's. (Checked when
    --out differs from how it started, and after every write, fsync and rename fault; an --out
    that is byte-identical to how it started gives the clean run's output by construction.)
Allocations are swept from a fresh folder (each alone and from the Nth on) and in the same-name
case (each alone), where the earlier output adds the allocations of its own.

Usage: fault_prep.py PATH/TO/cotrain  (exit 0: all checks passed; 1: a check failed)
"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

COTRAIN = os.path.abspath(sys.argv[1]) if len(sys.argv) == 2 else sys.exit(__doc__)
KINDS = ("alloc", "write", "fsync", "rename")
SUMMARY = re.compile(r"fault injection \((?P<spec>[^)]*)\): (?P<fired>\d+) failures? injected; "
                     r"calls: alloc (?P<alloc>\d+), write (?P<write>\d+), fsync (?P<fsync>\d+), "
                     r"rename (?P<rename>\d+)")
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def snapshot(d):
    """{name: bytes} of the files in folder d ({} when it does not exist)."""
    if not os.path.isdir(d):
        return {}
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


def restore(d, files):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def prep(work, inputs, out, fault=None, force=False):
    """Runs `cotrain prep` in folder work; returns (exit code, stderr, summary dict or None)."""
    env = dict(os.environ)
    env.pop("COTRAIN_FAULT", None)
    env["OMP_WAIT_POLICY"] = "passive"  # two runs at once on two cores: spinning threads cost
    if fault:
        env["COTRAIN_FAULT"] = fault
    args = [COTRAIN, "prep", *inputs, "--out", out, "--tokenizer", "bytes", "--shard-tokens",
            "700", "--split", "paragraphs", "--threads", "2"] + (["--force"] if force else [])
    p = subprocess.run(args, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    err = p.stderr.decode("utf-8", "replace")
    m = SUMMARY.search(err)
    summary = {k: int(v) for k, v in m.groupdict().items() if k != "spec"} if m else None
    return p.returncode, err, summary


def differs(got, want):
    """A short description of how file maps got and want differ, or None."""
    if got == want:
        return None
    extra = sorted(set(got) - set(want))
    missing = sorted(set(want) - set(got))
    changed = sorted(n for n in set(got) & set(want) if got[n] != want[n])
    return f"extra {extra}, missing {missing}, changed {changed}"


def write_inputs(work):
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
             "pi rho sigma tau upsilon phi chi psi omega").split()
    def text(seed, n):
        return " ".join(words[(seed * 7 + i * 13) % len(words)] for i in range(n))
    with open(os.path.join(work, "a.txt"), "w") as f:
        f.write("\n\n".join(text(s, 40 + s * 9) for s in range(4)) + "\n")
    for name, prefix in (("b.jsonl", "doc"), ("b2.jsonl", "other")):
        with open(os.path.join(work, name), "w") as f:
            for s in range(3):
                f.write(json.dumps({"text": text(100 + s, 50), "id": f"{prefix}-{s}"}) + "\n")
    with open(os.path.join(work, "c.txt"), "w") as f:
        f.write("\n\n".join(text(200 + s, 60) for s in range(4)) + "\n")


def check_run(case, fault, rc, err, summary, before, after, clean, earlier_names):
    """The checks after one faulted run. Returns whether a fault fired."""
    what = f"{case} COTRAIN_FAULT={fault}"
    if summary is None:
        fail(f"{what}: exit {rc}, no fault-injection summary on stderr (did it crash?):\n{err}")
        return False
    if summary["fired"] == 0:
        if rc != 0:
            fail(f"{what}: no fault fired, yet exit {rc}:\n{err}")
        elif differs(after, clean):
            fail(f"{what}: no fault fired; output differs from a clean run: "
                 f"{differs(after, clean)}")
        return False
    if rc == 0:  # absorbed (a JSON line's parse is retried once): the output must be right
        if differs(after, clean):
            fail(f"{what}: exit 0 after an injected fault, and the output differs from a clean "
                 f"run: {differs(after, clean)}")
        return True
    if rc != 1:
        fail(f"{what}: exit {rc}, want 1 (a runtime failure){' (killed by a signal)' if rc < 0 else ''}:\n{err}")
    error_lines = [l for l in err.splitlines() if " ERROR " in l]
    if not error_lines or not any("(injected)" in l or "out of memory" in l for l in error_lines):
        fail(f"{what}: no clear error (\"(injected)\" or \"out of memory\") on stderr:\n{err}")
    if "the new manifest.json and its shards are in place" in err:
        if differs(after, clean):
            fail(f"{what}: reported the new output in place, but it differs from a clean run: "
                 f"{differs(after, clean)}")
        return True
    if not differs(after, before):
        return True
    if earlier_names is not None and "manifest.json" not in after:
        # same-name, after the earlier manifest was withdrawn: whole files only, each the
        # earlier one or the new one of that name, no temp files
        for name, data in after.items():
            if data != before.get(name) and data != clean.get(name):
                fail(f"{what}: {name} is neither the earlier file nor the new one")
        if set(after) - set(before) - set(clean):
            fail(f"{what}: left {sorted(set(after) - set(before) - set(clean))}")
        return True
    fail(f"{what}: --out is not as it was before the run: {differs(after, before)}\n{err}")
    return True


def sweep(work, case, inputs, earlier, clean, kind, persistent, pool):
    """Fails the Nth call of kind for N = 1, 2, ...; returns how many calls of it a run makes."""
    earlier_names = set(earlier) if case == "same-name" else None

    def one(n):
        job = os.path.join(work, f"{case}-{kind}-{'p' if persistent else 's'}-{n}")
        out = os.path.join(job, "out")
        restore(out, earlier)
        fault = f"{kind}:{n}{'+' if persistent else ''}"
        rc, err, summary = prep(work, inputs, out, fault, force=bool(earlier))
        after = snapshot(out)
        fired = check_run(case, fault, rc, err, summary, earlier, after, clean, earlier_names)
        if fired and (kind != "alloc" or after != earlier):
            rc2, err2, _ = prep(work, inputs, out, force=True)
            if rc2 != 0 or differs(snapshot(out), clean):
                fail(f"{case} {fault}: the unfaulted rerun (exit {rc2}) differs from a clean "
                     f"run: {differs(snapshot(out), clean)}\n{err2}")
        shutil.rmtree(job, ignore_errors=True)
        return fired, summary

    # how many calls a run makes, then all of them in parallel, then on until one does not fire
    out = os.path.join(work, f"count-{case}")
    restore(out, earlier)
    _, _, counted = prep(work, inputs, out, "count", force=bool(earlier))
    shutil.rmtree(out, ignore_errors=True)
    total = counted[kind] if counted else 0
    results = list(pool.map(one, range(1, total + 1)))
    n = total + 1
    while True:
        fired, _ = one(n)
        if not fired:
            break
        n += 1
    if any(not fired for fired, _ in results):
        first = 1 + [fired for fired, _ in results].index(False)
        fail(f"{case} {kind}:{first}: no fault fired, though a run makes {total} such calls")
    return n - 1


def main():
    with tempfile.TemporaryDirectory(prefix="ct_fault_prep_") as work:
        write_inputs(work)
        x, y, z = ["a.txt", "b.jsonl"], ["c.txt"], ["a.txt", "b2.jsonl"]
        refs = {}
        for name, inputs in (("x", x), ("y", y), ("z", z)):
            out = os.path.join(work, f"ref-{name}")
            rc, err, _ = prep(work, inputs, out)
            if rc != 0:
                fail(f"clean prep of {inputs}: exit {rc}:\n{err}")
                return
            refs[name] = snapshot(out)
        x_shards = {n for n in refs["x"] if n.endswith(".h5")}
        z_shards = {n for n in refs["z"] if n.endswith(".h5")}
        same = {n for n in x_shards & z_shards if refs["x"][n] == refs["z"][n]}
        other = {n for n in x_shards & z_shards if refs["x"][n] != refs["z"][n]}
        if len(x_shards) < 3 or not same or not other:
            fail(f"inputs: want >= 3 shards, and shards of the same name with the same and with "
                 f"other bytes in the two same-name runs; got {len(x_shards)} shards, "
                 f"{len(same)} same, {len(other)} other")
        io = ("write", "fsync", "rename")
        cases = (("fresh", {}, KINDS, KINDS),
                 ("replace", refs["y"], io, io),
                 ("same-name", refs["z"], KINDS, io))
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for case, earlier, single, persistent in cases:
                for mode, kinds in (("single", single), ("persistent", persistent)):
                    counts = {k: sweep(work, case, x, earlier, refs["x"], k, mode == "persistent",
                                       pool) for k in kinds}
                    print(f"{case}, {mode} faults: " +
                          ", ".join(f"{counts[k]} {k}" for k in kinds) + " calls failed in turn")
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
