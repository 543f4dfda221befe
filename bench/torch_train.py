"""PyTorch side of `scripts/bench trainer`: times float32 GPT-2 training steps on the CPU, prints JSON.

It trains the model of tests/oracle/gpt2_torch.py (tied, padded embeddings; the layout cotrain
uses) on random tokens with torch.optim.AdamW, clipping the global grad norm every step as the C
trainer does, and prints one line:

    {"tokens_per_s": ..., "step_ms_median": ..., "params": ..., "threads": ...}

It runs --warmup-steps untimed steps, then --steps timed ones. tokens_per_s is
batch * seq_len / the median timed step (the median, like cotrain's figure in scripts/bench, so one
step slowed by other work on a shared machine does not move it). params is the model's parameter
count without the padding rows of wte (GPT-2 124M: 124,439,808 at seq_len 1024, as Hugging Face
counts it; 123,849,984 at seq_len 256).

Environment. Three settings must be in place before the process starts, so the caller
(scripts/bench) sets them; they matter far more than anything done in here:
  unset OPENBLAS_CORETYPE   the build machine's environment sets it to Haswell, which pins
                            OpenBLAS to its AVX2 kernels; unset, OpenBLAS 0.3.21 picks its
                            Cooperlake (AVX-512) kernels on this CPU.
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1
                            malloc backs its mmap'ed blocks with transparent huge pages: every step
                            allocates and frees hundreds of MB of activations and gradients, and
                            faulting them in 4 KiB pages costs as much as the arithmetic on them.
  OMP_WAIT_POLICY=PASSIVE   torch's OpenMP threads sleep between parallel regions instead of
                            spinning on the cores that OpenBLAS's own threads need for the GEMMs.
GPT-2 124M, batch 4, seq 256, 2 threads, on the 2-core AMD EPYC build machine: about 100 tokens/s
as installed (95-104 measured), 250-300 with the three settings (down to ~200 while the VM's host is
busy; the figure moves by ~10% from run to run).

In the script: torch.set_num_threads(threads) sets torch's OpenMP pool, and OpenBLAS's separate
thread pool is set to the same count (torch does not do that, and OpenBLAS would otherwise use
every core). The model itself takes the token embedding's gradient sparse (see gpt2_torch.py: the
profiler shows ~150 ms less per step, below the ~10% wall-clock noise of the shared VM). Tried and
left out: AdamW(foreach=True) (on the CPU a loop over per-tensor kernels with extra temporaries: 255
vs 220 ms per GPT-2 124M update), torch.set_flush_denormal(True) (no denormals arise), -inf-masked
logits over the padded vocabulary (addmm's bias broadcast costs more than the slice it saves),
oneDNN's matmul (no faster than OpenBLAS here: ~360-380 GFLOP/s for both), mallopt(M_MMAP_THRESHOLD,
32 MiB) (no measurable change). GEMMs run at ~370 GFLOP/s, close to the sgemm ceiling; the rest of
the step (wte's 150 MB gradient, GELU, softmax, cross-entropy, AdamW) is separate ATen kernels that
PyTorch 1.13 cannot fuse on the CPU: it has neither F.scaled_dot_product_attention nor
torch.compile.
"""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import gpt2_torch  # noqa: E402  (needs the path set above)


def set_threads(threads):
    """Use `threads` threads in torch's OpenMP pool and, when torch's BLAS is OpenBLAS, in its
    pool too. Returns a note on what was set."""
    torch.set_num_threads(threads)
    try:
        openblas = ctypes.CDLL("libopenblas.so.0")  # the copy torch already loaded
        openblas.openblas_set_num_threads(threads)
        return f"threads: {threads} for torch and OpenBLAS"
    except (OSError, AttributeError):
        return f"threads: {threads} for torch (its BLAS is not OpenBLAS)"


def parse_args():
    """Command line; exits 2 on bad usage."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-layer", type=int, default=12)
    p.add_argument("--n-head", type=int, default=12)
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--batch", type=int, default=4, help="sequences per step")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps run first")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    if args.warmup_steps < 0:
        p.error("--warmup-steps must be >= 0")
    if min(args.n_layer, args.n_head, args.d_model, args.seq_len, args.vocab, args.batch, args.steps,
           args.threads) < 1:
        p.error("sizes, --steps and --threads must be positive")
    if args.d_model % args.n_head:
        p.error(f"--d-model ({args.d_model}) must be a multiple of --n-head ({args.n_head})")
    return args


def main():
    args = parse_args()
    note = set_threads(args.threads)
    model = gpt2_torch.GPT2(args.n_layer, args.n_head, args.d_model, args.seq_len, args.vocab,
                            torch.float32)
    model.load_flat(gpt2_torch.random_flat(model, np.random.default_rng(0)))
    params = list(model.parameters())
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1),
                           generator=torch.Generator().manual_seed(0))
    idx, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    times = []
    for step in range(args.warmup_steps + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(idx, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        loss_value = loss.item()
        times.append(time.perf_counter() - t0)
        print(f"step {step}: loss {loss_value:.4f}, {times[-1] * 1e3:.0f} ms", file=sys.stderr)

    timed = times[args.warmup_steps :]
    n_params = model.num_flat() - (model.wte.shape[0] - args.vocab) * args.d_model
    print(f"{note}; {len(timed)} timed steps", file=sys.stderr)
    median = statistics.median(timed)
    print(json.dumps({
        "tokens_per_s": args.batch * args.seq_len / median,
        "step_ms_median": median * 1e3,
        "params": n_params,
        "threads": args.threads,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
