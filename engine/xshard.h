/* SPDX-License-Identifier: MIT */
/*
 * xshard: the cross-shard mesh. One bounded single-producer single-consumer ring per ordered
 * pair of shards (from, to), carrying fixed-size envelopes. Head and tail live on separate
 * cache lines; the producer publishes a batch with one release store (xshard_flush), the
 * consumer takes what is there with one acquire load. When a ring is full the producer keeps
 * the overflow on its own side, in order, and pushes it on a later flush: it never blocks and
 * never loses an envelope.
 *
 * Doorbell: a consumer that is about to sleep calls xshard_prepare_sleep(); producers that
 * flush into one of its rings afterwards learn from xshard_flush() that the consumer must be
 * woken (the engine does that with IORING_OP_MSG_RING). Only one producer gets "wake" per
 * sleep, so a sleeping shard gets one doorbell, not one per peer.
 *
 * Owns: the rings and the overflow lists. Does not own what envelopes point to: the envelope's
 * sender documents who frees it. Shard rule: xshard_push/xshard_flush for pair (from, *) only
 * on shard <from>; xshard_pop, xshard_prepare_sleep, xshard_wake_done only on shard <to>.
 * xshard_create/destroy on one thread while no shard runs.
 */
#ifndef RINGCAST_XSHARD_H
#define RINGCAST_XSHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One envelope: a kind, a small argument and two payload words. 24 bytes. */
struct xshard_env {
    uint32_t kind;
    uint32_t arg;
    void *ptr;
    uint64_t val;
};

struct xshard;

/* The doorbell mask of xshard_flush() has one bit per shard. */
#define XSHARD_MAX_SHARDS 64

/*
 * Creates the mesh for <nr_shards> shards, each ring holding <ring_cap> envelopes (rounded up
 * to a power of two). Returns NULL on allocation failure (errno ENOMEM), or when <nr_shards>
 * is 0 or above XSHARD_MAX_SHARDS, or <ring_cap> above 2^31 (errno EINVAL).
 */
struct xshard *xshard_create(unsigned nr_shards, unsigned ring_cap);

/* Frees the mesh and any overflow still held. Envelopes still queued are dropped. */
void xshard_destroy(struct xshard *x);

/*
 * Queues <env> from shard <from> to shard <to> (<from> may equal <to>: the envelope then
 * travels through the loop-back ring like any other). Nothing is visible to the consumer until
 * xshard_flush(). Returns 0, or -ENOMEM if the overflow list could not grow.
 */
int xshard_push(struct xshard *x, unsigned from, unsigned to, const struct xshard_env *env);

/*
 * Envelopes queued from <from> to <to> that <to> has not taken yet: at least <floor> is known
 * cheaply from <from>'s own view; above it the consumer's position is read (one acquire load)
 * for the exact figure. Only on shard <from>. Cannot fail.
 */
uint32_t xshard_backlog(struct xshard *x, unsigned from, unsigned to, uint32_t floor);

/*
 * Publishes everything shard <from> queued since its last flush, overflow first, in order.
 * Returns a bitmask of the shards that must be woken (bit <to> set when <to> had announced it
 * was going to sleep and this call is the one that claimed the doorbell). Only the first 64
 * shards can be flagged; the engine caps shards at 64.
 * Sets *<pending> (when not NULL) to true when some envelopes are still held in overflow (the
 * ring was full): the caller must flush again soon without sleeping indefinitely.
 * Cannot fail.
 */
uint64_t xshard_flush(struct xshard *x, unsigned from, bool *pending);

/*
 * Takes up to <max> envelopes for shard <to>, from all producers, into <out>. Envelopes from
 * one producer come out in the order they were pushed. Producers share <max> fairly: each gets
 * an equal part first, and the producer served first rotates from call to call. Returns the
 * number taken. Cannot fail.
 */
size_t xshard_pop(struct xshard *x, unsigned to, struct xshard_env *out, size_t max);

/*
 * Announces that shard <to> is about to sleep. Returns false when envelopes are already
 * waiting for it (it must not sleep: pop them first; the announcement is withdrawn), true when
 * it may sleep: any producer that publishes afterwards will get <to>'s bit from xshard_flush().
 * A producer may claim the bit just before a false return, so a shard can see one spurious
 * doorbell; it costs one extra loop iteration. Cannot fail.
 * seq_cst; pairs with the fence in xshard_flush().
 */
bool xshard_prepare_sleep(struct xshard *x, unsigned to);

/* Shard <to> is awake again (called after its wait returns). Cannot fail. */
void xshard_wake_done(struct xshard *x, unsigned to);

#endif
