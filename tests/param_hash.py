#!/usr/bin/env python3
"""param_hash.py — the reference definition of metrics' `param_hash`, recomputed by an outsider
from a checkpoint's model.h5 alone (README.md, "param_hash"). Prints the hash as 16 hex digits.

param_hash = H64(W), where W is the model's weights as little-endian float32 bytes, the tensors
one after another in this order (each row-major, in the shape model.h5 stores):
  transformer.wte.weight, padded with zero rows to a multiple of 64 rows,
  transformer.wpe.weight,
  for each block l: transformer.h.l.{ln_1.weight, ln_1.bias, attn.c_attn.weight,
      attn.c_attn.bias, attn.c_proj.weight, attn.c_proj.bias, ln_2.weight, ln_2.bias,
      mlp.c_fc.weight, mlp.c_fc.bias, mlp.c_proj.weight, mlp.c_proj.bias},
  transformer.ln_f.weight, transformer.ln_f.bias
and H64 (ct_hash64 in core/hash.c; not cryptographic, fast enough to run at every logged step)
is the function h64 below. All arithmetic is modulo 2^64.

usage: param_hash.py CKPT_DIR"""
import sys

import h5py
import numpy as np

M64 = (1 << 64) - 1
BLOCK = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
         "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
         "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]


def mix(h):
    h ^= h >> 29
    h = (h * 0xbf58476d1ce4e5b9) & M64
    return h ^ (h >> 32)


def h64(data: bytes) -> int:
    n = len(data)
    lanes = [0x243f6a8885a308d3, 0x13198a2e03707344, 0xa4093822299f31d0, 0x082efa98ec4e6c89]
    words = np.frombuffer(data, dtype="<u8", count=n // 8)
    groups = len(words) // 4
    # four independent chains over words 4i+j: lane = (lane ^ w) * K; lane ^= lane >> 31
    for j in range(4):
        lane = lanes[j]
        for w in words[j:4 * groups:4].tolist():
            lane = ((lane ^ w) * 0x9e3779b97f4a7c15) & M64
            lane ^= lane >> 31
        lanes[j] = lane
    h = n
    for lane in lanes:
        h = mix(h ^ lane)
    for b in data[32 * groups:]:
        h = mix(h ^ b)
    return h


def weights(ckpt_dir):
    with h5py.File(f"{ckpt_dir}/model.h5", "r") as f:
        n_layer = sum(1 for k in f if k.startswith("transformer.h.") and k.endswith(".ln_1.weight"))
        wte = f["transformer.wte.weight"][()]
        rows = -(-wte.shape[0] // 64) * 64
        parts = [np.vstack([wte, np.zeros((rows - wte.shape[0], wte.shape[1]), np.float32)]),
                 f["transformer.wpe.weight"][()]]
        for layer in range(n_layer):
            parts += [f[f"transformer.h.{layer}.{name}"][()] for name in BLOCK]
        parts += [f["transformer.ln_f.weight"][()], f["transformer.ln_f.bias"][()]]
    return b"".join(np.ascontiguousarray(p, dtype="<f4").tobytes() for p in parts)


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) == 2 else 2
    print(f"{h64(weights(sys.argv[1])):016x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
