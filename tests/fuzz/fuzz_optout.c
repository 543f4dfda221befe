/* fuzz_optout.c — libFuzzer target: an opt-out list (`cotrain prep --exclude FILE`,
 * data/optout.c). A list either loads whole or is refused naming a line; what loads matches its
 * own entries' ids. */
#include <stdint.h>

#include "cotrain/optout.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "optout.txt");
    ct_optout_t *o = NULL;
    ct_err_t e = {0};
    if (path && ct_optout_load(&o, path, &e) == 0) {
        if (ct_optout_entries(o) < 0 || ct_optout_matched(o) != 0) __builtin_trap();
        ct_optout_match(o, "fuzz-doc", "0000000000000000000000000000000000000000000000000000000000000000");
        ct_optout_destroy(&o);
    } else if (path && !e.msg[0]) {
        __builtin_trap();
    }
    return 0;
}
