/* SPDX-License-Identifier: MIT */
#include "ring.h"

#include <errno.h>
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

struct io_uring_sqe *ring_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    while (sqe == NULL) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
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
