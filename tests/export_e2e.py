#!/usr/bin/python3
"""export_e2e.py — `cotrain export` and `cotrain eval` end to end through the real binaries,
checked from outside: safetensors parsed by hand, the loss recomputed with the PyTorch oracle.

Two runs are trained for a few steps with `cotrain-worker` (checkpoints every 2 steps):
  bytes: the bytes tokenizer with model.vocab_size 300, so wte has padding rows (300 -> 320), and
         data cut into many small shards, so evaluation windows span shard boundaries;
  gpt2:  the GPT-2 tokenizer (vocabulary 50257, padded to 50304 inside the model).
For each, `cotrain export CKPT --format safetensors --out DIR` is checked:
  - model.safetensors, parsed by hand (8-byte little-endian header length, JSON header, raw
    little-endian data): the header is canonical (sorted keys, compact, space-padded so the data
    starts at a multiple of 8), __metadata__ is {"format": "pt"}, every tensor is F32 with Hugging
    Face's name and shape (Conv1D weights (in, out), wte (vocab_size, C) without padding rows),
    the data is back to back in header order, and every tensor equals the checkpoint's model.h5
    bit for bit;
  - config.json holds the GPT2Config fields transformers needs;
  - exporting twice gives identical bytes; a non-empty --out is refused (exit 2) unless --force.
The exported weights are loaded into the oracle model (tests/oracle/gpt2_torch.py, float64),
which computes the mean next-token loss on the same windows `cotrain eval` uses (the shards
concatenated in manifest order, consecutive windows of seq_len+1 tokens, --tokens N keeping the
first floor(N/(seq_len+1))); `cotrain eval`'s `loss` (its last stdout line) must agree within
1e-5 relative, for all windows, for --tokens and for another --batch. Bad input exits 2 with a
message: a corrupted shard, a damaged checkpoint, data of a larger vocabulary than the model's,
--tokens below one window, bad usage.

Usage: export_e2e.py PATH/TO/cotrain PATH/TO/cotrain-worker [--keep DIR]
Exit 0: all checks passed; 1: a check failed; 2: bad usage.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "oracle"))
import gpt2_torch  # noqa: E402  (needs the path set above)

TOL_LOSS = 1e-5
CORPUS = ["/usr/share/common-licenses/BSD", "/usr/share/common-licenses/Artistic",
          "/usr/share/common-licenses/CC0-1.0"]
# One thread per process: ctest runs tests side by side on few cores; results do not depend on it.
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
failures = 0


def fail(msg):
    global failures
    failures += 1
    print(f"FAIL: {msg}", file=sys.stderr)


def check(cond, what):
    if not cond:
        fail(what)
    return cond


def eq(got, want, what):
    """Checks got == want; prints both sides on a mismatch."""
    if got != want:
        fail(f"{what}:\n  got:  {repr(got)[:600]}\n  want: {repr(want)[:600]}")
    return got == want


def run(exe, *args, want_rc=0, timeout=300):
    """Runs exe with args; checks the exit code; returns (stdout, stderr) as text."""
    p = subprocess.run([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=ENV)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    eq(p.returncode, want_rc, f"exit code of {os.path.basename(exe)} {' '.join(args)}\n"
                              f"  stderr: {err.strip()[-1500:]}")
    return out, err


def read_safetensors(path):
    """Parses a safetensors file by hand. Returns (header length, header bytes, the header's
    (key, value) pairs in file order (objects as pair lists), {name: numpy array}, data length)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    check(8 + n <= len(raw), f"{path}: header length {n} runs past the file")
    header_bytes = raw[8 : 8 + n]
    pairs = json.loads(header_bytes, object_pairs_hook=lambda kv: kv)
    header = dict(pairs)
    eq(len(header), len(pairs), f"{path}: duplicate names in the header")
    data = raw[8 + n :]
    tensors = {}
    dtypes = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1"}
    for name, ent in header.items():
        if name == "__metadata__":
            continue
        ent = dict(ent)
        b, e = ent["data_offsets"]
        check(0 <= b <= e <= len(data), f"{name}: offsets {b}, {e} outside the data")
        tensors[name] = np.frombuffer(data[b:e], dtype=dtypes[ent["dtype"]]).reshape(ent["shape"])
    return n, header_bytes, pairs, tensors, len(data)


def expected_shapes(L, C, T, V):
    """Hugging Face GPT-2 names and shapes (Conv1D weights (in, out)), wte unpadded."""
    shapes = {"transformer.wte.weight": [V, C], "transformer.wpe.weight": [T, C],
              "transformer.ln_f.weight": [C], "transformer.ln_f.bias": [C]}
    for l in range(L):
        p = f"transformer.h.{l}."
        shapes.update({p + "ln_1.weight": [C], p + "ln_1.bias": [C],
                       p + "attn.c_attn.weight": [C, 3 * C], p + "attn.c_attn.bias": [3 * C],
                       p + "attn.c_proj.weight": [C, C], p + "attn.c_proj.bias": [C],
                       p + "ln_2.weight": [C], p + "ln_2.bias": [C],
                       p + "mlp.c_fc.weight": [C, 4 * C], p + "mlp.c_fc.bias": [4 * C],
                       p + "mlp.c_proj.weight": [4 * C, C], p + "mlp.c_proj.bias": [C]})
    return shapes


def check_safetensors(path, ckpt, m):
    """The file's layout and contents against the model config m and the checkpoint's model.h5.
    Returns the tensors."""
    L, C, T, V = m["n_layer"], m["d_model"], m["seq_len"], m["vocab_size"]
    n, header_bytes, pairs, tensors, data_len = read_safetensors(path)
    eq((8 + n) % 8, 0, "data start (8 + header length) is a multiple of 8")
    names = [k for k, _ in pairs]
    eq(names, sorted(names), "header keys are sorted")
    header = {k: dict(v) if isinstance(v, list) else v for k, v in pairs}
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    eq(header_bytes, canonical + b" " * (n - len(canonical)), "header is canonical JSON + padding")
    eq(header.get("__metadata__"), {"format": "pt"}, "__metadata__")
    shapes = expected_shapes(L, C, T, V)
    eq(sorted(tensors), sorted(shapes), "tensor names")
    at = 0
    for name in names[1:]:  # data back to back in header order, no holes
        ent = header[name]
        eq(ent["dtype"], "F32", f"{name} dtype")
        eq(ent["shape"], shapes.get(name), f"{name} shape")
        eq(ent["data_offsets"][0], at, f"{name} starts where the previous tensor ends")
        at = ent["data_offsets"][1]
    eq(at, data_len, "the data ends with the last tensor")
    with h5py.File(os.path.join(ckpt, "model.h5"), "r") as f:
        for name, t in tensors.items():
            h5 = f[name][...]
            check(h5.shape == t.shape and h5.tobytes() == t.tobytes(),
                  f"{name}: exported values differ from the checkpoint's model.h5")
    return tensors


def check_hf_config(path, m):
    with open(path) as f:
        cfg = json.load(f)
    eot = 50256 if m["vocab_size"] >= 50257 else None
    want = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": m["vocab_size"], "n_positions": m["seq_len"], "n_ctx": m["seq_len"],
            "n_embd": m["d_model"], "n_layer": m["n_layer"], "n_head": m["n_head"],
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "tie_word_embeddings": True, "torch_dtype": "float32", "bos_token_id": eot,
            "eos_token_id": eot}
    for k, v in want.items():
        eq(cfg.get(k, "(missing)"), v, f"config.json {k}")
    eq(list(cfg), sorted(cfg), "config.json keys sorted")


def oracle_model(tensors, m):
    """The float64 oracle GPT-2 holding the exported weights (wte's padding rows zero)."""
    model = gpt2_torch.GPT2(m["n_layer"], m["n_head"], m["d_model"], m["seq_len"],
                            m["vocab_size"], dtype=torch.float64)
    with torch.no_grad():
        for name, p in model.named_parameters():
            hf = f"transformer.{name}.weight" if name in ("wte", "wpe") else f"transformer.{name}"
            t = torch.from_numpy(tensors[hf].astype(np.float64))
            p.zero_()
            p[: t.shape[0]].copy_(t)
    return model


def data_tokens(data_dir):
    """All tokens, the shards concatenated in manifest order, and the shard boundaries."""
    with open(os.path.join(data_dir, "manifest.json")) as f:
        man = json.load(f)
    parts, ends = [], []
    for s in man["shards"]:
        with h5py.File(os.path.join(data_dir, s["file"]), "r") as f:
            parts.append(f["tokens"][...].astype(np.int64))
        ends.append(sum(len(p) for p in parts))
    return np.concatenate(parts), ends


def oracle_loss(model, tokens, T, n_windows):
    """Mean next-token cross-entropy over windows 0..n_windows-1 of T+1 consecutive tokens."""
    W = T + 1
    windows = torch.from_numpy(tokens[: n_windows * W].reshape(n_windows, W))
    total = 0.0
    with torch.no_grad():
        for i in range(0, n_windows, 16):
            w = windows[i : i + 16]
            _, loss = model(w[:, :-1], w[:, 1:])
            total += loss.item() * w.shape[0] * T
    return total / (n_windows * T)


def eval_loss(cotrain, ckpt, data, *extra):
    """Runs `cotrain eval`; returns (loss, windows) parsed from stdout (loss from the last line)."""
    out, err = run(cotrain, "eval", ckpt, "--data", data, *extra)
    lines = out.strip().splitlines()
    if not check(lines and re.fullmatch(r"loss \S+", lines[-1]),
                 f"eval's last line is `loss <float>`: {out!r} (stderr {err[-500:]})"):
        return float("nan"), -1
    w = [int(l.split()[1]) for l in lines if l.startswith("windows ")]
    return float(lines[-1].split()[1]), (w[0] if w else -1)


def close(a, b, what):
    check(abs(a - b) <= TOL_LOSS * max(1.0, abs(b)), f"{what}: cotrain {a!r} vs oracle {b!r}")


def flip_byte(path, at):
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x40]))


def train(worker, data, out, sets):
    args = ["--config", "tiny", "--data", data, "--out", out, "--set", "train.warmup_steps=1",
            "--set", "train.global_batch=4", "--set", "train.micro_batch=2", "--set",
            "ckpt.every=2", "--set", "log.every=1"]
    for s in sets:
        args += ["--set", s]
    run(worker, *args, timeout=600)
    with open(os.path.join(out, "config.json")) as f:
        return json.load(f)["model"]


def check_export(cotrain, ckpt, out, m):
    """Exports ckpt into out; checks both files; returns the tensors."""
    stdout, _ = run(cotrain, "export", ckpt, "--format", "safetensors", "--out", out)
    check("model.safetensors" in stdout, f"export names what it wrote: {stdout!r}")
    eq(sorted(os.listdir(out)), ["config.json", "model.safetensors"], f"files in {out}")
    tensors = check_safetensors(os.path.join(out, "model.safetensors"), ckpt, m)
    check_hf_config(os.path.join(out, "config.json"), m)
    return tensors


def test_bytes(cotrain, worker, tmp):
    data = os.path.join(tmp, "bytes-data")
    run(cotrain, "prep", *CORPUS, "--tokenizer", "bytes", "--split", "paragraphs",
        "--shard-tokens", "1500", "--out", data)
    m = train(worker, data, os.path.join(tmp, "bytes-run"),
              ["model.n_layer=2", "model.seq_len=64", "model.vocab_size=300", "train.steps=4"])
    ckpts = os.path.join(tmp, "bytes-run", "checkpoints")
    eq(sorted(os.listdir(ckpts)), ["ckpt-00000002", "ckpt-00000004"], "checkpoints written")
    ckpt = os.path.join(ckpts, "ckpt-00000004")
    out = os.path.join(tmp, "bytes-export")
    tensors = check_export(cotrain, ckpt, out, m)
    eq(tensors["transformer.wte.weight"].shape, (300, m["d_model"]), "wte unpadded (300, not 320)")

    # same checkpoint, same bytes; a non-empty --out is refused unless --force
    again = os.path.join(tmp, "bytes-export-again")
    run(cotrain, "export", ckpt, "--out", again)
    st = lambda d: open(os.path.join(d, "model.safetensors"), "rb").read()  # noqa: E731
    check(st(out) == st(again), "two exports of one checkpoint differ")
    _, err = run(cotrain, "export", os.path.join(ckpts, "ckpt-00000002"), "--out", out, want_rc=2)
    check("not empty" in err and "--force" in err, f"non-empty --out message: {err!r}")
    check(st(out) == st(again), "a refused export changed the folder")
    run(cotrain, "export", os.path.join(ckpts, "ckpt-00000002"), "--out", out, "--force")
    check_safetensors(os.path.join(out, "model.safetensors"),
                      os.path.join(ckpts, "ckpt-00000002"), m)
    check(st(out) != st(again), "--force did not replace the export (step 2 vs step 4)")

    # eval against the oracle: all windows, --tokens, another batch size
    T, W = m["seq_len"], m["seq_len"] + 1
    tokens, ends = data_tokens(data)
    n_all = len(tokens) // W
    check(len(ends) >= 4, f"the corpus should make several shards, got {len(ends)}")
    check(any(e % W and e < n_all * W for e in ends[:-1]),
          f"no window spans a shard boundary (shard ends {ends}, window {W})")
    model = oracle_model(tensors, m)
    loss, windows = eval_loss(cotrain, ckpt, data)
    eq(windows, n_all, "eval's window count")
    close(loss, oracle_loss(model, tokens, T, n_all), "loss over all windows")
    loss3, _ = eval_loss(cotrain, ckpt, data, "--batch", "3")
    close(loss3, loss, "loss with --batch 3 vs the default batch")
    k = 7
    loss7, windows = eval_loss(cotrain, ckpt, data, "--tokens", str(k * W + W - 1))
    eq(windows, k, "--tokens 8W-1 keeps 7 windows")
    close(loss7, oracle_loss(model, tokens, T, k), "loss over --tokens windows")
    _, err = run(cotrain, "eval", ckpt, "--data", data, "--tokens", str(10**9))
    check("evaluating all of them" in err, f"--tokens beyond the data is reported: {err!r}")
    _, err = run(cotrain, "eval", ckpt, "--data", data, "--tokens", str(W - 1), want_rc=2)
    check("no complete window" in err, f"--tokens below one window: {err!r}")

    # damaged inputs: exit 2, named
    bad_data = os.path.join(tmp, "bytes-data-bad")
    shutil.copytree(data, bad_data)
    with open(os.path.join(data, "manifest.json")) as f:
        first = json.load(f)["shards"][0]
    flip_byte(os.path.join(bad_data, first["file"]), 200)
    _, err = run(cotrain, "eval", ckpt, "--data", bad_data, want_rc=2)
    check(first["id"] in err and "corrupted" in err, f"corrupted shard message: {err!r}")
    bad_ckpt = os.path.join(tmp, "ckpt-bad")
    shutil.copytree(ckpt, bad_ckpt)
    flip_byte(os.path.join(bad_ckpt, "model.h5"), os.path.getsize(ckpt + "/model.h5") // 2)
    _, err = run(cotrain, "export", bad_ckpt, "--out", os.path.join(tmp, "x"), want_rc=2)
    check("model.h5" in err, f"damaged checkpoint named on export: {err!r}")
    check(not os.path.exists(os.path.join(tmp, "x", "model.safetensors")),
          "a refused export wrote model.safetensors")
    _, err = run(cotrain, "eval", bad_ckpt, "--data", data, want_rc=2)
    check("model.h5" in err, f"damaged checkpoint named on eval: {err!r}")
    return ckpt


def test_gpt2(cotrain, worker, tmp, bytes_ckpt):
    data = os.path.join(tmp, "gpt2-data")
    run(cotrain, "prep", *CORPUS, "--tokenizer", "gpt2", "--out", data)
    m = train(worker, data, os.path.join(tmp, "gpt2-run"),
              ["model.n_layer=1", "model.n_head=2", "model.d_model=64", "model.seq_len=32",
               "train.steps=2"])
    eq(m["vocab_size"], 50257, "gpt2 vocabulary")
    ckpt = os.path.join(tmp, "gpt2-run", "checkpoints", "ckpt-00000002")
    tensors = check_export(cotrain, ckpt, os.path.join(tmp, "gpt2-export"), m)
    eq(tensors["transformer.wte.weight"].shape, (50257, 64), "wte unpadded (50257, not 50304)")
    T, W = m["seq_len"], m["seq_len"] + 1
    tokens, _ = data_tokens(data)
    loss, windows = eval_loss(cotrain, ckpt, data, "--tokens", str(12 * W))
    eq(windows, 12, "--tokens 12W keeps 12 windows")
    close(loss, oracle_loss(oracle_model(tensors, m), tokens, T, 12), "gpt2 loss")
    _, err = run(cotrain, "eval", bytes_ckpt, "--data", data, want_rc=2)
    check("vocabulary of 50257" in err, f"data of a larger vocabulary is refused: {err!r}")


def test_usage(cotrain, tmp):
    for args in (["export"], ["export", "x"], ["export", "x", "--out", "y", "--format", "onnx"],
                 ["export", "x", "y", "--out", "z"], ["eval", "x"], ["eval", "--data", "d"],
                 ["eval", "x", "--data", "d", "--tokens", "0"], ["eval", "x", "--bogus"]):
        _, err = run(cotrain, *args, want_rc=2)
        check(" cotrain ERROR " in err, f"{args}: no error logged: {err!r}")
    for cmd in ("export", "eval"):
        out, _ = run(cotrain, cmd, "--help")
        check(out.startswith(f"usage: cotrain {cmd}"), f"{cmd} --help: {out[:80]!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cotrain")
    ap.add_argument("worker")
    ap.add_argument("--keep", help="work in this folder and keep it")
    a = ap.parse_args()
    torch.set_num_threads(1)
    tmp = a.keep or tempfile.mkdtemp(prefix="ct_export_e2e_")
    os.makedirs(tmp, exist_ok=True)
    try:
        cotrain, worker = os.path.abspath(a.cotrain), os.path.abspath(a.worker)
        test_usage(cotrain, tmp)
        bytes_ckpt = test_bytes(cotrain, worker, tmp)
        test_gpt2(cotrain, worker, tmp, bytes_ckpt)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
