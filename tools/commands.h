/* commands.h — the subcommands of the `cotrain` tool. Each takes the arguments after its name
 * (argv[0] is the subcommand's name), prints its own usage and errors, and returns the process
 * exit code: 0 success, 1 runtime failure, 2 bad usage or input. Only main() exits. */
#ifndef COTRAIN_TOOLS_COMMANDS_H
#define COTRAIN_TOOLS_COMMANDS_H

int ct_cmd_eval(int argc, char **argv);
int ct_cmd_export(int argc, char **argv);
int ct_cmd_inspect(int argc, char **argv);
int ct_cmd_prep(int argc, char **argv);
int ct_cmd_sample(int argc, char **argv);
int ct_cmd_tokenize(int argc, char **argv);

#endif
