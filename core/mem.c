/* mem.c — huge-page backed, pre-faulted allocations for parameters, optimizer state and
 * activations (see mem.h for why). */
#include "cotrain/mem.h"

#include <string.h>
#include <sys/mman.h>

enum { HUGE_PAGE = 2u << 20 };

static size_t round_up(size_t n) {
    return (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
}

void *ct_mem_alloc(size_t bytes, ct_err_t *e) {
    size_t len = round_up(bytes ? bytes : 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        CT_ERR(e, CT_ENOMEM,
               "cannot map %.1f MiB of memory; use a smaller model or micro_batch "
               "(--set train.micro_batch=N)",
               (double)len / (1 << 20));
        return NULL;
    }
    /* Advisory: without transparent huge pages the buffer still works, only slower to fault. */
    (void)madvise(p, len, MADV_HUGEPAGE);
    memset(p, 0, len);
    return p;
}

void ct_mem_free(void *ptr, size_t bytes) {
    if (ptr) munmap(ptr, round_up(bytes ? bytes : 1));
}
