#!/usr/bin/python3
"""prep_e2e.py — `cotrain prep` end to end, checked from outside with h5py and hashlib.

Prepares a small corpus (text files with Unicode, emoji, invalid UTF-8, an empty and a blank file;
a JSONL file with string, integer and missing ids) with the gpt2 and bytes tokenizers into several
shards and checks every shard and the manifest: layout, attributes, hashes, per-source counts, the
documents' tokens against `cotrain tokenize` (gpt2) or their bytes, their order and their ids.
Then: byte-identical re-runs (--threads 1 vs 2), --exclude, --split paragraphs, many documents
(several batches), a document big enough to be encoded with all threads, and every kind of bad
input (exit 2, a message naming the problem, nothing half-written left behind).

Usage: prep_e2e.py PATH/TO/cotrain  (exit 0: all checks passed; 1: a check failed)
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

COTRAIN = os.path.abspath(sys.argv[1]) if len(sys.argv) == 2 else sys.exit(__doc__)
EOT = 50256
failures = 0


def fail(msg):
    global failures
    failures += 1
    print(f"FAIL: {msg}", file=sys.stderr)


def eq(got, want, what):
    """Checks got == want; prints both sides on a mismatch. Returns whether they were equal."""
    if isinstance(got, np.ndarray) or isinstance(want, np.ndarray):
        same = np.array_equal(np.asarray(got), np.asarray(want))
    else:
        same = got == want
    if not same:
        g, w = repr(got), repr(want)
        fail(f"{what}:\n  got:  {g[:600]}\n  want: {w[:600]}")
    return same


def check(cond, what):
    if not cond:
        fail(what)
    return cond


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def run(*args, timeout=120, env=None):
    """Runs cotrain with args; returns (exit code, stderr)."""
    p = subprocess.run([COTRAIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def prep(*args, want_rc=0, **kw):
    rc, err = run("prep", *args, **kw)
    eq(rc, want_rc, f"exit code of `cotrain prep {' '.join(args)}` (stderr: {err.strip()})")
    return err


_tok_cache = {}


def gpt2_ids(text):
    """The reference: `cotrain tokenize --tokenizer gpt2` on the document's bytes."""
    if text not in _tok_cache:
        p = subprocess.run([COTRAIN, "tokenize", "--tokenizer", "gpt2"], input=text,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            fail(f"cotrain tokenize failed: {p.stderr.decode(errors='replace')}")
        _tok_cache[text] = [int(x) for x in p.stdout.split()]
    return _tok_cache[text]


def ref_ids(text, tokenizer):
    return list(text) if tokenizer == "bytes" else gpt2_ids(text) + [EOT]


def invalid_utf8_bytes(data):
    """Bytes that are not part of a valid UTF-8 sequence (strict, as Python decodes)."""
    count = 0

    def handler(err):
        nonlocal count
        count += err.end - err.start
        return ("", err.end)

    import codecs
    codecs.register_error("ct_count", handler)
    data.decode("utf-8", "ct_count")
    return count


def read_shard(path):
    """Everything in a shard, checked for layout on the way: (attrs, tokens, offsets, ids)."""
    with h5py.File(path, "r") as f:
        eq(sorted(f.keys()), ["doc_ids", "doc_offsets", "tokens"], f"{path}: datasets")
        attrs = {}
        for k, v in f.attrs.items():
            if isinstance(v, bytes):
                v = v.decode()
            attrs[k] = v.item() if hasattr(v, "item") else v
        tok, off, ids = f["tokens"], f["doc_offsets"], f["doc_ids"]
        for d in (tok, off, ids):
            eq(d.ndim, 1, f"{path}:{d.name} dimensions")
            check(d.fletcher32, f"{path}:{d.name} has no Fletcher-32 checksum")
        eq(off.dtype, np.dtype("<i8"), f"{path}: doc_offsets dtype")
        tokens, offsets = tok[...], off[...]
        dtype = tok.dtype
        raw_ids = ids[...]
        check(ids.dtype.kind in "SO", f"{path}: doc_ids dtype {ids.dtype} is not a string type")
    id_list = [x.decode("utf-8") if isinstance(x, bytes) else x for x in raw_ids]
    return attrs, tokens, offsets, id_list, dtype


def shard_docs(out):
    """Loads the manifest and every shard of a prep folder, checking everything that can be
    checked without knowing the input. Returns (manifest, [(doc id, tokens list, shard index)])."""
    with open(os.path.join(out, "manifest.json"), "rb") as f:
        mbytes = f.read()
    m = json.loads(mbytes)
    eq(m["format"], "cotrain-manifest/1", "manifest format")
    vocab = m["vocab_size"]
    eq(vocab, {"gpt2": 50257, "bytes": 256}[m["tokenizer"]], "manifest vocab_size")
    eq(m["dtype"], "uint16", "manifest dtype")
    eq(m["eot"], EOT if m["tokenizer"] == "gpt2" else None, "manifest eot")
    names = sorted(os.listdir(out))
    want_names = sorted(["manifest.json"] + [s["file"] for s in m["shards"]])
    eq(names, want_names, f"{out}: files (manifest and its shards, nothing else)")
    docs = []
    for i, s in enumerate(m["shards"]):
        path = os.path.join(out, s["file"])
        if not check(os.path.exists(path), f"shard file {path} is missing"):
            continue
        with open(path, "rb") as f:
            eq(s["sha256"], sha256(f.read()), f"shards[{i}].sha256 vs the file")
        attrs, tokens, offsets, ids, dtype = read_shard(path)
        eq(dtype, np.dtype("<u2"), f"{path}: tokens dtype")
        eq(attrs.get("format"), "cotrain-shard/1", f"{path}: format")
        eq(attrs.get("tokenizer"), m["tokenizer"], f"{path}: tokenizer")
        eq(attrs.get("vocab_size"), vocab, f"{path}: vocab_size")
        eq(attrs.get("n_tokens"), len(tokens), f"{path}: n_tokens attribute")
        eq(attrs.get("n_docs"), len(ids), f"{path}: n_docs attribute")
        tsha = sha256(tokens.astype("<u2").tobytes())
        eq(attrs.get("tokens_sha256"), tsha, f"{path}: tokens_sha256 attribute")
        eq(s["tokens_sha256"], tsha, f"shards[{i}].tokens_sha256")
        eq(s["id"], f"{i:05d}-{tsha[:16]}", f"shards[{i}].id")
        eq(s["file"], s["id"] + ".h5", f"shards[{i}].file")
        eq(s["n_tokens"], len(tokens), f"shards[{i}].n_tokens")
        eq(s["n_docs"], len(ids), f"shards[{i}].n_docs")
        check(len(ids) > 0, f"{path}: an empty shard")
        eq(len(offsets), len(ids) + 1, f"{path}: len(doc_offsets)")
        eq(int(offsets[0]), 0, f"{path}: doc_offsets[0]")
        eq(int(offsets[-1]), len(tokens), f"{path}: doc_offsets[-1]")
        check(bool(np.all(np.diff(offsets) > 0)), f"{path}: doc_offsets not increasing")
        check(bool(np.all(tokens < vocab)), f"{path}: token outside the vocabulary")
        for d, doc_id in enumerate(ids):
            docs.append((doc_id, tokens[offsets[d]:offsets[d + 1]].tolist(), i))
    eq(m["n_tokens"], sum(s["n_tokens"] for s in m["shards"]), "manifest n_tokens = sum")
    eq(m["n_docs"], sum(s["n_docs"] for s in m["shards"]), "manifest n_docs = sum")
    eq(m["n_docs"], len(docs), "manifest n_docs = documents in the shards")
    eq(m["n_tokens"], sum(s["tokens"] for s in m["sources"]), "manifest n_tokens = sources")
    eq(m["n_docs"], sum(s["docs"] for s in m["sources"]), "manifest n_docs = sources")
    return m, docs


def expected_shards(doc_lens, shard_tokens):
    """Shard sizes in documents: a shard is closed once it holds >= shard_tokens tokens."""
    sizes, n, t = [], 0, 0
    for k in doc_lens:
        n, t = n + 1, t + k
        if t >= shard_tokens:
            sizes.append(n)
            n, t = 0, 0
    if n:
        sizes.append(n)
    return sizes


def no_tmp_files(folder, what):
    left = [f for f in os.listdir(folder) if ".tmp" in f] if os.path.isdir(folder) else []
    eq(left, [], f"{what}: temp files left in {folder}")


def folder_bytes(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = f.read()
    return out


def same_folders(a, b, what):
    fa, fb = folder_bytes(a), folder_bytes(b)
    if eq(sorted(fa), sorted(fb), f"{what}: file names"):
        for name in fa:
            check(fa[name] == fb[name], f"{what}: {name} differs between {a} and {b}")


# ---------------------------------------------------------------------------------------------
# The corpus


def write(path, data):
    with open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def make_corpus(tmp):
    """Input files and, for each, the documents prep should read: (text bytes, id or None)."""
    inputs = []
    gpl = open("/usr/share/common-licenses/GPL-3", "rb").read()[:6000]
    t = write(f"{tmp}/unicode.txt",
              "Grüße aus Köln! Ünïcödé, CJK 文字と日本語, emoji 🙂🚀👩‍👩‍👧 🇫🇷, "
              "combining e\u0301, RTL שלום, math ∑∫√.\nSecond line.\n")
    inputs.append((t, "text"))
    inputs.append((write(f"{tmp}/license.txt", gpl), "text"))
    # invalid UTF-8: FF FE, an overlong C0 AF, a surrogate ED A0 80, a cut sequence E6 96 at the end
    bad = b"valid start \xff\xfe then \xc0\xaf and \xed\xa0\x80 end \xe6\x96"
    inputs.append((write(f"{tmp}/invalid.txt", bad), "text"))
    inputs.append((write(f"{tmp}/empty.txt", b""), "text"))
    inputs.append((write(f"{tmp}/blank.txt", b"  \n\t\r\n  \n"), "text"))
    lines = [
        {"id": "doc-1", "text": "First JSONL document ✓ with a check mark."},
        {"text": "No id here \u2014 the id is the sha256 of this text 🙂"},
        {"id": 42, "text": "An integer id becomes its decimal text."},
        {"id": "é-id-文字", "text": "A non-ASCII id.\n\nTwo paragraphs in one JSON text."},
        {"id": "empty-one", "text": ""},
        {"id": "spaces-only", "text": "  \n "},
        None,  # a blank line: skipped, not a document
        {"id": "dup-text", "text": "An integer id becomes its decimal text."},
        {"id": -7,
         "text": "Escapes: tab\there, quote \" backslash \\ e\u0301 \U0001F600 <|endoftext|>"},
        {"id": 1234567890123, "text": "A large integer id, still exact."},
        {"id": "last", "text": gpl[6000 - 1500:].decode("utf-8", "ignore")},
    ]
    with open(f"{tmp}/docs.jsonl", "w", encoding="utf-8") as f:
        for i, obj in enumerate(lines):  # odd lines raw UTF-8, even lines \u escapes
            f.write("   \n" if obj is None else json.dumps(obj, ensure_ascii=i % 2 == 0) + "\n")
    inputs.append((f"{tmp}/docs.jsonl", "jsonl"))
    return inputs


def expected_docs(inputs):
    """[(input index, text bytes, id)] in input order, empty documents included."""
    docs = []
    for k, (path, kind) in enumerate(inputs):
        data = open(path, "rb").read()
        if kind == "text":
            docs.append((k, data, sha256(data)))
            continue
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            obj = json.loads(line.decode("utf-8"))
            text = obj["text"].encode("utf-8")
            doc_id = obj.get("id")
            docs.append((k, text, sha256(text) if doc_id is None else str(doc_id)))
    return docs


def is_empty(text):
    return text.strip(b" \t\n\r\f\v") == b""


# ---------------------------------------------------------------------------------------------
# The checks


def check_corpus(tmp, inputs, tokenizer, shard_tokens, out, optout=None):
    """Preps `inputs` into `out` and checks shards, manifest and documents against the input.
    optout: (list path, set of listed strings) or None."""
    args = [p for p, _ in inputs] + ["--out", out, "--tokenizer", tokenizer,
                                     "--shard-tokens", str(shard_tokens)]
    if optout:
        args += ["--exclude", optout[0]]
    prep(*args)
    no_tmp_files(out, f"prep --tokenizer {tokenizer}")
    m, docs = shard_docs(out)
    eq(m["tokenizer"], tokenizer, "manifest tokenizer")
    eq(m["settings"]["shard_tokens"], shard_tokens, "settings.shard_tokens")
    eq(m["settings"]["split"], "file", "settings.split")
    listed = optout[1] if optout else set()
    want = []
    per_source = [dict(docs=0, tokens=0, empty_docs=0, excluded_docs=0, invalid_utf8_docs=0,
                       invalid_utf8_bytes=0, bad_lines=0) for _ in inputs]
    matched = set()
    for k, text, doc_id in expected_docs(inputs):
        st = per_source[k]
        if is_empty(text):
            st["empty_docs"] += 1
            continue
        hit = {doc_id, sha256(text)} & listed
        if hit:
            matched |= hit
            st["excluded_docs"] += 1
            continue
        ids = ref_ids(text, tokenizer)
        want.append((doc_id, ids, k))
        st["docs"] += 1
        st["tokens"] += len(ids)
        bad = invalid_utf8_bytes(text)
        st["invalid_utf8_bytes"] += bad
        st["invalid_utf8_docs"] += bad > 0
    # documents: ids, tokens and order
    eq(len(docs), len(want), "number of documents in the shards")
    for n, ((gid, gtok, _), (wid, wtok, k)) in enumerate(zip(docs, want)):
        eq(gid, wid, f"document {n}: id")
        if not eq(gtok, wtok, f"document {n} ({wid} from {inputs[k][0]}): tokens"):
            break
    # shard boundaries and each shard's sources
    sizes = expected_shards([len(t) for _, t, _ in want], shard_tokens)
    eq([s["n_docs"] for s in m["shards"]], sizes, "documents per shard")
    at = 0
    for i, s in enumerate(m["shards"]):
        srcs = sorted({want[j][2] for j in range(at, at + s["n_docs"])})
        eq(s["sources"], [inputs[j][0] for j in srcs], f"shards[{i}].sources")
        at += s["n_docs"]
    # sources
    eq(len(m["sources"]), len(inputs), "number of sources")
    for k, (src, (path, _)) in enumerate(zip(m["sources"], inputs)):
        data = open(path, "rb").read()
        eq(src["name"], path, f"sources[{k}].name")
        eq(src["sha256"], sha256(data), f"sources[{k}].sha256")
        eq(src["bytes"], len(data), f"sources[{k}].bytes")
        for key, value in per_source[k].items():
            eq(src[key], value, f"sources[{k}].{key} ({os.path.basename(path)})")
    if optout:
        with open(optout[0], "rb") as f:
            lst = f.read()
        eq(m["optout"], {"list_sha256": sha256(lst), "entries": len(listed),
                         "matched_entries": len(matched),
                         "excluded_docs": sum(s["excluded_docs"] for s in per_source)},
           "manifest optout")
    else:
        eq(m["optout"], None, "manifest optout without --exclude")
    return m, docs, want


def test_corpus(tmp):
    inputs = make_corpus(tmp)
    # the corpus itself is what this test means it to be
    eq(invalid_utf8_bytes(open(f"{tmp}/invalid.txt", "rb").read()), 9, "invalid.txt: bad bytes")
    for tokenizer, shard_tokens in (("gpt2", 60), ("bytes", 200)):
        out = f"{tmp}/out-{tokenizer}"
        m, docs, _ = check_corpus(tmp, inputs, tokenizer, shard_tokens, out)
        check(len(m["shards"]) >= 3, f"{tokenizer}: only {len(m['shards'])} shards")
        # the same input again, with 1 and with 2 threads: the same bytes
        for threads in ("1", "2"):
            again = f"{tmp}/again-{tokenizer}-{threads}"
            prep(*[p for p, _ in inputs], "--out", again, "--tokenizer", tokenizer,
                 "--shard-tokens", str(shard_tokens), "--threads", threads)
            same_folders(out, again, f"{tokenizer} re-run with --threads {threads}")
    return inputs


def test_exclude(tmp, inputs):
    docs = expected_docs(inputs)
    texts = {doc_id: text for _, text, doc_id in docs}
    integer_text = texts["42"]  # the text of documents 42 and dup-text
    listed = ["doc-1", "é-id-文字", sha256(open(f"{tmp}/unicode.txt", "rb").read()),
              sha256(integer_text), "never-matches"]
    body = ("# documents opted out on request\r\n\r\n" + "\n".join(f"  {x}  " for x in listed) +
            "\ndoc-1\n")
    lst = write(f"{tmp}/optout.txt", body)
    out = f"{tmp}/out-excl"
    m, docs_in, want = check_corpus(tmp, inputs, "gpt2", 300, out, (lst, set(listed)))
    eq(m["optout"]["excluded_docs"], 5, "excluded documents")
    eq(m["optout"]["matched_entries"], 4, "matched entries")
    unicode_id = sha256(open(f"{tmp}/unicode.txt", "rb").read())
    gone = {"doc-1", "42", "dup-text", "é-id-文字", unicode_id}
    ids = {d for d, _, _ in docs_in}
    eq(ids & gone, set(), "excluded ids still in the shards")
    # the excluded documents' token sequences (with their end-of-text) occur in no shard
    all_tokens = [t for _, toks, _ in docs_in for t in toks]
    hay = np.array(all_tokens, dtype=np.int64)
    for doc_id in sorted(gone):
        text = texts.get(doc_id) or open(f"{tmp}/unicode.txt", "rb").read()
        needle = np.array(ref_ids(text, "gpt2"), dtype=np.int64)
        n = len(needle)
        if n <= len(hay):
            win = np.lib.stride_tricks.sliding_window_view(hay, n)
            check(not bool(np.any(np.all(win == needle, axis=1))),
                  f"the tokens of excluded document {doc_id} occur in a shard")


def test_paragraphs(tmp):
    text = (b"First paragraph, line 1.\nline 2 \xf0\x9f\x99\x82\n\n\n   \n"
            b"Second\r\n\r\n\t\nThird paragraph\nends here\n\n")
    src = write(f"{tmp}/paras.txt", text)
    out = f"{tmp}/out-paras"
    prep(src, "--out", out, "--tokenizer", "bytes", "--split", "paragraphs")
    m, docs = shard_docs(out)
    want = [b"First paragraph, line 1.\nline 2 \xf0\x9f\x99\x82", b"Second",
            b"Third paragraph\nends here"]
    eq([bytes(t) for _, t, _ in docs], want, "--split paragraphs: document texts")
    eq([d for d, _, _ in docs], [sha256(w) for w in want], "--split paragraphs: ids")
    eq(m["settings"]["split"], "paragraphs", "settings.split")
    # a file of blank lines only has no paragraphs: with another input it is fine
    blank = write(f"{tmp}/blanks.txt", b"\n \n\t\n")
    prep(blank, src, "--out", f"{tmp}/out-paras2", "--tokenizer", "bytes", "--split", "paragraphs")
    m, docs = shard_docs(f"{tmp}/out-paras2")
    eq(len(docs), 3, "--split paragraphs with a blank file: documents")


def test_shard_boundaries(tmp):
    """A shard closes at exactly --shard-tokens tokens, not one later."""
    lens = [10, 10, 5, 15, 1, 19, 1, 40, 3]
    src = write(f"{tmp}/lens.jsonl", "".join(json.dumps({"id": f"L{i}", "text": chr(97 + i) * n}) +
                                             "\n" for i, n in enumerate(lens)))
    out = f"{tmp}/out-lens"
    prep(src, "--out", out, "--tokenizer", "bytes", "--shard-tokens", "20")
    m, docs = shard_docs(out)
    eq([s["n_docs"] for s in m["shards"]], [2, 2, 2, 2, 1], "documents per shard at 20 tokens")
    eq(expected_shards(lens, 20), [2, 2, 2, 2, 1], "expected_shards itself")
    eq([len(t) for _, t, _ in docs], lens, "document lengths")


def test_many_docs(tmp):
    """More documents than one batch holds (8192), in two files: order and ids hold across
    batches and threads."""
    n = 9000
    rows = [json.dumps({"id": f"r{i}", "text": f"row {i} " + "x" * (i % 13)}) for i in range(n)]
    rows.insert(4000, json.dumps({"text": "row without id"}))
    src = write(f"{tmp}/many.jsonl", "\n".join(rows) + "\n")
    outs = []
    for threads in ("1", "2"):
        out = f"{tmp}/out-many-{threads}"
        prep(src, "--out", out, "--tokenizer", "bytes", "--shard-tokens", "20000",
             "--threads", threads)
        outs.append(out)
    same_folders(outs[0], outs[1], "many documents, --threads 1 vs 2")
    m, docs = shard_docs(outs[0])
    want = [json.loads(r) for r in rows]
    eq(len(docs), len(want), "many documents: count")
    got_ids = [d for d, _, _ in docs]
    want_ids = [w.get("id") or sha256(w["text"].encode()) for w in want]
    eq(got_ids, want_ids, "many documents: ids in order")
    bad = [k for k, ((_, t, _), w) in enumerate(zip(docs, want)) if bytes(t) != w["text"].encode()]
    eq(bad[:5], [], "many documents: texts")


def test_big_doc(tmp):
    """A document over 4 MiB is encoded with every thread; the result is the same as with one."""
    gpl = open("/usr/share/common-licenses/GPL-3", "rb").read()
    big = (gpl * (4_300_000 // len(gpl) + 1))[:4_300_000] + b" \xff tail"
    src = write(f"{tmp}/big.txt", big)
    small = write(f"{tmp}/small.txt", "a small document after the big one")
    outs = []
    for threads in ("1", "2"):
        out = f"{tmp}/out-big-{threads}"
        prep(src, small, "--out", out, "--tokenizer", "bytes", "--threads", threads)
        outs.append(out)
    same_folders(outs[0], outs[1], "big document, --threads 1 vs 2")
    m, docs = shard_docs(outs[0])
    eq(len(docs), 2, "big document: documents")
    if len(docs) == 2:
        check(bytes(docs[0][1]) == big, "big document: tokens are not its bytes")
        eq(docs[1][0], sha256(b"a small document after the big one"), "small document id")
    eq(m["sources"][0]["invalid_utf8_bytes"], 1, "big document: invalid bytes")


def test_bad_input(tmp):
    ok = write(f"{tmp}/ok.txt", "a fine document")
    # a broken JSONL line: exit 2 naming FILE:LINE; with --skip-bad it is counted
    lines = ['{"id": "a", "text": "first"}',
             '{"id": "b", "text": "second"}',
             '{"id": "c", "text": "cut off',                     # 3: not JSON
             '{"id": "d", "body": "no text field"}',            # 4
             '{"id": "e e", "text": "id with a space"}',         # 5
             '{"id": "f", "text": 17}',                          # 6: text not a string
             '["g", "an array"]',                                # 7
             '{"id": 1.5, "text": "fractional id"}',             # 8
             '{"id": "h", "text": "last"}']
    src = write(f"{tmp}/broken.jsonl", "\n".join(lines) + "\n")
    out = f"{tmp}/out-broken"
    err = prep(src, "--out", out, "--tokenizer", "bytes", "--shard-tokens", "1", want_rc=2)
    check(f"{src}:3:" in err, f"the error does not name {src}:3: {err!r}")
    check(not os.path.exists(f"{out}/manifest.json"), "a failed prep wrote a manifest")
    no_tmp_files(out, "broken JSONL")
    out = f"{tmp}/out-skip"
    prep(src, "--out", out, "--tokenizer", "bytes", "--skip-bad")
    m, docs = shard_docs(out)
    eq([d for d, _, _ in docs], ["a", "b", "h"], "--skip-bad: documents kept")
    eq(m["sources"][0]["bad_lines"], 6, "--skip-bad: bad_lines")
    eq(m["settings"]["skip_bad"], True, "settings.skip_bad")

    # an exclusion list with a garbage line: exit 2 naming the line
    for garbage in ("has space", "ctl\x01char", "x" * 513):
        lst = write(f"{tmp}/bad-optout.txt", f"# list\nok-id\n\n{garbage}\nother\n")
        out = f"{tmp}/out-badlist"
        err = prep(ok, "--out", out, "--exclude", lst, want_rc=2)
        check(f"{lst}:4:" in err, f"the error does not name {lst}:4: {err!r}")
        check(not os.path.exists(f"{out}/manifest.json"), "a failed prep wrote a manifest")
        no_tmp_files(out, "bad exclusion list")
    lst = write(f"{tmp}/bad-optout.txt", b"ok\n\xff\xfe\n")
    err = prep(ok, "--out", f"{tmp}/out-badlist2", "--exclude", lst, want_rc=2)
    check(f"{lst}:2:" in err, f"invalid UTF-8 list: the error does not name {lst}:2: {err!r}")
    err = prep(ok, "--out", f"{tmp}/out-nolist", "--exclude", f"{tmp}/no-such-list", want_rc=2)
    check("no-such-list" in err, f"a missing list is not named: {err!r}")

    # --out holding files prep did not write: refused, with or without --force, and left alone
    for foreign in ("notes.txt", "weights.h5", "00000-0123456789abcdef.h5.bak"):
        out = f"{tmp}/out-foreign-{foreign}"
        os.makedirs(out)
        write(f"{out}/{foreign}", "precious")
        for force in ([], ["--force"]):
            err = prep(ok, "--out", out, *force, want_rc=2)
            check(foreign in err, f"the error does not name the foreign file {foreign}: {err!r}")
            eq(open(f"{out}/{foreign}").read(), "precious", f"{foreign} after prep {force}")
            eq(sorted(os.listdir(out)), [foreign], f"files in {out} after a refused prep")
    # --out that is a file
    err = prep(ok, "--out", ok, want_rc=2)

    # re-running into a prep folder: refused without --force (and nothing changes); with --force
    # the old shards are replaced, none left over
    out = f"{tmp}/out-rerun"
    prep(ok, "--out", out, "--tokenizer", "bytes")
    before = folder_bytes(out)
    err = prep(ok, "--out", out, "--tokenizer", "bytes", want_rc=2)
    check("--force" in err, f"the error does not suggest --force: {err!r}")
    eq(folder_bytes(out) == before, True, "a refused re-run changed the folder")
    other = write(f"{tmp}/other.txt", "different content, different shard")
    prep(other, "--out", out, "--tokenizer", "bytes", "--force")
    m, docs = shard_docs(out)  # also checks that only the manifest's shards are there
    eq([d for d, _, _ in docs], [sha256(b"different content, different shard")], "--force: docs")
    # --force over a failed run's leftovers (shards without a manifest) works too
    out = f"{tmp}/out-broken"
    prep(ok, "--out", out, "--tokenizer", "bytes", "--force")
    shard_docs(out)

    # missing or unreadable inputs
    err = prep(ok, f"{tmp}/no-such-input.txt", "--out", f"{tmp}/out-missing", want_rc=2)
    check("no-such-input.txt" in err, f"a missing input is not named: {err!r}")
    err = prep(tmp, "--out", f"{tmp}/out-dir-input", want_rc=2)
    # all inputs empty (or blank, or empty JSONL): exit 2, a clear message, no manifest
    e1 = write(f"{tmp}/e1.txt", b"")
    e2 = write(f"{tmp}/e2.txt", b" \n\n")
    e3 = write(f"{tmp}/e3.jsonl", b"\n\n")
    e4 = write(f"{tmp}/e4.jsonl", '{"id": "x", "text": ""}\n')
    out = f"{tmp}/out-empty"
    err = prep(e1, e2, e3, e4, "--out", out, want_rc=2)
    check("no documents" in err, f"all-empty input: unclear message: {err!r}")
    check(not os.path.exists(f"{out}/manifest.json"), "all-empty input wrote a manifest")
    no_tmp_files(out, "all-empty input")
    # everything opted out is the same
    lst = write(f"{tmp}/all-out.txt", sha256(b"a fine document") + "\n")
    err = prep(ok, "--out", f"{tmp}/out-allout", "--exclude", lst, want_rc=2)
    check("no documents" in err, f"all-excluded input: unclear message: {err!r}")

    # bad usage
    for args in (["--out", f"{tmp}/u1"],                               # no input
                 [ok],                                                  # no --out
                 [ok, "--out", f"{tmp}/u2", "--tokenizer", "llama"],
                 [ok, "--out", f"{tmp}/u3", "--shard-tokens", "0"],
                 [ok, "--out", f"{tmp}/u4", "--shard-tokens", "12x"],
                 [ok, "--out", f"{tmp}/u5", "--threads", "0"],
                 [ok, "--out", f"{tmp}/u6", "--split", "sentences"],
                 [ok, "--out", f"{tmp}/u7", "--no-such-option"],
                 [ok, "--out"]):
        err = prep(*args, want_rc=2)
        check(" cotrain ERROR " in err, f"prep {args}: no error logged: {err!r}")
    rc, err = run("prep", "--help")
    eq(rc, 0, "prep --help exit code")


def test_disk_full(tmp):
    """A shard that cannot be written, as on a full disk: a file-size limit (RLIMIT_FSIZE, which
    needs no root, with SIGXFSZ ignored so that writes past it fail with EFBIG). Exit 1, not a
    crash; the error logged with the file named; no manifest and nothing half-written left."""
    import resource
    import signal

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (32768, 32768))

    src = write(f"{tmp}/full.txt", "a document that fills more than one small file\n" * 4000)
    out = f"{tmp}/out-full"
    p = subprocess.run([COTRAIN, "prep", src, "--tokenizer", "bytes", "--out", out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                       preexec_fn=limit_files)
    err = p.stderr.decode("utf-8", "replace")
    eq(p.returncode, 1, f"prep on a full disk: exit code (stderr: {err.strip()})")
    check(" cotrain ERROR " in err and ".h5" in err and "File too large" in err,
          f"prep on a full disk: the error does not name the shard and the cause: {err!r}")
    check(not os.path.exists(f"{out}/manifest.json"), "prep on a full disk wrote a manifest")
    no_tmp_files(out, "prep on a full disk")


def main():
    with tempfile.TemporaryDirectory(prefix="ct_prep_e2e_") as tmp:
        inputs = test_corpus(tmp)
        test_exclude(tmp, inputs)
        test_paragraphs(tmp)
        test_shard_boundaries(tmp)
        test_many_docs(tmp)
        test_big_doc(tmp)
        test_bad_input(tmp)
        test_disk_full(tmp)
        for d in os.listdir(tmp):
            if os.path.isdir(f"{tmp}/{d}"):
                no_tmp_files(f"{tmp}/{d}", "at the end")
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
