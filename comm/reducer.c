/* reducer.c — the gradient all-reduce in buckets, over MPI.
 *
 * Each piece of the buffer is summed by a reduce-scatter followed by an all-gather, with the
 * reduction done here: an all-to-all gives rank r every other rank's slice r of the piece, which
 * it adds to its own in rank order, then everyone gathers the reduced slices. So all ranks hold the same bits
 * by construction (a plain MPI_Allreduce may round differently on different ranks) and runs
 * repeat bit for bit (MPI's own reductions may add in arrival order: with 4 ranks a tested run
 * drifted by 1e-5 under load).
 *
 * Buckets say when: a bucket's pieces start once the backward pass has finished all of it.
 * Pieces say how much at a time: a bucket goes in pieces of chunk_floats (4 MB by default), so
 * what a rank receives is still in cache when it adds it (with 25 MB at a time the sum ran
 * 5-20% slower here, with 1 MB per-call overhead showed: docs/PERFORMANCE.md). Both halves are
 * non-blocking (MPI_Ialltoallv, MPI_Iallgather), so pieces move along during later ct_reducer_ready calls. A piece whose
 * length splits evenly over the ranks is sent from and gathered into the caller's buffer itself;
 * the pieces take turns on a few receive areas (and the lowest piece, which may not split
 * evenly, has a padded copy), all allocated and faulted in once (fresh pages cost ~11 us each
 * here): the scratch memory is a few pieces, not a second copy of the gradients. */
#include "cotrain/reducer.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "comm_mpi.h"
#include "cotrain/clock.h"
#include "cotrain/mem.h"

/* Receive areas the pieces take turns on: piece k uses area k % RECV_AREAS, once piece
 * k - RECV_AREAS has left it (its sum is added). Enough to keep a few pieces in flight. */
enum { RECV_AREAS = 4 };

/* A piece's phases, in order (a later phase compares greater) */
typedef enum { WAITING, SCATTERING, GATHERING, DONE } phase_t;

typedef struct piece {
    size_t start, len; /* buf[start, start + len) */
    size_t ready_at;   /* the start of its bucket: it may go once buf[ready_at, n) is final */
    size_t slice;      /* each rank's share: len rounded up to a multiple of p, over p */
    float *send;       /* buf + start, or a zero-padded copy in scratch when len % p != 0 */
    float *recv;       /* (slice * p) in scratch: everyone's slice `rank` */
    size_t send_at, recv_at; /* byte offsets into scratch while planning (send_at 0: none) */
    const int *counts, *displs; /* the all-to-all's per-rank counts and offsets (none to self) */
    phase_t phase;
    MPI_Request req;
} piece_t;

struct ct_reducer {
    int active; /* MPI with more than one rank; otherwise every call is a no-op */
    int rank, size;
    MPI_Comm scatter_comm, gather_comm; /* see progress() */
    float *buf;
    size_t n;
    int n_buckets;
    piece_t *pc; /* (n_pieces), from the end of buf towards its start */
    int n_pieces;
    int areas;   /* receive areas: min(n_pieces, RECV_AREAS) */
    int *counts; /* (4 p): counts and offsets for a whole piece's slice, then the lowest's */
    int next;    /* first piece not started in this step */
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

/* n rounded up to a multiple of m (m > 0). */
static size_t round_up(size_t n, size_t m) {
    return (n + m - 1) / m * m;
}

/* Cuts buf[0, n) into buckets and pieces from its end and lays out the scratch areas; returns
 * the scratch floats needed, or 0 after an error. A piece holds `chunk` floats, a multiple of
 * the rank count, and a bucket a whole number of pieces; only the lowest piece may be shorter
 * and need a padded copy to send from. */
static size_t plan(ct_reducer_t *r, size_t bucket_floats, size_t chunk_floats, ct_err_t *e) {
    size_t p = (size_t)r->size, chunk = round_up(chunk_floats ? chunk_floats : 1, p);
    if (chunk > r->n) chunk = round_up(r->n, p);
    size_t per = round_up(bucket_floats ? bucket_floats : 1, chunk);
    if (chunk / p > (size_t)INT_MAX) {
        CT_ERR(e, CT_EINVAL, "all-reduce pieces of %zu floats: a slice exceeds MPI's int count",
               chunk);
        return 0;
    }
    r->n_buckets = (int)((r->n + per - 1) / per);
    r->n_pieces = (int)((r->n + chunk - 1) / chunk);
    r->areas = r->n_pieces < RECV_AREAS ? r->n_pieces : RECV_AREAS;
    size_t area = align16(chunk), scratch = (size_t)r->areas * area;
    r->pc = calloc((size_t)r->n_pieces, sizeof *r->pc);
    r->counts = malloc(4 * p * sizeof *r->counts);
    if (!r->pc || !r->counts) {
        CT_ERR(e, CT_ENOMEM, "out of memory");
        return 0;
    }
    for (int k = 0; k < r->n_pieces; k++) {
        piece_t *pc = &r->pc[k];
        size_t end = r->n - (size_t)k * chunk, bucket_end = r->n - (size_t)k * chunk / per * per;
        pc->start = end > chunk ? end - chunk : 0;
        pc->len = end - pc->start;
        pc->ready_at = bucket_end > per ? bucket_end - per : 0;
        pc->slice = (pc->len + p - 1) / p;
        /* a rank's own slice stays where it is: the sum reads it there, no copy to itself */
        int *cd = r->counts + (k == 0 || pc->slice == r->pc[0].slice ? 0 : 2 * p);
        for (size_t q = 0; q < p; q++) {
            cd[q] = q == (size_t)r->rank ? 0 : (int)pc->slice;
            cd[p + q] = (int)(q * pc->slice);
        }
        pc->counts = cd;
        pc->displs = cd + p;
        pc->recv_at = (size_t)(k % r->areas) * area * sizeof(float);
        if (pc->slice * p != pc->len) {
            pc->send_at = scratch * sizeof(float);
            scratch += area;
        }
    }
    return scratch;
}

int ct_reducer_create(ct_reducer_t **out, ct_comm_t *comm, float *buf, size_t n,
                      size_t bucket_floats, size_t chunk_floats, ct_err_t *e) {
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
        size_t need = plan(r, bucket_floats, chunk_floats, e);
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
        for (int k = 0; k < r->n_pieces; k++) {
            piece_t *pc = &r->pc[k];
            pc->recv = (float *)((char *)r->scratch + pc->recv_at);
            pc->send = pc->send_at ? (float *)((char *)r->scratch + pc->send_at) : buf + pc->start;
        }
    } else {
        r->n_buckets = 1;
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
    free(r->pc);
    free(r->counts);
    free(r);
    *self_p = NULL;
}

int ct_reducer_buckets(const ct_reducer_t *r) {
    return r->n_buckets;
}

void ct_reducer_begin(ct_reducer_t *r) {
    r->next = 0;
    r->busy = 0.0;
    r->rc = 0;
    for (int k = 0; r->active && k < r->n_pieces; k++) r->pc[k].phase = WAITING;
}

static void fail(ct_reducer_t *r, int st, const char *what) {
    if (r->rc == 0) r->rc = ct_comm_mpi_err(st, what, &r->err);
}

static void start(ct_reducer_t *r, piece_t *pc) {
    size_t padded = pc->slice * (size_t)r->size;
    if (pc->send != r->buf + pc->start) {
        memcpy(pc->send, r->buf + pc->start, pc->len * sizeof(float));
        memset(pc->send + pc->len, 0, (padded - pc->len) * sizeof(float));
    }
    /* rank q receives everyone else's slice q ... */
    int st = MPI_Ialltoallv(pc->send, pc->counts, pc->displs, MPI_FLOAT, pc->recv, pc->counts,
                            pc->displs, MPI_FLOAT, r->scatter_comm, &pc->req);
    if (st != MPI_SUCCESS) return fail(r, st, "MPI_Ialltoallv");
    pc->phase = SCATTERING;
}

/* mine := x_0 + x_1 + ... + x_{p-1}, added in that order, where x_q is rank q's slice `rank`
 * (in recv, or mine itself for q = rank). Partial sums go to recv's unused slot `rank` (mine must
 * keep its own values until the last addition), the last addition straight into mine; with two
 * ranks that is the only pass. */
static void add_in_rank_order(const ct_reducer_t *r, const piece_t *pc) {
    size_t m = pc->slice;
    int p = r->size, me = r->rank;
    float *mine = pc->send + (size_t)me * m, *acc = p == 2 ? mine : pc->recv + (size_t)me * m;
    const float *x[2] = {me == 0 ? mine : pc->recv, me == 1 ? mine : pc->recv + m};
    for (size_t i = 0; i < m; i++) acc[i] = x[0][i] + x[1][i];
    for (int q = 2; q < p; q++) {
        const float *xq = q == me ? mine : pc->recv + (size_t)q * m;
        float *to = q == p - 1 ? mine : acc;
        for (size_t i = 0; i < m; i++) to[i] = acc[i] + xq[i];
    }
}

/* Takes a piece whose request just completed to its next phase. */
static void advance(ct_reducer_t *r, piece_t *pc) {
    if (pc->phase == SCATTERING) {
        /* ... adds them in rank order, the same order whatever arrived first ... */
        add_in_rank_order(r, pc);
        /* ... and everyone gathers the reduced slices */
        int st = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_FLOAT, pc->send, (int)pc->slice, MPI_FLOAT,
                                r->gather_comm, &pc->req);
        if (st != MPI_SUCCESS) return fail(r, st, "MPI_Iallgather");
        pc->phase = GATHERING;
    } else if (pc->phase == GATHERING) {
        if (pc->send != r->buf + pc->start)
            memcpy(r->buf + pc->start, pc->send, pc->len * sizeof(float));
        pc->phase = DONE;
    }
}

/* Waits for (wait) or tests the request of every piece in flight, moving each one a phase
 * along. MPI matches collectives by the order each rank starts them on a communicator, so that
 * order must not depend on timing: scatters and gathers go on communicators of their own, each
 * started in piece order (a gather only once the scatters of every earlier piece are done). */
static void progress(ct_reducer_t *r, int wait) {
    int in_order = 1; /* every earlier piece's scatter is done */
    for (int k = 0; k < r->next && r->rc == 0; k++) {
        piece_t *pc = &r->pc[k];
        if (pc->phase != SCATTERING && pc->phase != GATHERING) continue;
        if (pc->phase == SCATTERING && !in_order) continue;
        int flag = 1, st = wait ? MPI_Wait(&pc->req, MPI_STATUS_IGNORE)
                                : MPI_Test(&pc->req, &flag, MPI_STATUS_IGNORE);
        if (st != MPI_SUCCESS) return fail(r, st, wait ? "MPI_Wait" : "MPI_Test");
        if (flag)
            advance(r, pc);
        else if (pc->phase == SCATTERING)
            in_order = 0;
    }
}

/* Starts, in order, the pieces whose bucket lies inside buf[from, n) and whose receive area is
 * free. */
static void start_ready(ct_reducer_t *r, size_t from) {
    while (r->next < r->n_pieces && r->rc == 0) {
        int k = r->next;
        if (r->pc[k].ready_at < from) break;
        if (k >= r->areas && r->pc[k - r->areas].phase < GATHERING) break;
        start(r, &r->pc[k]);
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
        while (r->next < r->n_pieces && r->rc == 0) {
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
