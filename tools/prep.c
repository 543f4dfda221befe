/* prep.c — `cotrain prep`: turns text and JSONL files into tokenized HDF5 shards and a manifest.
 *
 * Documents are read in input order and tokenized in batches, one encoder per thread; each
 * document's ids land in its own slot, so the output depends only on the input, never on the
 * thread count. Kept documents (not empty, not opted out) are appended to the current shard, each
 * followed by the tokenizer's end-of-text id when it has one; a shard is written once it holds
 * --shard-tokens tokens (documents are never split). Every shard is written under a temp name
 * and renamed; manifest.json is written last, so a folder with a manifest is complete.
 *
 * A run that fails leaves --out as it found it: it removes every file it made, and with --force
 * the earlier prep's manifest and shards stay whole until the new manifest replaces that one
 * (only then are the earlier shards the new output does not share removed). A new shard that
 * takes the name of an earlier one with other bytes (same tokens, other ids) waits beside it as
 * NAME.new until the end; moving it in withdraws the earlier manifest first. Every write, fsync,
 * rename and allocation on the way is a fault-injection point (fault.h): tests/fault_prep.py
 * fails each in turn through this binary. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "commands.h"
#include "cotrain/clock.h"
#include "cotrain/fault.h"
#include "cotrain/fsutil.h"
#include "cotrain/manifest.h"
#include "cotrain/optout.h"
#include "cotrain/shard.h"
#include "cotrain/tokenizer.h"
#include "docsource.h"

enum {
    BATCH_DOCS = 8192,
    BATCH_BYTES = 16 << 20,
    BIG_DOC = 4 << 20, /* documents this large are encoded with every thread on their own */
};
enum doc_status { DOC_KEEP, DOC_EMPTY, DOC_EXCLUDED };

typedef struct prep_args {
    char **inputs;
    int n_inputs;
    const char *out, *tokenizer, *exclude;
    int64_t shard_tokens;
    doc_split_t split;
    int skip_bad, force, threads;
} prep_args_t;


/* One batch of documents and what tokenizing them gave. */
typedef struct batch {
    doc_t docs[BATCH_DOCS];
    ct_ids_t ids[BATCH_DOCS];
    char sha256[BATCH_DOCS][CT_SHA256_HEX];
    unsigned char status[BATCH_DOCS];
    size_t invalid[BATCH_DOCS];
    int rc[BATCH_DOCS];
    int n;
    size_t bytes;
} batch_t;

/* A list of file names (in --out), each owned. */
typedef struct names {
    char **v;
    int n, cap;
} names_t;

typedef struct prep {
    const prep_args_t *a;
    ct_tokenizer_t *tok;
    ct_encoder_t **enc; /* (threads) */
    ct_optout_t *optout;
    batch_t *batch;
    ct_manifest_source_t *stats; /* (n_inputs) what each input gave: the manifest's "sources" */
    const char **src_names;      /* (n_inputs) scratch: the inputs of the shard being written */
    /* the shard being filled */
    ct_shard_t sh;
    int64_t cap_tokens, cap_docs, cap_offsets;
    unsigned char *sh_sources; /* (n_inputs) 1 when the input gave the shard a document */
    int n_shards;
    ct_manifest_builder_t *mb; /* the manifest being built */
    /* the files of --out (see the file comment) */
    names_t earlier;  /* an earlier prep's manifest.json and shards (--force) */
    names_t made;     /* files this run created: removed when it fails */
    names_t kept;     /* the shard files of the new manifest */
    names_t replace;  /* NAME.h5.new files waiting to replace an earlier NAME.h5 */
    int committed;    /* the new manifest.json is in place */
    char cleanup_failed[256]; /* the first file cleaning up could not remove, for a warning */
    /* progress */
    size_t total_bytes, done_bytes;
    int64_t docs_done;
    double t0, last_print;
    int tty;
} prep_t;

static void usage(FILE *f) {
    fprintf(f,
            "usage: cotrain prep INPUT... --out DIR [--tokenizer bytes|gpt2] [--shard-tokens N]\n"
            "                    [--exclude FILE] [--split file|paragraphs] [--skip-bad]\n"
            "                    [--threads N] [--force]\n"
            "\n"
            "Tokenizes documents into HDF5 shards (DIR/<id>.h5: datasets tokens, doc_offsets,\n"
            "doc_ids) and writes DIR/manifest.json, the file to train on (--data DIR).\n"
            "\n"
            "  INPUT               a text file (one document, or see --split) or a .jsonl /\n"
            "                      .ndjson file: one JSON object per line with a string \"text\"\n"
            "                      and an optional \"id\" (default id: sha256 of the text)\n"
            "  --out DIR           output folder; must be empty or absent (see --force)\n"
            "  --tokenizer NAME    gpt2 (default; each document ends with <|endoftext|>) or\n"
            "                      bytes (vocabulary 256, no separator)\n"
            "  --shard-tokens N    start a new shard once one holds N tokens (default %d);\n"
            "                      documents are never split across shards\n"
            "  --exclude FILE      opt-out list: one document id or 64-hex content sha256 per\n"
            "                      line ('#' comments); those documents are left out and the\n"
            "                      manifest records how many and the list's sha256\n"
            "  --split MODE        file: a text input is one document (default); paragraphs:\n"
            "                      one document per block of lines between blank lines\n"
            "  --skip-bad          skip (and count) JSONL lines that are not valid documents\n"
            "                      instead of stopping at the first one\n"
            "  --threads N         tokenizing threads (default: all this process may use)\n"
            "  --force             replace the shards and manifest of an earlier prep in DIR\n"
            "  -h, --help          this help\n"
            "\n"
            "Text that is not valid UTF-8 is tokenized byte by byte and counted; empty\n"
            "documents are skipped and counted. Re-running on the same input gives\n"
            "byte-identical files. Exit codes: 0 done, 1 runtime failure, 2 bad usage or input.\n",
            1 << 24);
}

/* Returns 0 to run, 1 when help was printed, or CT_EINVAL. */
static int parse_args(int argc, char **argv, prep_args_t *a, ct_err_t *e) {
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},     {"tokenizer", required_argument, 0, 't'},
        {"shard-tokens", required_argument, 0, 'n'}, {"exclude", required_argument, 0, 'x'},
        {"split", required_argument, 0, 's'},   {"skip-bad", no_argument, 0, 'b'},
        {"threads", required_argument, 0, 'j'}, {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->tokenizer = "gpt2";
    a->shard_tokens = 1 << 24;
    a->split = DOC_SPLIT_FILE;
    a->threads = omp_get_max_threads();
    opterr = 0;
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': a->out = optarg; break;
        case 't': a->tokenizer = optarg; break;
        case 'x': a->exclude = optarg; break;
        case 'b': a->skip_bad = 1; break;
        case 'f': a->force = 1; break;
        case 'n':
            a->shard_tokens = strtoll(optarg, &end, 10);
            if (*end || a->shard_tokens < 1 || a->shard_tokens > (1LL << 40))
                return CT_ERR(e, CT_EINVAL, "--shard-tokens %s: give a whole number from 1 to "
                              "2^40", optarg);
            break;
        case 'j':
            a->threads = (int)strtol(optarg, &end, 10);
            if (*end || a->threads < 1 || a->threads > 1024)
                return CT_ERR(e, CT_EINVAL, "--threads %s: give a whole number from 1 to 1024",
                              optarg);
            break;
        case 's':
            if (!strcmp(optarg, "file"))
                a->split = DOC_SPLIT_FILE;
            else if (!strcmp(optarg, "paragraphs"))
                a->split = DOC_SPLIT_PARAGRAPHS;
            else
                return CT_ERR(e, CT_EINVAL, "--split %s: use file or paragraphs", optarg);
            break;
        case 'h': usage(stdout); return 1;
        default:
            return CT_ERR(e, CT_EINVAL, "unknown or incomplete option '%s' (see --help)",
                          argv[optind - 1]);
        }
    }
    a->inputs = argv + optind;
    a->n_inputs = argc - optind;
    if (a->n_inputs == 0)
        return CT_ERR(e, CT_EINVAL, "no INPUT files given (see --help)");
    if (!a->out) return CT_ERR(e, CT_EINVAL, "--out DIR is required (see --help)");
    return 0;
}

static int names_add(names_t *l, const char *name, ct_err_t *e) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = ct_fault_realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return CT_ERR(e, CT_ENOMEM, "out of memory listing the files of --out");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = ct_fault_strdup(name)))
        return CT_ERR(e, CT_ENOMEM, "out of memory listing the files of --out");
    l->n++;
    return 0;
}

static int names_has(const names_t *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], name)) return 1;
    return 0;
}

static void names_free(names_t *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

enum { NOT_OURS, OUTPUT, LEFTOVER };

/* Whether a file is one an earlier prep wrote: OUTPUT for manifest.json and the shards
 * NNNNN-<16 hex>.h5 as flush_shard names them (more digits past 99999 shards), LEFTOVER for
 * their temp files (manifest.json.tmp.*, .h5.tmp, .h5.new, .h5.new.tmp); NOT_OURS for anything
 * else: --force deletes prep's files only, and a user's own data.h5 must survive. */
static int prep_output_name(const char *name) {
    size_t n = strlen(name);
    int temp = 0;
    if (!strcmp(name, "manifest.json")) return OUTPUT;
    if (!strncmp(name, "manifest.json.tmp.", 18)) return LEFTOVER;
    if (n > 4 && !strcmp(name + n - 4, ".tmp")) n -= 4, temp = 1;
    if (n > 4 && !strncmp(name + n - 4, ".new", 4)) n -= 4, temp = 1;
    size_t digits = strspn(name, "0123456789");
    int shard = digits >= 5 && n == digits + 1 + 16 + 3 && name[digits] == '-' &&
                strspn(name + digits + 1, "0123456789abcdef") == 16 &&
                !strncmp(name + n - 3, ".h5", 3);
    return !shard ? NOT_OURS : temp ? LEFTOVER : OUTPUT;
}

/* Makes --out ready: created when absent; anything prep did not write is refused, so prep never
 * deletes what it did not write. An earlier prep's output needs --force: its leftover temp files
 * are removed now, its manifest and shards listed in p->earlier (they go once the new manifest is
 * in place). */
static int prepare_out_dir(prep_t *p, ct_err_t *e) {
    const prep_args_t *a = p->a;
    struct stat st;
    if (stat(a->out, &st) == 0 && !S_ISDIR(st.st_mode))
        return CT_ERR(e, CT_EINVAL, "--out %s is a file, not a folder: give a new or empty folder",
                      a->out);
    CT_TRY(ct_mkdirs(a->out, e));
    DIR *d = opendir(a->out);
    if (!d) return CT_ERR(e, CT_EIO, "cannot list %s", a->out);
    int rc = 0, ours = 0;
    char foreign[256] = "";
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (prep_output_name(de->d_name))
            ours++;
        else if (!foreign[0])
            snprintf(foreign, sizeof foreign, "%s", de->d_name);
    }
    if (foreign[0]) {
        rc = CT_ERR(e, CT_EINVAL, "--out %s holds files prep did not write (%s, ...): give an "
                    "empty or new folder", a->out, foreign);
    } else if (ours && !a->force) {
        rc = CT_ERR(e, CT_EINVAL, "--out %s holds an earlier prep's output: pass --force to "
                    "replace it, or give a new folder", a->out);
    } else if (ours) {
        rewinddir(d);
        char path[CT_PATH_MAX];
        for (struct dirent *de; rc == 0 && (de = readdir(d));) {
            int kind = prep_output_name(de->d_name);
            if ((rc = ct_path_join(path, sizeof path, a->out, de->d_name, e)) != 0) break;
            if (kind == OUTPUT)
                rc = names_add(&p->earlier, de->d_name, e);
            else if (kind == LEFTOVER && unlink(path) != 0)
                rc = CT_ERR(e, CT_EIO, "cannot remove %s: %s", path, strerror(errno));
        }
    }
    closedir(d);
    return rc;
}

/* The progress line: on a terminal it rewrites itself twice a second; elsewhere (logs, CI) it is
 * a line every 10 seconds. */
static void progress(prep_t *p, int final) {
    double t = ct_now_s(), dt = t - p->t0;
    if (!final && t - p->last_print < (p->tty ? 0.5 : 10.0)) return;
    p->last_print = t;
    double mb = (double)p->done_bytes / 1e6, total = (double)p->total_bytes / 1e6;
    double rate = dt > 0 ? mb / dt : 0.0;
    char eta[32] = "";
    if (!final && rate > 0) snprintf(eta, sizeof eta, ", ETA %.0f s", (total - mb) / rate);
    fprintf(stderr, "%sprep: %.1f / %.1f MB (%.0f%%), %lld documents, %d shards, %.1f MB/s%s%s",
            p->tty ? "\r" : "", mb, total, total > 0 ? 100.0 * mb / total : 100.0,
            (long long)p->docs_done, p->n_shards, rate, eta, p->tty && !final ? "   " : "\n");
}

static int all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '\f' &&
            s[i] != '\v')
            return 0;
    return 1;
}

/* Hashes, classifies and (when kept) tokenizes document i of the batch. big: use every thread. */
static void process_doc(prep_t *p, int i, ct_encoder_t *enc, int big) {
    batch_t *b = p->batch;
    const doc_t *d = &b->docs[i];
    ct_err_t e = {0};
    ct_sha256_hex(d->text, d->len, b->sha256[i]);
    b->ids[i].n = 0;
    b->invalid[i] = 0;
    b->rc[i] = 0;
    if (all_space(d->text, d->len))
        b->status[i] = DOC_EMPTY;
    else if (p->optout && ct_optout_match(p->optout, d->id, b->sha256[i]))
        b->status[i] = DOC_EXCLUDED;
    else {
        b->status[i] = DOC_KEEP;
        b->rc[i] = big ? ct_encode_parallel(p->tok, d->text, d->len, p->a->threads, &b->ids[i],
                                            &b->invalid[i], &e)
                       : ct_encode(enc, d->text, d->len, &b->ids[i], &b->invalid[i], &e);
    }
}

static int grow(void **ptr, int64_t *cap, int64_t need, size_t elem, ct_err_t *e) {
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = ct_fault_realloc(*ptr, (size_t)c * elem);
    if (!q) return CT_ERR(e, CT_ENOMEM, "out of memory growing a shard to %lld entries", (long long)c);
    *ptr = q;
    *cap = c;
    return 0;
}

/* Writes the shard being filled (if it holds anything) and adds it to the manifest's list. Its
 * name is recorded in p->made before the file exists, so a failure anywhere in between still
 * removes it. */
static int flush_shard(prep_t *p, ct_err_t *e) {
    ct_shard_t *s = &p->sh;
    if (s->n_docs == 0) return 0;
    int rc = 0;
    char sha[CT_SHA256_HEX], id[CT_SHARD_ID_MAX], file[CT_SHARD_ID_MAX + 4], path[CT_PATH_MAX];
    char file_sha[CT_SHA256_HEX], earlier_sha[CT_SHA256_HEX];
    CT_TRY(ct_shard_tokens_sha256(s->tokens, s->n_tokens, s->vocab_size, sha, e));
    snprintf(id, sizeof id, "%05d-%.16s", p->n_shards, sha);
    snprintf(file, sizeof file, "%s.h5", id);
    /* an earlier prep's shard of this name stays whole until the end: this one goes beside it */
    int clash = names_has(&p->earlier, file);
    CT_TRY(ct_path_fmt(path, sizeof path, e, "%s/%s%s", p->a->out, file, clash ? ".new" : ""));
    CT_TRY(names_add(&p->made, strrchr(path, '/') + 1, e));
    CT_TRY(ct_shard_write(path, s, e));
    CT_TRY(ct_sha256_file(path, file_sha, e));
    if (clash) {
        char earlier[CT_PATH_MAX];
        CT_TRY(ct_path_join(earlier, sizeof earlier, p->a->out, file, e));
        CT_TRY(ct_sha256_file(earlier, earlier_sha, e));
        if (strcmp(file_sha, earlier_sha) != 0)
            CT_TRY(names_add(&p->replace, file, e));
        else if (unlink(path) != 0) /* the earlier file is this one, byte for byte */
            return CT_ERR(e, CT_EIO, "cannot remove %s: %s", path, strerror(errno));
    }
    CT_TRY(names_add(&p->kept, file, e));
    int ns = 0;
    for (int k = 0; k < p->a->n_inputs; k++)
        if (p->sh_sources[k]) p->src_names[ns++] = p->a->inputs[k];
    CT_TRY(ct_manifest_builder_add_shard(p->mb, id, file, s->n_tokens, s->n_docs, file_sha,
                                         s->tokens_sha256, p->src_names, ns, e));
    p->n_shards++;
    for (int64_t d = 0; d < s->n_docs; d++) free(s->doc_ids[d]);
    s->n_docs = 0;
    s->n_tokens = 0;
    memset(p->sh_sources, 0, (size_t)p->a->n_inputs);
    return rc;
}

/* Appends the batch's kept documents, in order, to the shard, writing shards as they fill. */
static int append_batch(prep_t *p, int input, ct_err_t *e) {
    batch_t *b = p->batch;
    ct_manifest_source_t *st = &p->stats[input];
    ct_shard_t *s = &p->sh;
    int eot = ct_tokenizer_eot(p->tok);
    for (int i = 0; i < b->n; i++) {
        st->invalid_utf8_bytes += (int64_t)b->invalid[i];
        st->invalid_utf8_docs += b->invalid[i] > 0;
        if (b->status[i] == DOC_EMPTY) st->empty_docs++;
        if (b->status[i] == DOC_EXCLUDED) st->excluded_docs++;
        if (b->status[i] != DOC_KEEP) continue;
        int64_t n = (int64_t)b->ids[i].n + (eot >= 0);
        CT_TRY(grow((void **)&s->tokens, &p->cap_tokens, s->n_tokens + n, sizeof *s->tokens, e));
        CT_TRY(grow((void **)&s->doc_ids, &p->cap_docs, s->n_docs + 1, sizeof *s->doc_ids, e));
        CT_TRY(grow((void **)&s->doc_offsets, &p->cap_offsets, s->n_docs + 2,
                    sizeof *s->doc_offsets, e));
        for (size_t k = 0; k < b->ids[i].n; k++) s->tokens[s->n_tokens + k] = (uint32_t)b->ids[i].ids[k];
        if (eot >= 0) s->tokens[s->n_tokens + n - 1] = (uint32_t)eot;
        s->doc_ids[s->n_docs] = ct_fault_strdup(b->docs[i].id ? b->docs[i].id : b->sha256[i]);
        if (!s->doc_ids[s->n_docs])
            return CT_ERR(e, CT_ENOMEM, "out of memory storing the id of a document of %s",
                          p->a->inputs[input]);
        s->doc_offsets[s->n_docs] = s->n_tokens;
        s->n_tokens += n;
        s->n_docs++;
        s->doc_offsets[s->n_docs] = s->n_tokens;
        p->sh_sources[input] = 1;
        st->docs++;
        st->tokens += n;
        if (s->n_tokens >= p->a->shard_tokens) CT_TRY(flush_shard(p, e));
    }
    return 0;
}

static void release_batch(batch_t *b) {
    for (int i = 0; i < b->n; i++) {
        free(b->docs[i].owned);
        free(b->docs[i].id);
    }
    b->n = 0;
    b->bytes = 0;
}

/* Tokenizes the batch on all threads (large documents one at a time with every thread), then
 * appends it. */
static int run_batch(prep_t *p, int input, ct_err_t *e) {
    batch_t *b = p->batch;
#pragma omp parallel for schedule(dynamic, 1) num_threads(p->a->threads)
    for (int i = 0; i < b->n; i++)
        if (b->docs[i].len < BIG_DOC) process_doc(p, i, p->enc[omp_get_thread_num()], 0);
    for (int i = 0; i < b->n; i++)
        if (b->docs[i].len >= BIG_DOC) process_doc(p, i, NULL, 1);
    for (int i = 0; i < b->n; i++)
        if (b->rc[i] != 0)
            return CT_ERR(e, b->rc[i], "tokenizing the document at %s:%lld failed (%s)",
                          p->a->inputs[input], (long long)b->docs[i].line, ct_strerror(b->rc[i]));
    CT_TRY(append_batch(p, input, e));
    p->docs_done += b->n;
    release_batch(b);
    return 0;
}

static int read_input(prep_t *p, int input, ct_err_t *e) {
    doc_source_t *src = NULL;
    int rc = 0;
    CT_TRY(doc_source_open(&src, p->a->inputs[input], p->a->split, p->a->skip_bad, e));
    ct_manifest_source_t *st = &p->stats[input];
    doc_source_sha256(src, st->sha256);
    st->bytes = (int64_t)doc_source_size(src);
    size_t base = p->done_bytes;
    for (;;) {
        batch_t *b = p->batch;
        int more = doc_source_next(src, &b->docs[b->n], e);
        if (more < 0) {
            rc = more;
            goto out;
        }
        if (more) {
            b->bytes += b->docs[b->n].len;
            b->n++;
        }
        if (!more || b->n == BATCH_DOCS || b->bytes >= BATCH_BYTES) {
            CT_TRY_GOTO(run_batch(p, input, e), out);
            p->done_bytes = base + doc_source_pos(src);
            progress(p, 0);
        }
        if (!more) break;
    }
    st->bad_lines = doc_source_bad_lines(src);
out:
    release_batch(p->batch);
    doc_source_destroy(&src);
    return rc;
}

/* 1 when the file at path holds exactly data[0..n). Allocates nothing: it runs after a failure,
 * perhaps for want of memory. */
static int file_holds(const char *path, const char *data, size_t n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[8192];
    size_t at = 0;
    int same = 1;
    for (ssize_t r; same && (r = read(fd, buf, sizeof buf)) != 0;) {
        if (r < 0 && errno == EINTR) continue;
        same = r > 0 && at + (size_t)r <= n && memcmp(buf, data + at, (size_t)r) == 0;
        at += r > 0 ? (size_t)r : 0;
    }
    close(fd);
    return same && at == n;
}

/* Writes manifest.json, the commit point of the run: sets p->committed once the new manifest is
 * in place, which can be so even when the directory's fsync after the rename failed. */
static int write_manifest(prep_t *p, int64_t excluded, ct_err_t *e) {
    size_t len = 0;
    char path[CT_PATH_MAX], *text = NULL;
    ct_manifest_optout_t o = {0};
    if (p->optout)
        o = (ct_manifest_optout_t){.list_sha256 = ct_optout_sha256(p->optout),
                                   .entries = (int64_t)ct_optout_entries(p->optout),
                                   .matched_entries = (int64_t)ct_optout_matched(p->optout),
                                   .excluded_docs = excluded};
    ct_manifest_settings_t set = {.split = p->a->split == DOC_SPLIT_FILE ? "file" : "paragraphs",
                                  .shard_tokens = p->a->shard_tokens,
                                  .skip_bad = p->a->skip_bad};
    CT_TRY(ct_path_join(path, sizeof path, p->a->out, "manifest.json", e));
    CT_TRY(ct_manifest_builder_text(p->mb, p->stats, p->a->n_inputs, p->optout ? &o : NULL, &set,
                                    &text, &len, e));
    int rc = ct_write_file_atomic(path, text, len, e);
    p->committed = rc == 0 || file_holds(path, text, len);
    free(text);
    return rc;
}

/* Moves the NAME.h5.new shards over the earlier NAME.h5 (see the file comment): the earlier
 * manifest, which those files no longer match, is withdrawn first. */
static int commit_replacements(prep_t *p, ct_err_t *e) {
    char from[CT_PATH_MAX], to[CT_PATH_MAX];
    if (p->replace.n == 0) return 0;
    CT_TRY(ct_path_join(to, sizeof to, p->a->out, "manifest.json", e));
    if (unlink(to) != 0 && errno != ENOENT)
        return CT_ERR(e, CT_EIO, "cannot remove the earlier %s: %s", to, strerror(errno));
    CT_TRY(ct_fsync_path(p->a->out, e));
    for (int i = 0; i < p->replace.n; i++) {
        CT_TRY(ct_path_fmt(from, sizeof from, e, "%s/%s.new", p->a->out, p->replace.v[i]));
        CT_TRY(ct_path_join(to, sizeof to, p->a->out, p->replace.v[i], e));
        int injected = ct_fault_hit(CT_FAULT_RENAME);
        if (injected || rename(from, to) != 0)
            return CT_ERR(e, CT_EIO, "renaming %s to %s failed: %s", from, to,
                          ct_fault_strerror(injected, errno));
    }
    return ct_fsync_path(p->a->out, e);
}

/* After the run: a failed one removes the files it made; a committed one removes the earlier
 * prep's shards that the new manifest does not list. A file that cannot be removed is noted in
 * p->cleanup_failed (a warning: the output itself is right). */
static void finish_out_dir(prep_t *p) {
    char path[CT_PATH_MAX];
    ct_err_t ignored = {0};
    const names_t *gone = p->committed ? &p->earlier : &p->made;
    for (int i = 0; i < gone->n; i++) {
        const char *name = gone->v[i];
        if (p->committed && (names_has(&p->kept, name) || !strcmp(name, "manifest.json")))
            continue;
        if (ct_path_join(path, sizeof path, p->a->out, name, &ignored) != 0) continue;
        if (unlink(path) != 0 && errno != ENOENT && !p->cleanup_failed[0])
            snprintf(p->cleanup_failed, sizeof p->cleanup_failed, "%.200s: %s", path,
                     strerror(errno));
    }
}

static int run(prep_t *p, ct_err_t *e) {
    const prep_args_t *a = p->a;
    int rc = 0;
    CT_TRY(ct_hash_init(e));
    for (int k = 0; k < a->n_inputs; k++) {
        struct stat st;
        if (stat(a->inputs[k], &st) != 0 || !S_ISREG(st.st_mode))
            return CT_ERR(e, CT_ENOENT, "input %s is missing or not a regular file",
                          a->inputs[k]);
        p->total_bytes += (size_t)st.st_size;
    }
    CT_TRY(ct_tokenizer_open(&p->tok, a->tokenizer, e));
    if (a->exclude) CT_TRY(ct_optout_load(&p->optout, a->exclude, e));
    CT_TRY(prepare_out_dir(p, e));
    CT_ALLOC(e, p->enc, (size_t)a->threads, out);
    for (int t = 0; t < a->threads; t++) CT_TRY(ct_encoder_create(&p->enc[t], p->tok, e));
    CT_ALLOC(e, p->batch, 1, out);
    CT_ALLOC(e, p->stats, (size_t)a->n_inputs, out);
    CT_ALLOC(e, p->src_names, (size_t)a->n_inputs, out);
    for (int k = 0; k < a->n_inputs; k++) p->stats[k].name = a->inputs[k];
    CT_ALLOC(e, p->sh_sources, (size_t)a->n_inputs, out);
    snprintf(p->sh.tokenizer, sizeof p->sh.tokenizer, "%s", ct_tokenizer_name(p->tok));
    p->sh.vocab_size = ct_tokenizer_vocab_size(p->tok);
    CT_TRY(ct_manifest_builder_create(&p->mb, ct_tokenizer_name(p->tok),
                                      ct_tokenizer_vocab_size(p->tok), ct_tokenizer_eot(p->tok),
                                      e));
    p->t0 = p->last_print = ct_now_s();
    p->tty = isatty(2);
    for (int k = 0; k < a->n_inputs; k++) CT_TRY(read_input(p, k, e));
    CT_TRY(flush_shard(p, e));
    int64_t docs = 0, tokens = 0, empty = 0, excluded = 0, invalid = 0, bad = 0;
    for (int k = 0; k < a->n_inputs; k++) {
        docs += p->stats[k].docs;
        tokens += p->stats[k].tokens;
        empty += p->stats[k].empty_docs;
        excluded += p->stats[k].excluded_docs;
        invalid += p->stats[k].invalid_utf8_docs;
        bad += p->stats[k].bad_lines;
    }
    if (docs == 0)
        return CT_ERR(e, CT_EINVAL, "no documents to write: %lld empty, %lld excluded, %lld bad "
                      "lines skipped", (long long)empty, (long long)excluded, (long long)bad);
    CT_TRY(commit_replacements(p, e));
    CT_TRY(write_manifest(p, excluded, e));
    progress(p, 1);
    fprintf(stderr, "prep: %lld documents, %lld tokens (%s) in %d shards -> %s/manifest.json\n"
            "prep: skipped %lld empty, %lld opted out, %lld bad lines; %lld documents had "
            "invalid UTF-8 (tokenized as bytes)\n",
            (long long)docs, (long long)tokens, ct_tokenizer_name(p->tok), p->n_shards, a->out,
            (long long)empty, (long long)excluded, (long long)bad, (long long)invalid);
out:
    return rc;
}

static void prep_free(prep_t *p) {
    if (p->enc)
        for (int t = 0; t < p->a->threads; t++) ct_encoder_destroy(&p->enc[t]);
    free(p->enc);
    if (p->batch) {
        for (int i = 0; i < BATCH_DOCS; i++) ct_ids_free(&p->batch->ids[i]);
        free(p->batch);
    }
    if (p->sh.doc_ids)
        for (int64_t d = 0; d < p->sh.n_docs; d++) free(p->sh.doc_ids[d]);
    free(p->sh.doc_ids);
    free(p->sh.tokens);
    free(p->sh.doc_offsets);
    free(p->stats);
    free(p->sh_sources);
    ct_manifest_builder_destroy(&p->mb);
    free(p->src_names);
    ct_optout_destroy(&p->optout);
    ct_tokenizer_destroy(&p->tok);
    names_free(&p->earlier);
    names_free(&p->made);
    names_free(&p->kept);
    names_free(&p->replace);
}

int ct_cmd_prep(int argc, char **argv, const ct_log_t *lg) {
    ct_err_t e = {0};
    prep_args_t a;
    int committed = 0;
    int rc = parse_args(argc, argv, &a, &e);
    if (rc == 1) return 0;
    if (rc == 0) {
        prep_t p = {.a = &a};
        rc = run(&p, &e);
        if (rc != 0 || p.earlier.n > 0) finish_out_dir(&p);
        if (p.cleanup_failed[0])
            ct_log(lg, CT_LOG_WARN, "prep: cannot remove %s; remove it by hand", p.cleanup_failed);
        committed = p.committed;
        prep_free(&p);
    }
    if (rc == 0) return 0;
    ct_log(lg, CT_LOG_ERROR, "prep: %s%s",
           committed ? "the new manifest.json and its shards are in place, but the last step "
                       "failed: "
                     : "",
           e.msg);
    return ct_exit_code(rc);
}
