/* cotrain_main.c — the `cotrain` tool: dispatches to one subcommand (prep, tokenize, ...) and
 * exits with its code. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"eval", ct_cmd_eval, "mean next-token loss of a checkpoint on a dataset"},
    {"export", ct_cmd_export, "write a checkpoint as Hugging Face safetensors + config.json"},
    {"inspect", ct_cmd_inspect, "verify a checkpoint and print its step, tokens, hashes, config"},
    {"prep", ct_cmd_prep, "turn text / JSONL into tokenized HDF5 shards and a manifest"},
    {"sample", ct_cmd_sample, "continue a prompt with a checkpoint's model (KV-cached)"},
    {"tokenize", ct_cmd_tokenize, "encode stdin to token ids (or --decode ids to text)"},
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
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cotrain: unknown command '%s' (try cotrain --help)\n", argv[1]);
    return 2;
}
