/* mem.h — big buffers that are allocated once, backed by huge pages where the kernel allows,
 * and touched before use so no page fault lands inside a training step (on this class of VM a
 * fresh 4 KiB page costs ~11 us to fault in; 1 GiB of them ~3 s). */
#ifndef COTRAIN_MEM_H
#define COTRAIN_MEM_H

#include <stddef.h>

#include "cotrain/err.h"

/* Returns zeroed, 64-byte aligned (in fact 2 MiB aligned), already faulted-in memory of at least
 * `bytes` bytes, or NULL with CT_ENOMEM in e. Free with ct_mem_free(ptr, bytes). */
void *ct_mem_alloc(size_t bytes, ct_err_t *e);

/* Releases memory from ct_mem_alloc; NULL is allowed. `bytes` must be the size asked for. */
void ct_mem_free(void *ptr, size_t bytes);

#endif
