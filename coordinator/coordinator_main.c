/* coordinator_main.c — `cotrain-coordinator`: the run's source of truth. Resolves the run's
 * config against its data, keeps the ledger (RUN_DIR/coordinator.db) and serves the protocol
 * until SIGTERM or SIGINT; a restart on the same RUN_DIR goes on from what the ledger holds. */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/config.h"
#include "cotrain/coord.h"
#include "cotrain/curve.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/http.h"
#include "cotrain/log.h"
#include "cotrain/manifest.h"

enum { MAX_SETS = 64 };

typedef struct coord_args {
    const char *config, *data, *out, *bind, *key, *allow, *http, *init;
    const char *sets[MAX_SETS];
    int n_sets;
    double lease_ttl, rate;
    int open_join; /* --open-join: any CURVE key gets in */
} coord_args_t;

/* Set by SIGTERM / SIGINT: a signal handler can talk to the loop only through a flag (a
 * lock-free atomic may be written there). */
static atomic_int stop;

static void on_signal(int sig) {
    (void)sig;
    atomic_store(&stop, 1);
}

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: cotrain-coordinator --config FILE|NAME --data MANIFEST --out RUN_DIR\n"
        "                           [--set key=value]... [--bind ENDPOINT] [--lease-ttl S]\n"
        "                           [--key SECRET_KEY_FILE (--allow ALLOW_FILE | --open-join)]\n"
        "                           [--rate N] [--http ADDR:PORT|off] [--init DIR]\n"
        "\n"
        "Hands out the run's data as leases of (shard, epoch), keeps the checkpoint\n"
        "registry, and answers workers (cotrain-worker --coordinator ENDPOINT) and\n"
        "`cotrain status ENDPOINT`. Everything it acknowledges is in RUN_DIR/coordinator.db\n"
        "(SQLite, synced) before the reply goes out: after a crash, start it again on the\n"
        "same RUN_DIR and it goes on.\n"
        "\n"
        "  --config FILE|NAME  the run's config (a bundled name: %s)\n"
        "  --set key=value     override one config key (repeatable)\n"
        "  --data MANIFEST     the data (a manifest.json from `cotrain prep`, or its folder)\n"
        "  --out RUN_DIR       the run directory (config.json, coordinator.db)\n"
        "  --bind ENDPOINT     where to listen (default tcp://127.0.0.1:5555; port 0 picks a\n"
        "                      free one); without --key, loopback only (plain text)\n"
        "  --key FILE          the coordinator's CURVE secret key (`cotrain keygen PREFIX`\n"
        "                      writes PREFIX and PREFIX.pub; workers need PREFIX.pub): the\n"
        "                      protocol is then encrypted and peers authenticated\n"
        "  --allow FILE        with --key: the public keys of the workers admitted, one a\n"
        "                      line (# comments); peers are logged by key id\n"
        "  --open-join         with --key, instead of --allow: admit any CURVE key (volunteers),\n"
        "                      each logged by its key id and held to --rate\n"
        "  --lease-ttl S       seconds a lease lives without a heartbeat (default 60)\n"
        "  --rate N            requests a second each peer may send, in bursts of up to N\n"
        "                      (default 1000; 0: no limit); past it a peer is told to wait\n"
        "  --http ADDR:PORT    serve the live dashboard and its JSON API there, read-only\n"
        "                      (default 127.0.0.1:0: loopback, a free port; off: none)\n"
        "  --init DIR          volunteer mode: version 0 is DIR/model.safetensors (as\n"
        "                      `cotrain export` writes, F32, the config's shapes) instead of\n"
        "                      train.seed's random weights; read when the run starts only\n"
        "  -h, --help          this help\n"
        "\n"
        "Prints `listening on ENDPOINT` and `dashboard at URL` on stdout once it serves.\n"
        "Volunteer mode (--set volunteer.enabled=true): groups join with cotrain-worker\n"
        "--join ENDPOINT; the coordinator makes version 0 of the model, merges the groups'\n"
        "deltas in outer steps (train.steps of them; `cotrain-worker --help-config` lists\n"
        "the volunteer.* keys) and exits 0 once the last version is out and its groups\n"
        "left.\n"
        "RUN_DIR/public/ holds the signed public log (log.jsonl, run.json: `cotrain verify`)\n"
        "and the dashboard (index.html: open it from disk too). Stops on SIGTERM/SIGINT.\n"
        "Exit codes: 0 stopped (or a volunteer run over), 1 runtime failure, 2 bad usage or\n"
        "input.\n",
        CT_CONFIG_DIR);
}

/* 0 to run, 1 when help was printed, or CT_EINVAL. */
static int parse_args(int argc, char **argv, coord_args_t *a, ct_err_t *e) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"set", required_argument, 0, 's'},
                                         {"data", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},
                                         {"bind", required_argument, 0, 'b'},
                                         {"lease-ttl", required_argument, 0, 't'},
                                         {"key", required_argument, 0, 'k'},
                                         {"allow", required_argument, 0, 'a'},
                                         {"rate", required_argument, 0, 'r'},
                                         {"open-join", no_argument, 0, 'J'},
                                         {"http", required_argument, 0, 'H'},
                                         {"init", required_argument, 0, 'i'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->bind = "tcp://127.0.0.1:5555";
    a->lease_ttl = 60.0;
    a->rate = 1000.0;
    a->http = "127.0.0.1:0";
    opterr = 0;
    char *end;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 'c': a->config = optarg; break;
        case 'd': a->data = optarg; break;
        case 'o': a->out = optarg; break;
        case 'b': a->bind = optarg; break;
        case 'k': a->key = optarg; break;
        case 'a': a->allow = optarg; break;
        case 'J': a->open_join = 1; break;
        case 'H': a->http = optarg; break;
        case 'i': a->init = optarg; break;
        case 't':
            a->lease_ttl = strtod(optarg, &end);
            if (*end || !(a->lease_ttl > 0 && a->lease_ttl < 1e7))
                return CT_ERR(e, CT_EINVAL, "--lease-ttl %s: give seconds, > 0", optarg);
            break;
        case 'r':
            a->rate = strtod(optarg, &end);
            if (*end || !(a->rate >= 0 && a->rate < 1e9))
                return CT_ERR(e, CT_EINVAL, "--rate %s: give requests a second, >= 0", optarg);
            break;
        case 's': CT_TRY(ct_config_add_set(a->sets, &a->n_sets, MAX_SETS, optarg, e)); break;
        case 'h': usage(stdout); return 1;
        default:
            return CT_ERR(e, CT_EINVAL, "unknown or incomplete option '%s' (see --help)",
                          argv[optind - 1]);
        }
    }
    if (optind < argc)
        return CT_ERR(e, CT_EINVAL, "unexpected argument '%s' (see --help)", argv[optind]);
    if (a->open_join && (!a->key || a->allow || a->rate <= 0))
        return CT_ERR(e, CT_EINVAL,
                      "--open-join admits any CURVE key: it needs --key, no --allow, and a "
                      "--rate above 0 (see --help)");
    if (a->key && !a->allow && !a->open_join)
        return CT_ERR(e, CT_EINVAL,
                      "--key needs --allow FILE (the public keys of the workers it admits) or "
                      "--open-join (any key) (see --help)");
    if (a->allow && !a->key)
        return CT_ERR(e, CT_EINVAL,
                      "--allow goes with --key: the coordinator's secret key (see --help)");
    if (!a->data || !a->out)
        return CT_ERR(e, CT_EINVAL, "--data MANIFEST and --out RUN_DIR are required (see --help)");
    return 0;
}

static int run(const coord_args_t *a, const ct_log_t *lg, ct_err_t *e) {
    ct_config_t cfg;
    ct_manifest_t *m = NULL;
    ct_coord_t *c = NULL;
    ct_http_t *http = NULL;
    ct_allow_t *allow = NULL;
    ct_keypair_t key;
    char path[CT_PATH_MAX], sha[CT_SHA256_HEX], *json = NULL;
    int rc = 0;
    CT_TRY(ct_hash_init(e));
    CT_TRY(ct_config_load(&cfg, a->config, CT_CONFIG_DIR, a->sets, a->n_sets, e));
    if (a->key) {
        CT_TRY(ct_curve_load(a->key, &key, e));
        if (a->allow) CT_TRY(ct_allow_load(&allow, a->allow, e));
    }
    CT_TRY_GOTO(ct_manifest_load(&m, a->data, e), out);
    if (cfg.model.vocab_size == 0) cfg.model.vocab_size = m->vocab_size;
    CT_TRY_GOTO(ct_mkdirs(a->out, e), out);
    if (!(json = ct_config_canonical(&cfg, e))) CT_TRY_GOTO(CT_ENOMEM, out);
    CT_TRY_GOTO(ct_path_join(path, sizeof path, a->out, "config.json", e), out);
    CT_TRY_GOTO(ct_write_file_atomic(path, json, strlen(json), e), out);
    ct_sha256_hex(json, strlen(json), sha);
    const ct_coord_opts_t o = {.run_dir = a->out,
                               .config_json = json,
                               .m = m,
                               .seed = cfg.train.seed,
                               .held_out = cfg.data.eval_shards,
                               .bind = a->bind,
                               .lease_ttl = a->lease_ttl,
                               .key = a->key ? &key : NULL,
                               .allow = allow,
                               .rate = a->rate,
                               .init = a->init};
    CT_TRY_GOTO(ct_coord_open(&c, &o, lg, e), out);
    if (a->key) {
        char id[CT_KEY_ID];
        ct_curve_key_id_z85(key.pub, id);
        if (allow)
            ct_log(lg, CT_LOG_INFO,
                   "CURVE: coordinator key %s (public %s), %d worker key(s) "
                   "allowed",
                   id, key.pub, ct_allow_count(allow));
        else
            ct_log(lg, CT_LOG_INFO,
                   "CURVE: coordinator key %s (public %s), open join: any key "
                   "gets in, %g request(s)/s each",
                   id, key.pub, a->rate);
    }
    char head[CT_SHA256_HEX];
    int64_t step;
    CT_TRY_GOTO(ct_ledger_head(ct_coord_ledger(c), head, &step, e), out);
    ct_log(lg, CT_LOG_INFO,
           "config sha256 %s; data %s (%d shards, %d held out, sha256 %.16s...); ledger %s/%s; "
           "head %s%.16s%s (step %lld)",
           sha, m->path, m->n_shards, cfg.data.eval_shards, m->sha256, a->out, CT_COORD_DB,
           head[0] ? "" : "(none)", head, head[0] ? "..." : "", (long long)step);
    if (strcmp(a->http, "off") != 0) {
        CT_TRY_GOTO(ct_path_join(path, sizeof path, a->out, "public", e), out);
        CT_TRY_GOTO(ct_http_start(&http, a->http, path, lg, e), out);
    }
    printf("listening on %s\n", ct_coord_endpoint(c));
    if (http) printf("dashboard at %s\n", ct_http_url(http));
    fflush(stdout);
    rc = ct_coord_serve(c, &stop, e);
    if (rc == 0)
        ct_log(lg, CT_LOG_INFO, "%s; the ledger is closed cleanly",
               atomic_load(&stop) ? "stopped by a signal" : "the volunteer run is over");
out:
    ct_http_stop(&http);
    ct_coord_close(&c);
    ct_manifest_destroy(&m);
    ct_allow_destroy(&allow);
    free(json);
    return rc;
}

int main(int argc, char **argv) {
    ct_log_t lg = {.level = ct_log_level_from_env(), .role = "coordinator", .rank = -1};
    coord_args_t a;
    ct_err_t e = {0};
    int rc = parse_args(argc, argv, &a, &e);
    if (rc == 1) return 0;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (rc == 0) rc = run(&a, &lg, &e);
    if (rc == 0) return 0;
    ct_log(&lg, CT_LOG_ERROR, "%s", e.msg);
    return ct_exit_code(rc);
}
