"""Live PyTorch oracle for the C trainer: runs ct_oracle_harness and checks it against float64 torch.

For each shape below this script draws random parameters and tokens (seeded numpy), writes the
harness's inputs (config JSON, flat float32 params, int32 tokens), runs
`ct_oracle_harness --config --params --tokens --steps 10 --out`, then rebuilds the same GPT-2 in
float64 PyTorch (tests/oracle/gpt2_torch.py) and replays the same 10 training steps: one full-batch
forward/backward per step (mathematically the same loss and gradient as the harness's micro-batch
accumulation), global grad norm, clipping by min(1, grad_clip / (norm + 1e-6)), the learning-rate
schedule, and torch.optim.AdamW with decay on the 2-D tensors only.

Every comparison uses one error measure, computed per tensor (or per vector of per-step values):

    relative error = max|ours - ref| / max(max|ref|, 1e-12)

checked against these tolerances: step-0 logits and loss 1e-5; every parameter tensor's step-0
gradient (before clipping) 1e-4; the 10 losses, grad norms and learning rates 1e-4; every final
parameter tensor 1e-4. The padded rows of wte (rows >= V) must be exactly 0 in the step-0 gradient
and in the final parameters.

Usage: test_oracle.py --harness build/tests/ct_oracle_harness [--keep DIR]
Prints one line per check; exits 0 when all pass, 1 when any check fails, the harness fails or its
output has the wrong size, 2 on bad usage. --keep DIR keeps every shape's inputs and output there.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_torch  # noqa: E402  (needs the path set above)

N_STEPS = 10
HARNESS_TIMEOUT_S = 600
TOL_LOGITS = 1e-5
TOL_GRAD = 1e-4
TOL_HISTORY = 1e-4
TOL_FINAL = 1e-4

# Each shape is a complete cotrain config: every key the harness reads is written explicitly.
# (a) gradient accumulation over 3 micro-batches, padded vocabulary (101 -> 128), cosine schedule
#     longer than the 10 steps run; (b) one micro-batch of 4 sequences, unpadded vocabulary,
#     linear schedule; (c) constant schedule, no warmup, no clipping, no weight decay, one
#     sequence per micro-batch (3 accumulations), a single head.
# AdamW's eps is 1e-6, not the usual 1e-8, on purpose: the key third of c_attn.bias has an exactly
# zero gradient (adding a constant to every key leaves the softmax unchanged), so a float32
# implementation sees only rounding noise there (~1e-11, vs ~1e-20 in float64) and Adam turns it
# into updates of about lr * noise / eps per step. With eps = 1e-8 that alone moves c_attn.bias by
# 1e-4..2e-4 relative in 10 steps, even for float32 PyTorch itself; with 1e-6 it is 100x smaller,
# and eps still changes the updates enough that a misplaced eps is caught.
SHAPES = {
    "a": {
        "model": {"n_layer": 2, "n_head": 4, "d_model": 64, "seq_len": 37, "vocab_size": 101},
        "train": {"steps": 20, "global_batch": 6, "micro_batch": 2, "lr": 1e-3, "min_lr": 1e-4,
                  "warmup_steps": 3, "schedule": "cosine", "weight_decay": 0.1, "beta1": 0.9,
                  "beta2": 0.95, "eps": 1e-6, "grad_clip": 1.0, "seed": 101},
    },
    "b": {
        "model": {"n_layer": 3, "n_head": 2, "d_model": 48, "seq_len": 64, "vocab_size": 256},
        "train": {"steps": 12, "global_batch": 4, "micro_batch": 4, "lr": 6e-4, "min_lr": 6e-5,
                  "warmup_steps": 2, "schedule": "linear", "weight_decay": 0.1, "beta1": 0.9,
                  "beta2": 0.999, "eps": 1e-6, "grad_clip": 0.5, "seed": 202},
    },
    "c": {
        "model": {"n_layer": 1, "n_head": 1, "d_model": 32, "seq_len": 16, "vocab_size": 70},
        "train": {"steps": 10, "global_batch": 3, "micro_batch": 1, "lr": 2e-3, "min_lr": 0.0,
                  "warmup_steps": 0, "schedule": "constant", "weight_decay": 0.0, "beta1": 0.8,
                  "beta2": 0.99, "eps": 1e-6, "grad_clip": 0.0, "seed": 303},
    },
}


def lr_at(train, step):
    """Learning rate of 0-based `step` under the config's schedule (train.steps is its length)."""
    lr, min_lr, warmup = train["lr"], train["min_lr"], train["warmup_steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if train["schedule"] == "constant":
        return lr
    p = (step - warmup) / max(1, train["steps"] - warmup)
    if train["schedule"] == "cosine":
        return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * p))
    if train["schedule"] == "linear":
        return lr + (min_lr - lr) * p
    raise ValueError(f"unknown schedule {train['schedule']!r}")


def build_model(cfg, dtype):
    """An all-zero GPT2 of the config's shape."""
    m = cfg["model"]
    return gpt2_torch.GPT2(m["n_layer"], m["n_head"], m["d_model"], m["seq_len"], m["vocab_size"], dtype)


def reference(cfg, params, tokens, n_steps):
    """Replay `n_steps` training steps in float64 from float32 `params` (flat) and int32 `tokens`
    (B, T+1). Returns a dict of float64 arrays with the same fields as the harness output."""
    train = cfg["train"]
    model = build_model(cfg, torch.float64)
    model.load_flat(params)
    idx = torch.from_numpy(tokens[:, :-1].astype(np.int64))
    targets = torch.from_numpy(tokens[:, 1:].astype(np.int64))
    opt = torch.optim.AdamW(model.param_groups(train["weight_decay"]), lr=train["lr"],
                            betas=(train["beta1"], train["beta2"]), eps=train["eps"])
    ref = {"losses": [], "norms": [], "lrs": []}
    for step in range(n_steps):
        opt.zero_grad(set_to_none=True)
        logits, loss = model(idx, targets)
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        norm = torch.sqrt(sum((g * g).sum() for g in grads)).item()
        if step == 0:
            ref["logits"] = logits.detach().numpy().copy()
            ref["loss"] = np.array([loss.item()])
            ref["grad"] = model.to_flat(grads=True)
        if train["grad_clip"] > 0:
            scale = min(1.0, train["grad_clip"] / (norm + 1e-6))
            for g in grads:
                g.mul_(scale)
        lr = lr_at(train, step)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        ref["losses"].append(loss.item())
        ref["norms"].append(norm)
        ref["lrs"].append(lr)
    ref["final"] = model.to_flat()
    return {k: np.asarray(v, dtype=np.float64) for k, v in ref.items()}


def split_output(flat, cfg, n_params, n_steps):
    """Cut the harness's flat float32 output into its fields (as float64). Returns (dict, None),
    or (None, reason) when the size is wrong."""
    m = cfg["model"]
    B, T, V = cfg["train"]["global_batch"], m["seq_len"], m["vocab_size"]
    fields = [("logits", (B, T, V)), ("loss", (1,)), ("grad", (n_params,)), ("losses", (n_steps,)),
              ("norms", (n_steps,)), ("lrs", (n_steps,)), ("final", (n_params,))]
    expected = sum(int(np.prod(shape)) for _, shape in fields)
    if flat.size != expected:
        names = " + ".join(n for n, _ in fields)
        return None, f"output has {flat.size} floats, expected {expected} ({names})"
    out, offset = {}, 0
    for name, shape in fields:
        n = int(np.prod(shape))
        out[name] = flat[offset : offset + n].astype(np.float64).reshape(shape)
        offset += n
    return out, None


def rel_err(ours, ref):
    """max|ours - ref| / max(max|ref|, 1e-12); NaN or inf in `ours` yields inf."""
    diff = np.max(np.abs(ours - ref))
    if not np.isfinite(diff):
        return math.inf
    return diff / max(np.max(np.abs(ref)), 1e-12)


class Report:
    """Prints one line per check and counts the failures."""

    def __init__(self):
        self.failed = 0

    def line(self, shape, ok, what, detail):
        """Record one check's outcome and print it."""
        self.failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} [{shape}] {what:<44} {detail}")

    def check(self, shape, what, err, tol):
        """Record `err <= tol` as the check `what` of `shape`."""
        self.line(shape, err <= tol, what, f"rel {err:9.3e}  tol {tol:.0e}")

    def fail(self, shape, what, reason):
        """Record a check that could not be measured."""
        self.line(shape, False, what, reason)

    def per_tensor(self, shape, what, names, sizes, ours, ref, tol):
        """Check a flat vector tensor by tensor: a FAIL line naming every failing tensor, then one
        line with the worst tensor's error."""
        worst, worst_name, offset = -1.0, None, 0
        for name, n in zip(names, sizes):
            err = rel_err(ours[offset : offset + n], ref[offset : offset + n])
            offset += n
            if err > tol:
                print(f"FAIL [{shape}] {what + ' ' + name:<44} rel {err:9.3e}  tol {tol:.0e}")
            if err > worst:
                worst, worst_name = err, name
        self.check(shape, f"{what} (worst: {worst_name})", worst, tol)

    def exactly_zero(self, shape, what, values):
        """Record that every element of `values` is exactly 0."""
        nonzero = int(np.count_nonzero(values))
        self.line(shape, nonzero == 0, what, f"{nonzero} nonzero of {values.size}")


def run_shape(harness, shape, cfg, workdir, report):
    """Write the shape's inputs into `workdir`, run the harness, compare with the reference."""
    m = cfg["model"]
    rng = np.random.default_rng(cfg["train"]["seed"])
    layout_model = build_model(cfg, torch.float64)
    names = [n for n, _ in layout_model.flat_params()]
    sizes = [p.numel() for _, p in layout_model.flat_params()]
    params = gpt2_torch.random_flat(layout_model, rng)
    tokens = rng.integers(0, m["vocab_size"], size=(cfg["train"]["global_batch"], m["seq_len"] + 1),
                          dtype=np.int32)
    paths = {k: os.path.join(workdir, f"{shape}_{k}")
             for k in ("config.json", "params.bin", "tokens.bin", "out.bin")}
    with open(paths["config.json"], "w") as f:
        json.dump(cfg, f, indent=1)
    params.astype("<f4").tofile(paths["params.bin"])
    tokens.astype("<i4").tofile(paths["tokens.bin"])
    if os.path.exists(paths["out.bin"]):
        os.remove(paths["out.bin"])

    cmd = [harness, "--config", paths["config.json"], "--params", paths["params.bin"],
           "--tokens", paths["tokens.bin"], "--steps", str(N_STEPS), "--out", paths["out.bin"]]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=HARNESS_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        report.fail(shape, "harness", str(e))
        return
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        report.fail(shape, "harness", f"exit {proc.returncode}: {' '.join(cmd)}\n{tail}")
        return
    if not os.path.exists(paths["out.bin"]):
        report.fail(shape, "harness", f"exit 0 but wrote no {paths['out.bin']}")
        return
    ours, reason = split_output(np.fromfile(paths["out.bin"], dtype="<f4"), cfg, sum(sizes), N_STEPS)
    if ours is None:
        report.fail(shape, "output size", reason)
        return

    ref = reference(cfg, params, tokens, N_STEPS)
    report.check(shape, "logits (step 0)", rel_err(ours["logits"], ref["logits"]), TOL_LOGITS)
    report.check(shape, "loss (step 0)", rel_err(ours["loss"], ref["loss"]), TOL_LOGITS)
    report.per_tensor(shape, "grad", names, sizes, ours["grad"], ref["grad"], TOL_GRAD)
    steps = f"(steps 0..{N_STEPS - 1})"
    report.check(shape, f"losses {steps}", rel_err(ours["losses"], ref["losses"]), TOL_HISTORY)
    report.check(shape, f"grad norms {steps}", rel_err(ours["norms"], ref["norms"]), TOL_HISTORY)
    report.check(shape, f"lrs {steps}", rel_err(ours["lrs"], ref["lrs"]), TOL_HISTORY)
    report.per_tensor(shape, "final", names, sizes, ours["final"], ref["final"], TOL_FINAL)
    # wte is first in the layout: its padded rows are the values from V*C to Vp*C.
    pad = slice(m["vocab_size"] * m["d_model"], gpt2_torch.padded_vocab(m["vocab_size"]) * m["d_model"])
    report.exactly_zero(shape, "grad padded wte rows == 0", ours["grad"][pad])
    report.exactly_zero(shape, "final params padded wte rows == 0", ours["final"][pad])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--harness", required=True, help="path to the ct_oracle_harness binary")
    parser.add_argument("--keep", metavar="DIR", help="write inputs and outputs here and keep them")
    args = parser.parse_args()
    if not os.access(args.harness, os.X_OK):
        print(f"error: {args.harness} is not an executable; build it first "
              "(cmake --build build --target ct_oracle_harness)", file=sys.stderr)
        return 1
    torch.set_num_threads(1)  # the shapes are tiny; more threads would only contend with the harness
    report = Report()
    with tempfile.TemporaryDirectory(prefix="ct_oracle_") as tmp:
        workdir = tmp
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            workdir = args.keep
        for shape, cfg in SHAPES.items():
            run_shape(os.path.abspath(args.harness), shape, cfg, workdir, report)
    print(f"oracle: FAILED, {report.failed} check(s)" if report.failed else "oracle: all checks passed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
