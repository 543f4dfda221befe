/* cotrain_main.c — the `cotrain` tool: dispatches to one subcommand (prep, tokenize, ...) and
 * exits with its code. COTRAIN_FAULT in the environment arms fault injection (fault.h) for the
 * tests that sweep this binary; a line on stderr then says what was counted and injected. */
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "cotrain/err.h"
#include "cotrain/fault.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv, const ct_log_t *lg);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"add-data", ct_cmd_add_data, "add prepared data to a running (or stopped) cluster run"},
    {"eval", ct_cmd_eval, "mean next-token loss of a checkpoint on a dataset"},
    {"exclude", ct_cmd_exclude, "take shards or documents out of the rest of a run (opt-out)"},
    {"export", ct_cmd_export, "write a checkpoint as Hugging Face safetensors + config.json"},
    {"inspect", ct_cmd_inspect, "verify a checkpoint and print its step, tokens, hashes, config"},
    {"keygen", ct_cmd_keygen, "make a CURVE key pair (PREFIX, PREFIX.pub) for the coordinator protocol"},
    {"lineage", ct_cmd_lineage, "where a document went: its shard, the checkpoints that trained on it"},
    {"prep", ct_cmd_prep, "turn text / JSONL into tokenized HDF5 shards and a manifest"},
    {"sample", ct_cmd_sample, "continue a prompt with a checkpoint's model (KV-cached)"},
    {"status", ct_cmd_status, "ask a coordinator for the run's head checkpoint and data units"},
    {"tokenize", ct_cmd_tokenize, "encode stdin to token ids (or --decode ids to text)"},
    {"verify", ct_cmd_verify, "check a run's public log: chain, signatures, lineage, checkpoints"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f) {
    fprintf(f, "usage: cotrain COMMAND [ARGS...]\n\nCommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`cotrain COMMAND --help` describes one command.\n"
               "Exit codes: 0 success, 1 runtime failure, 2 bad usage or input.\n");
}

int main(int argc, char **argv) {
    /* HDF5 closes at exit what is still open; after an H5Fclose that failed (a full disk while a
     * shard's metadata was written) HDF5 1.10 crashes doing so: SIGSEGV instead of the exit code.
     * Every file is closed explicitly, so its exit handler has nothing to do: skip it. */
    H5dont_atexit();
    ct_log_t lg = {.level = ct_log_level_from_env(), .role = "cotrain", .rank = -1, .out = NULL};
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    ct_err_t e = {0};
    int armed = ct_fault_arm_env(&e);
    if (armed < 0) {
        ct_log(&lg, CT_LOG_ERROR, "%s", e.msg);
        return ct_exit_code(armed);
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].run(argc - 1, argv + 1, &lg);
            char line[256];
            if (armed) fprintf(stderr, "cotrain: %s\n", ct_fault_summary(line, sizeof line));
            return rc;
        }
    ct_log(&lg, CT_LOG_ERROR, "unknown command '%s' (try cotrain --help)", argv[1]);
    return 2;
}
