/* SPDX-License-Identifier: MIT */
#include "bufring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t bgid, unsigned nr,
                 unsigned buf_size)
{
    int err;
    memset(b, 0, sizeof(*b));
    size_t size = (size_t)nr * buf_size;
    b->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (b->base == MAP_FAILED) {
        b->base = NULL;
        return -errno;
    }
    /* Fault the pages in now: receive memory is a fixed cost of the shard, not of a client. */
    memset(b->base, 0, size);
    b->br = ring_setup_buf_ring(ring, nr, bgid, &err);
    if (!b->br) {
        munmap(b->base, size);
        b->base = NULL;
        return err;
    }
    b->nr = nr;
    b->buf_size = buf_size;
    b->bgid = bgid;
    for (unsigned i = 0; i < nr; i++)
        io_uring_buf_ring_add(b->br, bufring_addr(b, i), buf_size, (unsigned short)i, (int)(nr - 1),
                              (int)i);
    io_uring_buf_ring_advance(b->br, (int)nr);
    return 0;
}

void bufring_fini(struct bufring *b, struct io_uring *ring)
{
    if (b->br)
        ring_free_buf_ring(ring, b->br, b->nr, b->bgid);
    if (b->base)
        munmap(b->base, (size_t)b->nr * b->buf_size);
    memset(b, 0, sizeof(*b));
}
