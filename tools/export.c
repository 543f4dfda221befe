/* export.c — `cotrain export CKPT_DIR --format safetensors --out DIR`: turns a checkpoint into
 * what Hugging Face transformers loads as GPT2LMHeadModel: DIR/model.safetensors (the weights,
 * wte without its padding rows) and DIR/config.json (DESIGN.md, "Export").
 *
 * The checkpoint is verified (every file against its MANIFEST) before its weights are read. Each
 * output file is written under a temp name, fsync'd and renamed, so DIR never holds half a file;
 * an existing, non-empty DIR is refused unless --force, so an export never mixes into (or
 * silently replaces) something else. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "operand.h"
#include "cotrain/snapshot.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/safetensors.h"

typedef struct export_args {
    const char *ckpt, *format, *out;
    int force;
} export_args_t;

static void usage(FILE *f) {
    fprintf(f,
            "usage: cotrain export CKPT_DIR [--format safetensors] --out DIR [--force]\n"
            "\n"
            "Verifies the checkpoint CKPT_DIR (e.g. RUN_DIR/checkpoints/ckpt-00001000) and writes\n"
            "what Hugging Face transformers loads as GPT2LMHeadModel:\n"
            "  DIR/model.safetensors  every weight in float32 under its GPT-2 name, Conv1D\n"
            "                         layout (in, out), wte with vocab_size rows (no padding)\n"
            "  DIR/config.json        the GPT2Config: sizes, gelu_new, LayerNorm eps 1e-5,\n"
            "                         tied embeddings\n"
            "In Python: GPT2LMHeadModel.from_pretrained(\"DIR\"). The same DIR also seeds a new\n"
            "run: cotrain-worker --init DIR.\n"
            "\n"
            "  --format NAME   safetensors (the only format, and the default)\n"
            "  --out DIR       where to write; created if missing. It must be empty or absent\n"
            "  --force         write into a non-empty DIR (replacing model.safetensors and\n"
            "                  config.json there; other files are left alone)\n"
            "  -h, --help      this help\n"
            "\n"
            "Exit codes: 0 done, 1 runtime failure (e.g. disk full: DIR then holds no partial\n"
            "file), 2 bad usage, or a missing or damaged checkpoint.\n");
}

/* Returns 0 to run, 1 when help was printed, or CT_EINVAL. */
static int parse_args(int argc, char **argv, export_args_t *a, ct_err_t *e) {
    static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                         {"out", required_argument, 0, 'o'},
                                         {"force", no_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->format = "safetensors";
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': a->format = optarg; break;
        case 'o': a->out = optarg; break;
        case 'F': a->force = 1; break;
        case 'h': usage(stdout); return 1;
        default:
            return CT_ERR(e, CT_EINVAL, "unknown or incomplete option '%s' (see --help)",
                          argv[optind - 1]);
        }
    }
    CT_TRY(tool_ckpt_operand(argc, argv, optind, "cotrain export CKPT_DIR --out DIR", "",
                             &a->ckpt, e));
    if (strcmp(a->format, "safetensors") != 0)
        return CT_ERR(e, CT_EINVAL, "--format %s: the only format is safetensors", a->format);
    if (!a->out || !a->out[0])
        return CT_ERR(e, CT_EINVAL,
                      "--out DIR is required: the folder to write "
                      "model.safetensors and config.json into (see --help)");
    return 0;
}

/* DIR must be absent or an empty directory, unless --force (then any directory will do). */
static int check_out_dir(const export_args_t *a, ct_err_t *e) {
    struct stat st;
    if (stat(a->out, &st) != 0) {
        if (errno == ENOENT) return 0;
        return CT_ERR(e, CT_EIO, "cannot check --out %s: %s", a->out, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return CT_ERR(e, CT_EINVAL, "--out %s exists and is not a directory", a->out);
    if (a->force) return 0;
    DIR *d = opendir(a->out);
    if (!d) return CT_ERR(e, CT_EIO, "cannot read --out %s: %s", a->out, strerror(errno));
    int empty = 1;
    for (struct dirent *de; empty && (de = readdir(d));)
        empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
    closedir(d);
    if (!empty)
        return CT_ERR(e, CT_EINVAL,
                      "--out %s exists and is not empty: choose a new folder, or "
                      "pass --force to replace model.safetensors and config.json there",
                      a->out);
    return 0;
}

static int run(const export_args_t *a, ct_err_t *e) {
    ct_config_t cfg;
    ct_model_t *m = NULL;
    char st_path[CT_PATH_MAX], cfg_path[CT_PATH_MAX];
    CT_TRY(ct_path_join(st_path, sizeof st_path, a->out, "model.safetensors", e));
    CT_TRY(ct_path_join(cfg_path, sizeof cfg_path, a->out, "config.json", e));
    CT_TRY(check_out_dir(a, e));
    CT_TRY(ct_hash_init(e));
    CT_TRY(ct_snapshot_open_model(a->ckpt, &cfg, NULL, &m, 1, e));
    int rc = ct_mkdirs(a->out, e);
    if (rc == 0)
        rc = ct_safetensors_write(st_path, ct_model_tensor(m, 0), ct_model_num_tensors(m),
                                  ct_model_params(m), e);
    if (rc == 0) rc = ct_safetensors_write_hf_config(cfg_path, &cfg, e);
    if (rc == 0) {
        const ct_model_dims_t *d = ct_model_dims(m);
        printf("exported %s: %zu parameters (n_layer %d, n_head %d, d_model %d, seq_len %d, "
               "vocab_size %d)\n"
               "wrote %s\n"
               "wrote %s\n",
               a->ckpt, ct_model_num_real_params(m), d->n_layer, d->n_head, d->d_model, d->seq_len,
               d->vocab_size, st_path, cfg_path);
        if (fflush(stdout) != 0)
            rc = CT_ERR(e, CT_EIO, "writing stdout failed (is the pipe closed?)");
    }
    ct_model_destroy(&m);
    return rc;
}

int ct_cmd_export(int argc, char **argv, const ct_log_t *lg) {
    ct_err_t e = {0};
    export_args_t a;
    int rc = parse_args(argc, argv, &a, &e);
    if (rc == 1) return 0;
    if (rc == 0) rc = run(&a, &e);
    if (rc == 0) return 0;
    ct_log(lg, CT_LOG_ERROR, "export: %s", e.msg);
    return ct_exit_code(rc);
}
