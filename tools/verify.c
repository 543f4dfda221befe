/* verify.c — `cotrain verify PUBLIC_DIR [--key FINGERPRINT] [--ckpts DIR] [--replay CKPT_A CKPT_B
 * --data MANIFEST]`: checks a run's public
 * log as a third party would, from the files alone: run.json's signature, every line's canonical
 * form, sequence number, chain link, hash and signature, the head run.json names (a log cut short
 * is told), the lineage the records describe (each checkpoint on top of the head, no unit
 * committed twice, reverts that name exactly what they drop), and with --ckpts that every
 * committed checkpoint present hashes to its id; with --replay, that one checkpoint follows from
 * another by training again (replay.c: cotrain-worker, run as a process of its own). Stops at the
 * first problem, naming the line or file. Uses only core/ and ckpt/ (history.c reads the log):
 * never the model. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "cotrain/ckpt.h"
#include "cotrain/fsutil.h"
#include "history.h"
#include "replay.h"

/* --ckpts DIR: each checkpoint of the lineage present in DIR verifies and has the log's id. */
static int check_ckpts(const ct_history_t *L, const char *dir, int *verified, int *absent,
                       ct_err_t *e) {
    for (int i = 0; i < L->n_ck; i++) {
        char path[CT_PATH_MAX];
        CT_TRY(ct_path_fmt(path, sizeof path, e, "%s/ckpt-%08lld", dir, (long long)L->ck[i].step));
        if (access(path, F_OK) != 0) {
            (*absent)++;
            continue;
        }
        ct_ckpt_info_t info;
        ct_err_t why = {0};
        if (ct_ckpt_verify(path, &info, &why) != 0)
            return CT_ERR(e, CT_ECORRUPT, "%s does not verify: %s", path, why.msg);
        if (strcmp(info.id, L->ck[i].id) != 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "%s has id %.16s..., the log commits %.16s... for step "
                          "%lld (line %lld): the checkpoint was replaced",
                          path, info.id, L->ck[i].id, (long long)L->ck[i].step,
                          (long long)L->ck[i].line);
        (*verified)++;
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(
        f, "usage: cotrain verify PUBLIC_DIR [--key FINGERPRINT] [--ckpts DIR]\n"
           "                      [--replay CKPT_A CKPT_B --data MANIFEST [--added MANIFEST]...\n"
           "                       [--np N] [--worker PATH]]\n"
           "\n"
           "Checks a run's public log (PUBLIC_DIR/log.jsonl and run.json, as the coordinator\n"
           "writes them) from the files alone: run.json's signature; every line's canonical\n"
           "form, sequence number, link to the line before, hash and Ed25519 signature by the\n"
           "run's key; that the log reaches the head run.json signed (nothing cut off the end);\n"
           "and the lineage the records describe: each checkpoint committed on top of the one\n"
           "before, no unit of data (shard, epoch) committed twice, reverts that drop exactly\n"
           "the checkpoints after their target.\n"
           "\n"
           "  --key FP      the run's key fingerprint (16 hex digits, from its run.json or the\n"
           "                coordinator's log): a log signed by any other key is refused, also\n"
           "                one re-signed whole\n"
           "  --ckpts DIR   also verify every committed checkpoint of the lineage found in DIR\n"
           "                (RUN_DIR/checkpoints): its files against its MANIFEST, its id\n"
           "                against the log\n"
           "  --replay CKPT_A CKPT_B\n"
           "                also train again from checkpoint A to B's step (both of the verified\n"
           "                lineage) with cotrain-worker, in a temporary run directory under\n"
           "                $TMPDIR, and check that the model and optimizer state come out\n"
           "                identical to B's: B follows from A and the data, bit for bit\n"
           "  --data MANIFEST  the run's data, for --replay\n"
           "  --added MANIFEST data the run added while it went on (`cotrain add-data`), for\n"
           "                --replay past a data change: each data_added record's manifest, found\n"
           "                by its sha256 (repeatable); exclusions come from the log itself\n"
           "  --np N        ranks to replay on (default: as many as wrote B; another number sums\n"
           "                in another order and differs in the last bits)\n"
           "  --worker PATH the cotrain-worker to replay with (default: the one beside cotrain)\n"
           "\n"
           "Prints a summary. Exit codes: 0 verified, 2 a problem (the first one, naming its\n"
           "line or file) or bad usage, 1 a runtime failure.\n");
}

int ct_cmd_verify(int argc, char **argv, const ct_log_t *lg) {
    static const struct option opts[] = {{"key", required_argument, 0, 'k'},
                                         {"ckpts", required_argument, 0, 'c'},
                                         {"replay", required_argument, 0, 'r'},
                                         {"data", required_argument, 0, 'd'},
                                         {"np", required_argument, 0, 'n'},
                                         {"worker", required_argument, 0, 'w'},
                                         {"added", required_argument, 0, 'a'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *pin = NULL, *ckpts = NULL;
    ct_replay_opts_t rp = {0};
    const char *added[64];
    opterr = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        if (c == 'k')
            pin = optarg;
        else if (c == 'c')
            ckpts = optarg;
        else if (c == 'r' && optind < argc && argv[optind][0] != '-') {
            rp.a = optarg;
            rp.b = argv[optind++]; /* --replay takes two */
        } else if (c == 'd')
            rp.data = optarg;
        else if (c == 'n') {
            if ((rp.np = atoi(optarg)) < 1) {
                fprintf(stderr, "verify: --np takes a number of ranks >= 1\n");
                return 2;
            }
        } else if (c == 'w')
            rp.worker = optarg;
        else if (c == 'a') {
            if (rp.n_added == (int)(sizeof added / sizeof added[0])) {
                fprintf(stderr, "verify: at most %d --added\n", rp.n_added);
                return 2;
            }
            added[rp.n_added++] = optarg;
            rp.added = added;
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "verify: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "verify: give one PUBLIC_DIR (see --help)\n");
        return 2;
    }
    if (!rp.a != !rp.data || ((rp.np || rp.worker || rp.n_added) && !rp.a)) {
        fprintf(stderr, "verify: --replay CKPT_A CKPT_B and --data MANIFEST go together, and --np, "
                        "--worker and --added with them (see --help)\n");
        return 2;
    }
    const char *dir = argv[optind];
    ct_err_t e = {0};
    ct_history_t L;
    int rc = ct_history_read(&L, dir, pin, &e);
    int verified = 0, absent = 0;
    if (rc == 0 && ckpts) rc = check_ckpts(&L, ckpts, &verified, &absent, &e);
    if (rc == 0) {
        printf("verified %s: %lld record(s), seq 1..%lld, chained and signed by key %s%s\n", dir,
               (long long)L.records, (long long)L.records, L.fingerprint,
               pin ? " (the pinned key)" : "");
        if (L.records > L.head.seq)
            printf("  %lld record(s) after the head run.json signed (seq %lld): written just "
                   "before a stop\n",
                   (long long)(L.records - L.head.seq), (long long)L.head.seq);
        if (L.n_ck)
            printf("  lineage: %d checkpoint(s), head %s (step %lld); %d unit(s) of data "
                   "committed, each once\n",
                   L.n_ck, L.ck[L.n_ck - 1].id, (long long)L.ck[L.n_ck - 1].step, L.n_units);
        else
            printf("  lineage: no checkpoint committed yet\n");
        ct_hist_credit_t *cr = NULL;
        int n_cr = 0;
        rc = ct_history_credit(&L, &cr, &n_cr, &e);
        for (int i = 0; i < n_cr; i++)
            if (L.n_outer)
                printf("  credit: %s: %lld delta(s) accepted, %lld inner step(s), %lld tokens\n",
                       cr[i].who, (long long)cr[i].commits, (long long)cr[i].steps,
                       (long long)cr[i].tokens);
            else
                printf("  credit: %s committed %lld checkpoint(s), %lld step(s) of the lineage\n",
                       cr[i].who, (long long)cr[i].commits, (long long)cr[i].steps);
        free(cr);
        if (L.finished) printf("  run finished (line %lld)\n", (long long)L.finished);
        if (ckpts)
            printf("  checkpoints in %s: %d verified against their ids, %d not present\n", ckpts,
                   verified, absent);
        if (rp.a) rc = ct_replay(&L, &rp, lg, &e);
    }
    if (rc != 0) ct_log(lg, CT_LOG_ERROR, "verify: %s", e.msg);
    ct_history_free(&L);
    return ct_exit_code(rc);
}
