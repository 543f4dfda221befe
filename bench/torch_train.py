"""PyTorch side of `scripts/bench trainer`: trains the same GPT-2 as cotrain (tests/oracle/gpt2_torch.py,
float32, tied embeddings, AdamW with the same decay groups) on random tokens and prints one JSON line
{"tokens_per_s", "step_ms_median", "params", "threads"} over the steps after warm-up.

The caller tunes the environment for every side of the benchmark: OPENBLAS_CORETYPE unset (this
machine sets it to Haswell, which halves OpenBLAS's speed), GLIBC_TUNABLES=glibc.malloc.hugetlb=1
and OMP_WAIT_POLICY=PASSIVE. Run with Debian's /usr/bin/python3 (it has torch 1.13).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import gpt2_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in [("n-layer", 12), ("n-head", 12), ("d-model", 768), ("seq-len", 256),
                          ("vocab", 50257), ("batch", 4), ("steps", 10), ("warmup-steps", 3),
                          ("threads", 2)]:
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = gpt2_torch.GPT2(a.n_layer, a.n_head, a.d_model, a.seq_len, a.vocab)
    model.load_flat(gpt2_torch.random_flat(model, np.random.default_rng(0)))
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq_len + 1), generator=gen)
    x, y = tokens[:, :-1], tokens[:, 1:]
    times = []
    for step in range(a.warmup_steps + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if step >= a.warmup_steps:
            times.append(dt)
    med = statistics.median(times)
    print(json.dumps({"tokens_per_s": a.batch * a.seq_len / med, "step_ms_median": med * 1e3,
                      "params": model.num_flat(), "threads": a.threads}))


if __name__ == "__main__":
    main()
