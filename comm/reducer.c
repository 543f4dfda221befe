/* reducer.c — the gradient all-reduce in buckets, over MPI.
 *
 * A bucket's sum is a reduce-scatter followed by an all-gather, with the reduction done here: an
 * all-to-all gives rank r every rank's slice r of the bucket, which it adds in rank order, then
 * everyone gathers the reduced slices. So all ranks hold the same bits by construction (a plain
 * MPI_Allreduce may round differently on different ranks) and runs repeat bit for bit (MPI's own
 * reductions may add in arrival order: with 4 ranks a tested run drifted by 1e-5 under load).
 *
 * Both halves are non-blocking (MPI_Ialltoall, MPI_Iallgather), so a bucket can be started as
 * soon as the backward pass has finished it and moved along by later ct_reducer_ready calls. A
 * bucket whose length splits evenly over the ranks is sent from and gathered into the caller's
 * buffer itself; only the receive areas (and the one bucket that may not split evenly, the
 * lowest) live in scratch memory, allocated and faulted in once (fresh pages cost ~11 us each
 * here). Buckets take turns on a few receive areas, so the scratch memory is a few buckets'
 * worth, not a second copy of the gradients. */
#include "cotrain/reducer.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "comm_mpi.h"
#include "cotrain/clock.h"
#include "cotrain/mem.h"

/* Receive areas the buckets take turns on: bucket k uses area k % RECV_AREAS, once bucket
 * k - RECV_AREAS has left it (its sum is added). Enough to keep a few buckets in flight. */
enum { RECV_AREAS = 4 };

/* A bucket's phases, in order (a later phase compares greater) */
typedef enum { WAITING, SCATTERING, GATHERING, DONE } phase_t;

typedef struct bucket {
    size_t start, len; /* buf[start, start + len) */
    size_t slice;      /* each rank's share: len rounded up to a multiple of p, over p */
    float *send;       /* buf + start, or a zero-padded copy in scratch when len % p != 0 */
    float *recv;       /* (slice * p) in scratch: everyone's slice `rank` */
    size_t send_at, recv_at; /* byte offsets into scratch while planning (send_at 0: none) */
    phase_t phase;
    MPI_Request req;
} bucket_t;

struct ct_reducer {
    int active; /* MPI with more than one rank; otherwise every call is a no-op */
    int rank, size;
    MPI_Comm scatter_comm, gather_comm; /* see progress() */
    float *buf;
    size_t n;
    bucket_t *b; /* (nb), from the end of buf towards its start */
    int nb;
    int areas;   /* receive areas: min(nb, RECV_AREAS) */
    int next;    /* first bucket not started in this step */
    float *scratch;
    size_t scratch_bytes;
    double busy; /* seconds inside the reducer this step */
    int rc;      /* first failure of this step, reported by finish */
    ct_err_t err;
};

/* Floats from n rounded up to a multiple of 16 (64 bytes), so every scratch area is aligned. */
static size_t align16(size_t n) {
    return (n + 15) / 16 * 16;
}

/* Cuts buf[0, n) into buckets from its end and lays out their scratch areas; returns the
 * scratch floats needed, or 0 after an error. Every bucket but the lowest holds `per` floats, a
 * multiple of the rank count; only the lowest may need a padded copy to send from. */
static size_t plan(ct_reducer_t *r, size_t bucket_floats, ct_err_t *e) {
    size_t p = (size_t)r->size, per = (bucket_floats + p - 1) / p * p;
    if (per == 0) per = p;
    if (per > r->n) per = (r->n + p - 1) / p * p;
    r->nb = (int)((r->n + per - 1) / per);
    r->areas = r->nb < RECV_AREAS ? r->nb : RECV_AREAS;
    size_t area = align16(per), scratch = (size_t)r->areas * area;
    if (!(r->b = calloc((size_t)r->nb, sizeof *r->b))) {
        CT_ERR(e, CT_ENOMEM, "out of memory");
        return 0;
    }
    for (int k = 0; k < r->nb; k++) {
        bucket_t *bk = &r->b[k];
        size_t end = r->n - (size_t)k * per;
        bk->start = end > per ? end - per : 0;
        bk->len = end - bk->start;
        bk->slice = (bk->len + p - 1) / p;
        if (bk->slice > (size_t)INT_MAX) {
            CT_ERR(e, CT_EINVAL, "all-reduce bucket of %zu floats: a slice exceeds MPI's int count; "
                                 "lower comm.bucket_mb", bk->len);
            return 0;
        }
        bk->recv_at = (size_t)(k % r->areas) * area * sizeof(float);
        if (bk->slice * p != bk->len) {
            bk->send_at = scratch * sizeof(float);
            scratch += area;
        }
    }
    return scratch;
}

int ct_reducer_create(ct_reducer_t **out, ct_comm_t *comm, float *buf, size_t n,
                      size_t bucket_floats, ct_err_t *e) {
    int rc = 0;
    ct_reducer_t *r = NULL;
    *out = NULL;
    CT_ALLOC(e, r, 1, fail);
    r->scatter_comm = r->gather_comm = MPI_COMM_NULL;
    r->buf = buf;
    r->n = n;
    r->rank = comm ? ct_comm_rank(comm) : 0;
    r->size = comm ? ct_comm_size(comm) : 1;
    r->active = r->size > 1 && n > 0;
    if (r->active) {
        size_t need = plan(r, bucket_floats, e);
        if (need == 0) {
            rc = e->code;
            goto fail;
        }
        int st = MPI_Comm_dup(MPI_COMM_WORLD, &r->scatter_comm);
        if (st == MPI_SUCCESS) st = MPI_Comm_dup(MPI_COMM_WORLD, &r->gather_comm);
        if (st != MPI_SUCCESS) {
            rc = ct_comm_mpi_err(st, "MPI_Comm_dup", e);
            goto fail;
        }
        r->scratch_bytes = need * sizeof(float);
        if (!(r->scratch = ct_mem_alloc(r->scratch_bytes, e))) {
            r->scratch_bytes = 0;
            rc = CT_ENOMEM;
            goto fail;
        }
        for (int k = 0; k < r->nb; k++) {
            bucket_t *bk = &r->b[k];
            bk->recv = (float *)((char *)r->scratch + bk->recv_at);
            bk->send = bk->send_at ? (float *)((char *)r->scratch + bk->send_at) : buf + bk->start;
        }
    } else {
        r->nb = 1;
    }
    *out = r;
    return 0;
fail:
    ct_reducer_destroy(&r);
    return rc;
}

void ct_reducer_destroy(ct_reducer_t **self_p) {
    ct_reducer_t *r = *self_p;
    if (!r) return;
    ct_mem_free(r->scratch, r->scratch_bytes);
    if (r->scatter_comm != MPI_COMM_NULL) MPI_Comm_free(&r->scatter_comm);
    if (r->gather_comm != MPI_COMM_NULL) MPI_Comm_free(&r->gather_comm);
    free(r->b);
    free(r);
    *self_p = NULL;
}

int ct_reducer_buckets(const ct_reducer_t *r) {
    return r->nb;
}

void ct_reducer_begin(ct_reducer_t *r) {
    r->next = 0;
    r->busy = 0.0;
    r->rc = 0;
    for (int k = 0; r->active && k < r->nb; k++) r->b[k].phase = WAITING;
}

static void fail(ct_reducer_t *r, int st, const char *what) {
    if (r->rc == 0) r->rc = ct_comm_mpi_err(st, what, &r->err);
}

static void start(ct_reducer_t *r, bucket_t *bk) {
    size_t padded = bk->slice * (size_t)r->size;
    if (bk->send != r->buf + bk->start) {
        memcpy(bk->send, r->buf + bk->start, bk->len * sizeof(float));
        memset(bk->send + bk->len, 0, (padded - bk->len) * sizeof(float));
    }
    /* rank q receives everyone's slice q ... */
    int st = MPI_Ialltoall(bk->send, (int)bk->slice, MPI_FLOAT, bk->recv, (int)bk->slice,
                           MPI_FLOAT, r->scatter_comm, &bk->req);
    if (st != MPI_SUCCESS) return fail(r, st, "MPI_Ialltoall");
    bk->phase = SCATTERING;
}

/* Takes a bucket whose request just completed to its next phase. */
static void advance(ct_reducer_t *r, bucket_t *bk) {
    if (bk->phase == SCATTERING) {
        /* ... adds them in rank order, the same order whatever arrived first ... */
        float *restrict mine = bk->send + (size_t)r->rank * bk->slice;
        const float *restrict x0 = bk->recv, *restrict x1 = bk->recv + bk->slice;
        for (size_t i = 0; i < bk->slice; i++) mine[i] = x0[i] + x1[i]; /* one pass, not a copy */
        for (int q = 2; q < r->size; q++) {
            const float *restrict x = bk->recv + (size_t)q * bk->slice;
            for (size_t i = 0; i < bk->slice; i++) mine[i] += x[i];
        }
        /* ... and everyone gathers the reduced slices */
        int st = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_FLOAT, bk->send, (int)bk->slice, MPI_FLOAT,
                                r->gather_comm, &bk->req);
        if (st != MPI_SUCCESS) return fail(r, st, "MPI_Iallgather");
        bk->phase = GATHERING;
    } else if (bk->phase == GATHERING) {
        if (bk->send != r->buf + bk->start)
            memcpy(r->buf + bk->start, bk->send, bk->len * sizeof(float));
        bk->phase = DONE;
    }
}

/* Waits for (wait) or tests the request of every bucket in flight, moving each one a phase
 * along. MPI matches collectives by the order each rank starts them on a communicator, so that
 * order must not depend on timing: scatters and gathers go on communicators of their own, each
 * started in bucket order (a gather only once the scatters of every earlier bucket are done). */
static void progress(ct_reducer_t *r, int wait) {
    int in_order = 1; /* every earlier bucket's scatter is done */
    for (int k = 0; k < r->next && r->rc == 0; k++) {
        bucket_t *bk = &r->b[k];
        if (bk->phase != SCATTERING && bk->phase != GATHERING) continue;
        if (bk->phase == SCATTERING && !in_order) continue;
        int flag = 1, st = wait ? MPI_Wait(&bk->req, MPI_STATUS_IGNORE)
                                : MPI_Test(&bk->req, &flag, MPI_STATUS_IGNORE);
        if (st != MPI_SUCCESS) return fail(r, st, wait ? "MPI_Wait" : "MPI_Test");
        if (flag)
            advance(r, bk);
        else if (bk->phase == SCATTERING)
            in_order = 0;
    }
}

/* Starts, in bucket order, the buckets lying inside buf[from, n) whose receive area is free. */
static void start_ready(ct_reducer_t *r, size_t from) {
    while (r->next < r->nb && r->rc == 0) {
        int k = r->next;
        if (r->b[k].start < from) break;
        if (k >= r->areas && r->b[k - r->areas].phase < GATHERING) break;
        start(r, &r->b[k]);
        r->next++;
    }
}

void ct_reducer_ready(ct_reducer_t *r, size_t from) {
    if (!r->active || r->rc) return;
    double t0 = ct_now_s();
    start_ready(r, from);
    progress(r, 0);
    start_ready(r, from); /* areas the progress freed */
    r->busy += ct_now_s() - t0;
}

int ct_reducer_finish(ct_reducer_t *r, double *busy_s, ct_err_t *e) {
    if (r->active && r->rc == 0) {
        double t0 = ct_now_s();
        while (r->next < r->nb && r->rc == 0) {
            start_ready(r, 0);
            progress(r, 1); /* the started scatters done, their sums added, gathers started */
        }
        progress(r, 1); /* the last scatters done, every gather started */
        progress(r, 1); /* every gather done */
        r->busy += ct_now_s() - t0;
    }
    if (busy_s) *busy_s = r->busy;
    if (r->rc) *e = r->err;
    return r->rc;
}
