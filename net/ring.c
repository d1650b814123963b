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
