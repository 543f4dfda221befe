#!/usr/bin/env python3
"""test_outer.py — the volunteer mode's numbers against NumPy and PyTorch, through
tests/outer_harness.c (the real comm/delta.c and coordinator/outer.c):
  - bf16: bit-exact to torch's float32 -> bfloat16 (round to nearest even)
  - int8: bit-exact to a NumPy re-computation (blocks of 256, scale max|x|/127, round half even);
    the error of each value at most half its block's scale
  - mean (weighted), trimmed mean and median: to NumPy's within float32 rounding
  - outer step: to torch.optim.SGD(lr=0.7, momentum=0.9, nesterov=True) over 5 steps
Usage: test_outer.py --harness PATH/TO/outer_harness"""
import argparse, os, subprocess, sys, tempfile

import numpy as np
import torch

BLOCK = 256
failed = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failed.append(what)


def run(*args):
    subprocess.run([str(a) for a in args], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--harness", required=True)
    h = ap.parse_args().harness
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp()
    f = lambda name: os.path.join(tmp, name)

    # codecs: values over many magnitudes, a block of zeros, a partial last block
    n = 5 * BLOCK + 77
    x = (rng.standard_normal(n) * np.exp(rng.uniform(-12, 4, n))).astype(np.float32)
    x[BLOCK:2 * BLOCK] = 0
    x[3 * BLOCK + 5] = 3.0e38  # near float32's largest: bf16 clamps it
    x.tofile(f("x"))
    run(h, "codec", "f32", n, f("x"), f("e"), f("d"))
    check(np.array_equal(np.fromfile(f("d"), np.float32), x), "f32 round trip is exact")
    run(h, "codec", "bf16", n, f("x"), f("e"), f("d"))
    want = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    want[np.isinf(want)] = np.copysign(np.float32(3.3895314e38), x[np.isinf(want)])  # clamped
    got = np.fromfile(f("d"), np.float32)
    check(np.array_equal(got, want), "bf16 = torch's bfloat16 (round to nearest even), bit for bit")
    check(os.path.getsize(f("e")) == 2 * n, "bf16 is 2 bytes a value")
    run(h, "codec", "int8", n, f("x"), f("e"), f("d"))
    nb = (n + BLOCK - 1) // BLOCK
    pad = np.zeros(nb * BLOCK, np.float32)
    pad[:n] = x
    blocks = pad.reshape(nb, BLOCK)
    scale = (np.abs(blocks).max(axis=1) / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    q = np.where(scale[:, None] > 0, np.rint(blocks / safe[:, None]), 0).clip(-127, 127)
    want = (q.astype(np.float32) * scale[:, None]).reshape(-1)[:n]
    got = np.fromfile(f("d"), np.float32)
    check(np.array_equal(got, want), "int8 = NumPy's blocks of 256 with scale max|x|/127, bit for bit")
    enc = np.fromfile(f("e"), np.uint8)
    check(len(enc) == 4 * nb + n and np.array_equal(enc[:4 * nb].view(np.float32), scale),
          "int8 layout: the scales, then one byte a value")
    err = np.abs(got - x).reshape(-1)
    bound = np.repeat(scale, BLOCK)[:n] * 0.5 * (1 + 1e-6)
    check(bool(np.all(err <= bound + 1e-45)), "int8 error at most half a step of its block")

    # aggregation of k deltas
    k, n = 9, 4099
    d = rng.standard_normal((k, n)).astype(np.float32)
    d[2] *= 50  # an outlier group
    d.tofile(f("d"))
    w = rng.uniform(1, 10, k)
    w.tofile(f("w"))
    run(h, "aggregate", "mean", 0, k, n, f("d"), f("w"), f("o"))
    want = (np.average(d.astype(np.float64), axis=0, weights=w)).astype(np.float32)
    check(np.allclose(np.fromfile(f("o"), np.float32), want, rtol=2e-7, atol=0),
          "weighted mean = NumPy's")
    run(h, "aggregate", "trimmed_mean", 0.25, k, n, f("d"), "-", f("o"))
    t = int(0.25 * k)
    srt = np.sort(d.astype(np.float64), axis=0)
    want = srt[t:k - t].mean(axis=0).astype(np.float32)
    check(np.allclose(np.fromfile(f("o"), np.float32), want, rtol=2e-7, atol=0),
          "trimmed mean (2 of 9 dropped at each end) = NumPy's")
    for kk in (k, k - 1):
        d[:kk].tofile(f("dk"))
        run(h, "aggregate", "median", 0, kk, n, f("dk"), "-", f("o"))
        want = np.median(d[:kk], axis=0).astype(np.float32)
        check(np.array_equal(np.fromfile(f("o"), np.float32), want), f"median of {kk} = NumPy's")

    # the outer step against PyTorch's SGD with Nesterov momentum
    n, steps = 1000, 5
    theta = rng.standard_normal(n).astype(np.float32)
    g = (rng.standard_normal((steps, n)) * 0.1).astype(np.float32)
    theta.tofile(f("t"))
    g.tofile(f("g"))
    run(h, "step", 0.7, 0.9, n, steps, f("t"), f("g"), f("o"))
    p = torch.nn.Parameter(torch.from_numpy(theta.copy()))
    opt = torch.optim.SGD([p], lr=0.7, momentum=0.9, nesterov=True)
    for s in range(steps):
        p.grad = torch.from_numpy(g[s].copy())
        opt.step()
    want = p.detach().numpy()
    got = np.fromfile(f("o"), np.float32)
    check(np.allclose(got, want, rtol=1e-6, atol=1e-6),
          f"outer step = torch SGD(nesterov) over {steps} steps (max diff "
          f"{np.max(np.abs(got - want)):.2e})")

    if failed:
        print(f"{len(failed)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
