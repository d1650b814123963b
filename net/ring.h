/* SPDX-License-Identifier: MIT */
/*
 * ring: io_uring setup and the small shims that liburing 2.3 (Debian 12) lacks on a kernel
 * that has everything up to 6.18 (PLATFORM.md section 1): constants newer than the 6.1 uapi
 * headers, a buffer-ring setup helper, an SQE getter that submits when the SQ is full, and
 * the user_data codec every request of the engine uses.
 *
 * Owns nothing beyond what ring_init sets up. Shard rule: a ring is used by the thread that
 * created it (IORING_SETUP_SINGLE_ISSUER), except as the target of IORING_OP_MSG_RING.
 */
#ifndef RINGCAST_RING_H
#define RINGCAST_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

/*
 * user_data layout: [op:8][gen:24][idx:32]. <idx> names a connection slot (or a listener);
 * <gen> is the slot's generation when the request was issued, so a completion that arrives
 * after the slot was reused is recognised and dropped (nginx's "instance" bit, widened).
 */
#define RING_GEN_MASK 0xffffffu

static inline uint64_t ring_ud(unsigned op, uint32_t gen, uint32_t idx)
{
    return ((uint64_t)op << 56) | ((uint64_t)(gen & RING_GEN_MASK) << 32) | idx;
}

static inline unsigned ring_ud_op(uint64_t ud)
{
    return (unsigned)(ud >> 56);
}

static inline uint32_t ring_ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 32) & RING_GEN_MASK;
}

static inline uint32_t ring_ud_idx(uint64_t ud)
{
    return (uint32_t)ud;
}

/*
 * Creates <ring> with <sq_entries> SQEs and <cq_entries> CQEs, SINGLE_ISSUER|DEFER_TASKRUN
 * (falling back to COOP_TASKRUN, then to no flags, on kernels that refuse them) and
 * SUBMIT_ALL. Returns 0 or a negative errno from io_uring_queue_init_params.
 */
int ring_init(struct io_uring *ring, unsigned sq_entries, unsigned cq_entries);

/*
 * Returns an SQE, submitting what is queued first when the SQ is full. Never NULL: if the
 * kernel cannot take the submission it retries until it can (the CQ is large enough that this
 * does not happen in practice).
 */
struct io_uring_sqe *ring_sqe(struct io_uring *ring);

/*
 * Rings the doorbell of each of the <nr> rings <fds>: an IORING_OP_MSG_RING from <ring> that
 * posts a completion with user_data <ud> and res 0 in the target. <ring> is a ring this thread
 * submits to and uses for nothing else; its own completions for these requests are reaped
 * here, so it is left empty. Requests go in batches no larger than its SQ and no larger than
 * its CQ, so a small ring serves any <nr> and never waits for more completions than its CQ can
 * hold. Waits up to <timeout_ms> for each batch's completions (a target's completion can wait
 * for the target's thread to enter the kernel); what is still out then is reaped by the next
 * call. Returns how many targets took the message, or a negative errno from submitting.
 */
int ring_msg_all(struct io_uring *ring, const int *fds, unsigned nr, uint64_t ud,
                 unsigned timeout_ms);

/*
 * Registers a provided-buffer ring of <nr> entries (power of two) as group <bgid>: liburing
 * 2.4's io_uring_setup_buf_ring, which 2.3 lacks. Returns the ring or NULL with *<err> set.
 */
struct io_uring_buf_ring *ring_setup_buf_ring(struct io_uring *ring, unsigned nr, uint16_t bgid,
                                              int *err);

/* Unregisters and unmaps a ring made by ring_setup_buf_ring. Cannot fail. */
void ring_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br, unsigned nr,
                        uint16_t bgid);

#endif
