/* SPDX-License-Identifier: MIT */
/*
 * ring: io_uring setup and the small shims that liburing 2.3 (Debian 12) lacks on a kernel
 * that has everything up to 6.18 (PLATFORM.md section 1): constants newer than the 6.1 uapi
 * headers, a buffer-ring setup helper, an SQE getter that submits when the SQ is full (and
 * parks the entry when the kernel takes nothing), a doorbell helper, and the user_data codec
 * every request of the engine uses.
 *
 * Owns nothing beyond what ring_init sets up, and the entries ring_sqe parks. Shard rule: a ring is
 * used by the thread that created it (IORING_SETUP_SINGLE_ISSUER), except as the target of
 * IORING_OP_MSG_RING.
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
 * Returns an SQE to fill, never NULL and never after more than RING_SUBMIT_TRIES submits.
 * When the SQ is full it submits what is queued to make room. When the kernel takes nothing
 * (-EAGAIN: no memory for requests; -EBUSY: completions it cannot post until the caller reaps
 * its CQ; anything else: a broken ring), retrying here cannot help, since reaping is the
 * caller's job and the caller is waiting for us: the entry is parked instead, in this thread's
 * memory, and returned as if it were in the SQ. Parked entries go to the SQ, in order, ahead of
 * any later one, at the next ring_sqe() or ring_flush_parked() on <ring> that finds room.
 * The entry is valid until the next call on this thread. In the last resort (RING_PARK_MAX
 * entries parked, or no memory to park one) the entry is a scratch one that is never
 * submitted: the request is lost and counted in ring_nr_lost(), and the shard lives on.
 * Thread rule: parking is per thread, as a ring has one submitting thread (SINGLE_ISSUER).
 */
struct io_uring_sqe *ring_sqe(struct io_uring *ring);

#define RING_SUBMIT_TRIES 4
#define RING_PARK_MAX     65536

/*
 * Moves what ring_sqe() parked for <ring> into its SQ, in order, as far as there is room,
 * submitting once if the SQ is full. Call it before waiting on <ring>, so that a parked request
 * does not wait for the next ring_sqe(). Returns how many entries are still parked. Cannot
 * fail otherwise.
 */
unsigned ring_flush_parked(struct io_uring *ring);

/* Entries parked for <ring> on this thread. */
unsigned ring_nr_parked(const struct io_uring *ring);

/* Forgets what is parked for <ring> on this thread (before io_uring_queue_exit). */
void ring_drop_parked(struct io_uring *ring);

/* Requests this thread lost because not even parking was possible (see ring_sqe). */
uint64_t ring_nr_lost(void);

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
