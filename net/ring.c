/* SPDX-License-Identifier: MIT */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int ring_init(struct io_uring *ring, unsigned sq_entries, unsigned cq_entries)
{
    /*
     * SINGLE_ISSUER|DEFER_TASKRUN: completions run in our own thread when we ask for them,
     * never by interrupting it; a shard is its ring's only submitter anyway. Older kernels
     * refuse the flags with EINVAL, so degrade step by step rather than fail.
     */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
        0, /* before 5.18: not even SUBMIT_ALL */
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = cq_entries;
        ret = io_uring_queue_init_params(sq_entries, ring, &p);
        if (ret != -EINVAL)
            return ret;
    }
    return ret;
}

/* ---- ring_sqe and its parking lot -------------------------------------------------------- */

/*
 * Entries parked for one ring, a FIFO in a growing array: q[head..head+n). One per ring that
 * has any, in a short per-thread list: a thread owns a ring or two, and the list is only
 * looked at when something is parked (nr_parked_total), never on the fast path.
 */
struct park {
    struct park *next;
    const struct io_uring *ring;
    struct io_uring_sqe *q;
    unsigned head, n, cap;
};

static _Thread_local struct park *parks;
static _Thread_local unsigned nr_parked_total;
static _Thread_local uint64_t nr_lost;
static _Thread_local struct io_uring_sqe scratch;

static struct park *park_of(const struct io_uring *ring)
{
    for (struct park *p = parks; p; p = p->next)
        if (p->ring == ring)
            return p;
    return NULL;
}

static void park_free(struct park *p)
{
    for (struct park **pp = &parks; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    nr_parked_total -= p->n;
    free(p->q);
    free(p);
}

/* A zeroed entry at the tail of <ring>'s lot, or the scratch entry when none can be had. */
static struct io_uring_sqe *park_one(struct io_uring *ring)
{
    struct park *p = park_of(ring);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            goto lost;
        p->ring = ring;
        p->next = parks;
        parks = p;
    }
    if (p->n >= RING_PARK_MAX)
        goto lost;
    if (p->head + p->n == p->cap) {
        if (p->head > 0) {
            memmove(p->q, p->q + p->head, (size_t)p->n * sizeof(*p->q));
            p->head = 0;
        } else {
            unsigned cap = p->cap ? 2 * p->cap : 16;
            struct io_uring_sqe *q = realloc(p->q, (size_t)cap * sizeof(*q));
            if (!q)
                goto lost;
            p->q = q;
            p->cap = cap;
        }
    }
    struct io_uring_sqe *sqe = &p->q[p->head + p->n++];
    nr_parked_total++;
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
lost:
    if (p && p->n == 0)
        park_free(p);
    nr_lost++;
    memset(&scratch, 0, sizeof(scratch));
    return &scratch;
}

/* Copies parked entries into free SQ slots; submits once when the SQ is full. Frees the lot
 * when it empties. */
static unsigned unpark(struct io_uring *ring, struct park *p)
{
    bool submitted = false;
    while (p->n > 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        if (!sqe) {
            if (submitted || io_uring_submit(ring) < 0)
                break;
            submitted = true;
            continue;
        }
        *sqe = p->q[p->head++];
        p->n--;
        nr_parked_total--;
    }
    unsigned left = p->n;
    if (left == 0)
        park_free(p);
    return left;
}

unsigned ring_flush_parked(struct io_uring *ring)
{
    struct park *p = nr_parked_total ? park_of(ring) : NULL;
    return p ? unpark(ring, p) : 0;
}

unsigned ring_nr_parked(const struct io_uring *ring)
{
    const struct park *p = nr_parked_total ? park_of(ring) : NULL;
    return p ? p->n : 0;
}

void ring_drop_parked(struct io_uring *ring)
{
    struct park *p = park_of(ring);
    if (p)
        park_free(p);
}

uint64_t ring_nr_lost(void)
{
    return nr_lost;
}

struct io_uring_sqe *ring_sqe(struct io_uring *ring)
{
    /* Order: nothing may overtake a parked entry (a send before its shutdown, a cancel
     * before its close). */
    if (nr_parked_total && ring_flush_parked(ring) > 0)
        return park_one(ring);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    for (int i = 0; !sqe && i < RING_SUBMIT_TRIES; i++) {
        int ret = io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
        /* -EINTR and a partial submit may succeed on a retry; anything else will not until
         * the caller has reaped or memory came back. */
        if (!sqe && ret < 0 && ret != -EINTR)
            break;
    }
    return sqe ? sqe : park_one(ring);
}

/* Takes every completion <ring> has ready, counting those with res >= 0. */
static unsigned reap_ready(struct io_uring *ring, unsigned *ok)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(ring, head, cqe)
    {
        n++;
        if (ok && cqe->res >= 0)
            (*ok)++;
    }
    io_uring_cq_advance(ring, n);
    return n;
}

int ring_msg_all(struct io_uring *ring, const int *fds, unsigned nr, uint64_t ud,
                 unsigned timeout_ms)
{
    /*
     * A batch fits the SQ, so nothing is submitted behind our back, and the CQ, so that its
     * completions never overflow: the kernel would keep the excess on its overflow list, and
     * a wait for more completions than the CQ holds relies on that list to return at all.
     */
    unsigned batch = ring->sq.ring_entries < ring->cq.ring_entries ? ring->sq.ring_entries
                                                                   : ring->cq.ring_entries;
    unsigned reached = 0;
    (void)reap_ready(ring, NULL); /* late completions of an earlier call that timed out */
    for (unsigned i = 0; i < nr;) {
        unsigned n = 0;
        for (; n < batch && i < nr; n++, i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            if (!sqe)
                break;
            io_uring_prep_msg_ring(sqe, fds[i], 0, ud, 0);
            io_uring_sqe_set_data64(sqe, ud);
        }
        if (n == 0)
            return -EBUSY; /* the SQ is full of someone else's entries: not ours to submit */
        int ret = io_uring_submit(ring);
        if (ret < 0)
            return ret;
        struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
        for (unsigned got = 0; got < (unsigned)ret;) {
            struct io_uring_cqe *cqe;
            int w = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
            if (w == -EINTR)
                continue;
            if (w < 0)
                return (int)reached; /* the rest is reaped by the next call */
            got += reap_ready(ring, &reached);
        }
    }
    return (int)reached;
}

struct io_uring_buf_ring *ring_setup_buf_ring(struct io_uring *ring, unsigned nr, uint16_t bgid,
                                              int *err)
{
    size_t size = (size_t)nr * sizeof(struct io_uring_buf);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (p == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)p;
    reg.ring_entries = nr;
    reg.bgid = bgid;
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret) {
        munmap(p, size);
        *err = ret;
        return NULL;
    }
    io_uring_buf_ring_init(p);
    *err = 0;
    return p;
}

void ring_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br, unsigned nr,
                        uint16_t bgid)
{
    io_uring_unregister_buf_ring(ring, bgid);
    munmap(br, (size_t)nr * sizeof(struct io_uring_buf));
}
