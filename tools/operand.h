/* operand.h — the one CKPT_DIR operand that eval, export, inspect and sample take after their
 * options. */
#ifndef COTRAIN_TOOLS_OPERAND_H
#define COTRAIN_TOOLS_OPERAND_H

#include "cotrain/err.h"

/* After getopt: sets *ckpt to the single operand argv[optind]. Errors (CT_EINVAL, saying how the
 * command is called): none given, or more than one (`hint` is added to that message, "" for
 * none). `usage_line` is e.g. "cotrain eval CKPT_DIR --data MANIFEST". */
int tool_ckpt_operand(int argc, char **argv, int optind, const char *usage_line,
                      const char *hint, const char **ckpt, ct_err_t *e);

#endif
