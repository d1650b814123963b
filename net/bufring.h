/* SPDX-License-Identifier: MIT */
/*
 * bufring: the shard's provided receive buffers. Multishot receives pick a buffer from this
 * ring only when bytes arrive, so an idle connection holds no receive memory. The engine
 * consumes a buffer while handling its completion and gives it back at once (copying aside
 * only a partial frame), so a few hundred buffers serve any number of connections.
 *
 * Owns the buffer memory and the registered ring. Shard rule: the shard that owns the ring.
 */
#ifndef RINGCAST_BUFRING_H
#define RINGCAST_BUFRING_H

#include "ring.h"

#include <stdint.h>

struct bufring {
    struct io_uring_buf_ring *br;
    uint8_t *base;
    unsigned nr;       /* power of two */
    unsigned buf_size; /* bytes per buffer */
    uint16_t bgid;
};

/*
 * Registers <nr> buffers of <buf_size> bytes as group <bgid> on <ring>. The memory is touched
 * up front, so it counts in the process's baseline rather than growing with connections.
 * Returns 0 or a negative errno.
 */
int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t bgid, unsigned nr,
                 unsigned buf_size);

/* Unregisters and frees. Cannot fail. */
void bufring_fini(struct bufring *b, struct io_uring *ring);

static inline uint8_t *bufring_addr(const struct bufring *b, unsigned bid)
{
    return b->base + (size_t)bid * b->buf_size;
}

/* Gives buffer <bid> back to the kernel. Cannot fail. */
static inline void bufring_recycle(struct bufring *b, unsigned bid)
{
    io_uring_buf_ring_add(b->br, bufring_addr(b, bid), b->buf_size, (unsigned short)bid,
                          (int)(b->nr - 1), 0);
    io_uring_buf_ring_advance(b->br, 1);
}

#endif
