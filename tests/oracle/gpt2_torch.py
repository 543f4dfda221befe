"""Reference GPT-2 in PyTorch, laid out exactly like cotrain's flat parameter buffer.

This is the one PyTorch copy of the model: the oracle test (tests/oracle/test_oracle.py) runs it in
float64 to check the C trainer, and the benchmark (bench/torch_train.py) runs it in float32 to time
PyTorch against it. It follows the contract of the C harness `ct_oracle_harness`:

* Parameters are stored, and flattened by `to_flat` / `load_flat`, in this order:
  wte (Vp, C), wpe (T, C), then per layer ln_1.{weight,bias} (C), attn.c_attn.weight (C, 3C),
  attn.c_attn.bias (3C), attn.c_proj.weight (C, C), attn.c_proj.bias (C), ln_2.{weight,bias} (C),
  mlp.c_fc.weight (C, 4C), mlp.c_fc.bias (4C), mlp.c_proj.weight (4C, C), mlp.c_proj.bias (C),
  then ln_f.{weight,bias} (C). Vp is the vocabulary rounded up to a multiple of 64; rows >= V of
  wte are padding, are never read, and therefore always get a zero gradient.
* Weight matrices use Hugging Face's Conv1D layout (in, out): y = x @ W + b.
* c_attn's output columns are [q | k | v]; head h owns columns h*hd .. (h+1)*hd-1 of each.
* GELU is the tanh approximation, LayerNorm eps is 1e-5, the LM head is tied to wte[:V], and the
  loss is the mean cross-entropy over every position.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-5


def padded_vocab(vocab_size):
    """Vocabulary rounded up to a multiple of 64: the number of rows of wte."""
    return (vocab_size + 63) // 64 * 64


class Conv1D(nn.Module):
    """Affine map with Hugging Face's (in, out) weight layout: y = x @ weight + bias."""

    def __init__(self, n_in, n_out, dtype):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out, dtype=dtype))  # (in, out)
        self.bias = nn.Parameter(torch.zeros(n_out, dtype=dtype))  # (out,)

    def forward(self, x):
        """x: (..., in) -> (..., out); one GEMM with the bias folded in."""
        y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return y.view(*x.shape[:-1], y.shape[-1])


class CausalSelfAttention(nn.Module):
    """Multi-head causal softmax attention with scale 1/sqrt(hd)."""

    def __init__(self, n_head, d_model, seq_len, dtype):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(d_model, 3 * d_model, dtype)
        self.c_proj = Conv1D(d_model, d_model, dtype)
        # Additive causal mask (T, T): 0 on and below the diagonal, -inf above it. Adding it inside
        # baddbmm fuses the masking and the 1/sqrt(hd) scaling into the score GEMM.
        mask = torch.full((seq_len, seq_len), float("-inf"), dtype=dtype).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        """x: (B, T, C) -> (B, T, C)."""
        B, T, C = x.shape
        nh, hd = self.n_head, C // self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C)
        # (B, T, 3, nh, hd) -> (3, B, nh, T, hd), then fold B and nh together for the batched GEMMs.
        q, k, v = qkv.view(B, T, 3, nh, hd).permute(2, 0, 3, 1, 4).reshape(3, B * nh, T, hd)
        mask = self.mask[:T, :T].expand(B * nh, T, T)
        att = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=1.0 / math.sqrt(hd))  # (B*nh, T, T)
        att = torch.softmax(att, dim=-1)
        y = torch.bmm(att, v)  # (B*nh, T, hd)
        y = y.view(B, nh, T, hd).transpose(1, 2).reshape(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    """c_proj(gelu_tanh(c_fc(x))) with a 4x hidden width."""

    def __init__(self, d_model, dtype):
        super().__init__()
        self.c_fc = Conv1D(d_model, 4 * d_model, dtype)
        self.c_proj = Conv1D(4 * d_model, d_model, dtype)

    def forward(self, x):
        """x: (B, T, C) -> (B, T, C)."""
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, n_head, d_model, seq_len, dtype):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, eps=LN_EPS, dtype=dtype)
        self.attn = CausalSelfAttention(n_head, d_model, seq_len, dtype)
        self.ln_2 = nn.LayerNorm(d_model, eps=LN_EPS, dtype=dtype)
        self.mlp = MLP(d_model, dtype)

    def forward(self, x):
        """x: (B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    """GPT-2 with tied embeddings and a padded token table.

    Built with zero weights: load real values with `load_flat` (e.g. from `random_flat`).
    `forward(idx, targets)` returns (logits (B, T, V), mean loss or None).
    """

    def __init__(self, n_layer, n_head, d_model, seq_len, vocab_size, dtype=torch.float32):
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(f"d_model {d_model} is not a multiple of n_head {n_head}")
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.wte = nn.Parameter(torch.zeros(padded_vocab(vocab_size), d_model, dtype=dtype))  # (Vp, C)
        self.wpe = nn.Parameter(torch.zeros(seq_len, d_model, dtype=dtype))  # (T, C)
        self.h = nn.ModuleList(Block(n_head, d_model, seq_len, dtype) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model, eps=LN_EPS, dtype=dtype)

    def forward(self, idx, targets=None):
        """idx, targets: (B, T) int64 token ids < V. Loss is the mean over all B*T positions."""
        T = idx.shape[1]
        if T > self.seq_len:
            raise ValueError(f"sequence length {T} exceeds the model's seq_len {self.seq_len}")
        # sparse=True: the lookup's gradient is only the B*T rows it touched, added into the LM
        # head's dense (Vp, C) gradient, instead of a second dense (Vp, C) tensor that is zeroed,
        # scattered into and summed (in the profiler ~150 ms of a ~3.9 s GPT-2 124M CPU step).
        # wte.grad is still a dense tensor.
        x = F.embedding(idx, self.wte, sparse=True) + self.wpe[:T]  # (B, T, C)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        logits = F.linear(x, self.wte[: self.vocab_size])  # (B, T, V); padded rows never touched
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss

    def flat_params(self):
        """[(name, parameter)] in the harness's flat order (registration order matches it)."""
        return list(self.named_parameters())

    def num_flat(self):
        """Number of floats in the flat layout (padded wte rows included)."""
        return sum(p.numel() for p in self.parameters())

    def load_flat(self, flat):
        """Copy a 1-D numpy array in the flat layout into the parameters (converted to their dtype).

        Raises ValueError when the size does not match the model's shape.
        """
        flat = np.asarray(flat).reshape(-1)
        if flat.size != self.num_flat():
            raise ValueError(f"flat params have {flat.size} values, the model needs {self.num_flat()}")
        offset = 0
        with torch.no_grad():
            for _, p in self.flat_params():
                chunk = flat[offset : offset + p.numel()].reshape(p.shape)
                p.copy_(torch.from_numpy(np.ascontiguousarray(chunk)))
                offset += p.numel()

    def to_flat(self, grads=False):
        """The parameters (or, with grads=True, their gradients; None counts as 0) as one 1-D
        float64 numpy array in the flat layout."""
        parts = []
        for _, p in self.flat_params():
            t = p.grad if grads else p
            parts.append(np.zeros(p.numel()) if t is None else t.detach().double().reshape(-1).numpy())
        return np.concatenate(parts)

    def param_groups(self, weight_decay):
        """AdamW groups: the 2-D tensors (wte, wpe, the four matrices per layer) decay; biases and
        LayerNorm parameters do not."""
        decay = [p for p in self.parameters() if p.dim() == 2]
        no_decay = [p for p in self.parameters() if p.dim() != 2]
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]


def random_flat(model, rng):
    """A float32 flat parameter vector for `model`'s shape, drawn from the numpy Generator `rng`:
    matrices N(0, 0.02), LayerNorm weights 1 + 0.1 N(0, 1), biases 0.02 N(0, 1), padded wte rows 0."""
    parts = []
    for name, p in model.flat_params():
        if p.dim() == 2:
            value = 0.02 * rng.standard_normal(p.shape)
            if name == "wte":
                value[model.vocab_size :] = 0.0
        elif name.endswith("weight"):  # LayerNorm gains
            value = 1.0 + 0.1 * rng.standard_normal(p.shape)
        else:
            value = 0.02 * rng.standard_normal(p.shape)
        parts.append(value.astype(np.float32).reshape(-1))
    return np.concatenate(parts)
