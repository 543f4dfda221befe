#!/usr/bin/env python3
"""layering.py — checks the direction of the libraries (docs/ARCHITECTURE.md): a folder's code
includes only headers of the libraries below it, and CMakeLists.txt links each library only with
those. A header belongs to the folder that holds its .c (include/cotrain/X.h <-> FOLDER/X.c; a
private header FOLDER/X.h to FOLDER); header-only types are listed in HEADER_ONLY.

usage: layering.py [ROOT]          check the tree at ROOT (default: this repository)
       layering.py --self-test     also prove the check fails: a copy of the tree where comm/
                                   includes the model and core/ links the trainer must fail
Exit status 0 when the layering holds, 1 with one line per violation when it does not."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

# What each folder may use, itself included. Lower libraries never use higher ones.
ALLOWED = {
    "core": {"core"},
    "comm": {"comm", "core"},
    "data": {"data", "core"},
    "ckpt": {"ckpt", "data", "core"},
    "coordinator": {"coordinator", "ckpt", "data", "comm", "core"},
    "trainer": {"trainer", "coordinator", "ckpt", "data", "comm", "core"},
    "tools": {"tools", "coordinator", "trainer", "ckpt", "data", "comm", "core"},
}
LIBRARY = {"cotrain_" + f: f for f in ALLOWED if f not in ("tools", "coordinator")}
LIBRARY["cotrain_coord"] = "coordinator"
HEADER_ONLY = {"tensor.h": "core"}
# Files held to less than their folder: what checks a run's public record never uses the model
# (DESIGN: `cotrain verify` never links it), so anyone can audit a run without the trainer.
FILE_ALLOWED = {
    "tools/verify.c": {"tools", "ckpt", "data", "core"},
    "tools/history.c": {"tools", "core"},
    "tools/replay.c": {"tools", "ckpt", "core"},
    "tools/lineage.c": {"tools", "data", "core"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def owners(root):
    """header name -> folder that implements it"""
    own = dict(HEADER_ONLY)
    for folder in ALLOWED:
        for name in os.listdir(os.path.join(root, folder)):
            if name.endswith(".c") or name.endswith(".h"):
                own.setdefault(name[:-2] + ".h", folder)
    return own


def check(root):
    own, bad = owners(root), []
    for folder, allowed in ALLOWED.items():
        for name in sorted(os.listdir(os.path.join(root, folder))):
            if not (name.endswith(".c") or name.endswith(".h")):
                continue
            with open(os.path.join(root, folder, name), encoding="utf-8") as f:
                text = f.read()
            allowed_here = FILE_ALLOWED.get(f"{folder}/{name}", allowed)
            for inc in INCLUDE.findall(text):
                base = os.path.basename(inc)
                if inc.endswith(".inc"):
                    continue
                owner = own.get(base)
                if owner is None:
                    bad.append(f"{folder}/{name}: includes {inc}, a header no folder implements")
                elif owner not in allowed_here:
                    bad.append(f"{folder}/{name}: includes {inc} of {owner}/, which {folder}/"
                               f"{'' if allowed_here is allowed else name + ' '}may not use "
                               f"(allowed: {', '.join(sorted(allowed_here))})")
    with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
        cmake = f.read()
    for m in re.finditer(r"target_link_libraries\(\s*(cotrain_\w+)([^)]*)\)", cmake):
        lib, deps = m.group(1), re.findall(r"cotrain_\w+", m.group(2))
        if lib not in LIBRARY:
            continue
        for d in deps:
            if d in LIBRARY and LIBRARY[d] not in ALLOWED[LIBRARY[lib]]:
                bad.append(f"CMakeLists.txt: {lib} links {d}, a library it may not use")
    return bad


def self_test(root):
    """The check must catch an upward include and an upward link."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "tree")
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns(
            "build*", "node_modules", ".git"))
        with open(os.path.join(copy, "comm", "comm.c"), "a", encoding="utf-8") as f:
            f.write('\n#include "cotrain/model.h"\n')
        with open(os.path.join(copy, "tools", "verify.c"), "a", encoding="utf-8") as f:
            f.write('\n#include "cotrain/model.h"\n')
        with open(os.path.join(copy, "CMakeLists.txt"), "a", encoding="utf-8") as f:
            f.write("\ntarget_link_libraries(cotrain_core PUBLIC cotrain_trainer)\n")
        bad = check(copy)
        want = ["comm/comm.c: includes cotrain/model.h of trainer/",
                "tools/verify.c: includes cotrain/model.h of trainer/",
                "CMakeLists.txt: cotrain_core links cotrain_trainer"]
        missing = [w for w in want if not any(b.startswith(w) for b in bad)]
        if missing:
            print("layering: self-test failed: the check did not report:", *missing, sep="\n  ")
            return 1
        # and the configure-time check in CMakeLists.txt refuses the same link line
        r = subprocess.run(["cmake", "-S", copy, "-B", os.path.join(tmp, "b")],
                           capture_output=True, text=True)
        if r.returncode == 0 or "layering: cotrain_core links cotrain_trainer" not in r.stderr:
            print("layering: self-test failed: cmake accepted core linking the trainer\n"
                  + r.stderr[-2000:])
            return 1
    print("layering: self-test passed (an upward include and link are both refused)")
    return 0


def main():
    args = sys.argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    selftest = "--self-test" in args
    args = [a for a in args if a != "--self-test"]
    root = args[0] if args else here
    bad = check(root)
    for b in bad:
        print("layering:", b)
    if bad:
        return 1
    print(f"layering: {len(ALLOWED)} folders follow the layering")
    return self_test(root) if selftest else 0


if __name__ == "__main__":
    sys.exit(main())
