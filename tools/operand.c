/* operand.c — the checkpoint operand of the tools that read one. */
#include "operand.h"

int tool_ckpt_operand(int argc, char **argv, int optind, const char *usage_line,
                      const char *hint, const char **ckpt, ct_err_t *e) {
    if (optind >= argc)
        return CT_ERR(e, CT_EINVAL, "give the checkpoint: %s (see --help)", usage_line);
    if (optind + 1 < argc)
        return CT_ERR(e, CT_EINVAL, "unexpected argument '%s': one checkpoint only%s (see --help)",
                      argv[optind + 1], hint);
    *ckpt = argv[optind];
    return 0;
}
