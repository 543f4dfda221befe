/* commands.h — the subcommands of the `cotrain` tool. Each takes the arguments after its name
 * (argv[0] is the subcommand's name) and main()'s logger (role "cotrain": errors, warnings and
 * notes go there, as the worker's do), prints its own usage, results and progress lines, and
 * returns the process exit code: 0 success, 1 runtime failure, 2 bad usage or input. Only main()
 * exits. */
#ifndef COTRAIN_TOOLS_COMMANDS_H
#define COTRAIN_TOOLS_COMMANDS_H

#include "cotrain/log.h"

int ct_cmd_add_data(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_eval(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_exclude(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_export(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_inspect(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_keygen(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_lineage(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_prep(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_sample(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_status(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_tokenize(int argc, char **argv, const ct_log_t *lg);
int ct_cmd_verify(int argc, char **argv, const ct_log_t *lg);

#endif
