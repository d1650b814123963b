/* SPDX-License-Identifier: MIT */
/*
 * xshard: the N x N mesh of single-producer single-consumer rings (contract in xshard.h).
 *
 * Every ring (from, to) is split into four cache lines so that each line has one writer:
 *   - the published tail, written by <from> once per flush and read by <to>;
 *   - the published head, written by <to> once per pop and read by <from>;
 *   - <from>'s private line: its unpublished tail, its cached copy of the head, the overflow;
 *   - <to>'s private line: its head, its cached copy of the tail.
 * A side touches the other side's line only when its cached copy says the ring is full
 * (producer) or empty (consumer), so in steady state a batch costs one line transfer each way,
 * as in Seastar's smp queues and DPDK's rte_ring with cached indices.
 *
 * Each shard also has one shared line, its doorbell flag `sleeping`, and one private line with
 * the bitmaps that tell xshard_flush() which of its rings need publishing or draining.
 */
#include "xshard.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------------------------- */

#define XSHARD_CACHELINE 64

/*
 * Ring indices are free-running 32-bit counters; a slot is index & mask. They start just below
 * the 2^32 wrap, the way the kernel starts jiffies at -5 minutes, so that every test run and
 * every shard's first few hundred envelopes cross the wrap instead of only a long-running
 * broker.
 */
#define XSHARD_INDEX_ORIGIN ((uint32_t)-512)

/* Overflow capacity: first allocation, and the most kept once it drains (larger is freed). */
#define XSHARD_OVF_MIN  16
#define XSHARD_OVF_KEEP 64

/* A FIFO of envelopes that did not fit in the ring: power-of-two circular array, grown by 2x. */
struct xshard_ovf {
    struct xshard_env *envs;
    uint32_t head, len, cap;
};

struct xshard_ring {
    /* Written by the producer in xshard_flush, read by the consumer. */
    alignas(XSHARD_CACHELINE) _Atomic uint32_t tail;

    /* Written by the consumer in xshard_pop, read by the producer. */
    alignas(XSHARD_CACHELINE) _Atomic uint32_t head;

    /* Producer only. */
    alignas(XSHARD_CACHELINE) uint32_t p_tail; /* next slot to fill; published at flush */
    uint32_t p_head;                           /* cached head */
    uint32_t p_mask;
    struct xshard_env *p_slots;
    struct xshard_ovf ovf;

    /* Consumer only. The slot pointer is duplicated so that it never reads the line above. */
    alignas(XSHARD_CACHELINE) uint32_t c_head; /* next slot to read; published after popping */
    uint32_t c_tail;                           /* cached tail */
    uint32_t c_mask;
    struct xshard_env *c_slots;
};

struct xshard_shard {
    /*
     * 1 between xshard_prepare_sleep and either a producer's claim or xshard_wake_done. Alone on
     * its line: every producer reads it on every flush, and only a sleeping shard writes it.
     */
    alignas(XSHARD_CACHELINE) atomic_uint sleeping;

    /* Private to the shard's own thread. */
    alignas(XSHARD_CACHELINE) uint64_t dirty; /* rings (this, to) pushed but not published */
    uint64_t overflowing;                     /* rings (this, to) with a non-empty overflow */
    unsigned rr;                              /* producer that xshard_pop serves first */
};

struct xshard {
    unsigned nr_shards;
    uint32_t cap;
    struct xshard_shard *shards;
    struct xshard_ring *rings; /* [from * nr_shards + to] */
};

static struct xshard_ring *ring_of(struct xshard *x, unsigned from, unsigned to)
{
    assert(from < x->nr_shards && to < x->nr_shards);
    return &x->rings[(size_t)from * x->nr_shards + to];
}

static uint64_t bit(unsigned shard)
{
    return UINT64_C(1) << shard;
}

/* ---------------------------------------------------------------------------------------------
 * Overflow (producer side)
 * ------------------------------------------------------------------------------------------- */

static int ovf_append(struct xshard_ovf *o, const struct xshard_env *env)
{
    if (o->len == o->cap) {
        uint32_t cap = o->cap ? o->cap * 2 : XSHARD_OVF_MIN;
        struct xshard_env *envs;
        uint32_t first;

        if (cap == 0 || cap > UINT32_C(1) << 31)
            return -ENOMEM;
        envs = malloc((size_t)cap * sizeof(*envs));
        if (!envs)
            return -ENOMEM;
        /* Unwrap the old circle: [head, cap) then [0, head). The guard keeps the first
         * growth's NULL array away from memcpy, which must not see NULL even for 0 bytes. */
        if (o->len) {
            first = o->cap - o->head;
            if (first > o->len)
                first = o->len;
            memcpy(envs, o->envs + o->head, first * sizeof(*envs));
            memcpy(envs + first, o->envs, (o->len - first) * sizeof(*envs));
        }
        free(o->envs);
        o->envs = envs;
        o->head = 0;
        o->cap = cap;
    }
    o->envs[(o->head + o->len) & (o->cap - 1)] = *env;
    o->len++;
    return 0;
}

static void ovf_reset(struct xshard_ovf *o)
{
    /* A burst should not pin its peak memory for the rest of the process: keep a small array
     * for the next one, free anything larger. */
    o->head = 0;
    if (o->cap > XSHARD_OVF_KEEP) {
        free(o->envs);
        o->envs = NULL;
        o->cap = 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Ring (both sides)
 * ------------------------------------------------------------------------------------------- */

/* Free slots for the producer, refreshing the cached head only when it shows fewer than <want>. */
static uint32_t ring_room(struct xshard_ring *r, uint32_t want)
{
    uint32_t cap = r->p_mask + 1;

    if (cap - (r->p_tail - r->p_head) < want) {
        /* Acquire; pairs with the release store of head in ring_take: the consumer has finished
         * reading the slots below head before we overwrite them. */
        r->p_head = atomic_load_explicit(&r->head, memory_order_acquire);
    }
    return cap - (r->p_tail - r->p_head);
}

/* Moves as much of the overflow as fits into the ring, oldest first. Returns what is left. */
static uint32_t ring_drain_ovf(struct xshard_ring *r, uint64_t *dirty, unsigned to)
{
    struct xshard_ovf *o = &r->ovf;
    uint32_t n = ring_room(r, o->len), i;

    if (n > o->len)
        n = o->len;
    for (i = 0; i < n; i++) {
        r->p_slots[r->p_tail & r->p_mask] = o->envs[o->head];
        r->p_tail++;
        o->head = (o->head + 1) & (o->cap - 1);
    }
    o->len -= n;
    if (n)
        *dirty |= bit(to);
    if (o->len == 0)
        ovf_reset(o);
    return o->len;
}

/* Consumer: takes up to <want> envelopes from <r> into <out>. */
static size_t ring_take(struct xshard_ring *r, struct xshard_env *out, size_t want)
{
    uint32_t avail = r->c_tail - r->c_head, first, slot;

    if (avail < want) {
        /* Acquire; pairs with the release store of tail in xshard_flush: the slots below tail
         * were written before the producer published it. */
        r->c_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        avail = r->c_tail - r->c_head;
    }
    if (avail > want)
        avail = (uint32_t)want;
    if (avail == 0)
        return 0;

    slot = r->c_head & r->c_mask;
    first = r->c_mask + 1 - slot;
    if (first > avail)
        first = avail;
    memcpy(out, r->c_slots + slot, first * sizeof(*out));
    memcpy(out + first, r->c_slots, (avail - first) * sizeof(*out));
    r->c_head += avail;
    /* Release; pairs with the acquire in ring_room: our reads of the slots are done before the
     * producer may reuse them. */
    atomic_store_explicit(&r->head, r->c_head, memory_order_release);
    return avail;
}

/* ---------------------------------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------------------------------- */

struct xshard *xshard_create(unsigned nr_shards, unsigned ring_cap)
{
    size_t nr_rings = (size_t)nr_shards * nr_shards, slots_len, i;
    struct xshard *x;
    uint32_t cap = 1;

    if (nr_shards == 0 || nr_shards > XSHARD_MAX_SHARDS || ring_cap > UINT32_C(1) << 31) {
        errno = EINVAL;
        return NULL;
    }
    while (cap < ring_cap)
        cap <<= 1;
    /* aligned_alloc wants a size that is a multiple of the alignment (C11 7.22.3.1). */
    slots_len = ((size_t)cap * sizeof(struct xshard_env) + XSHARD_CACHELINE - 1) &
                ~(size_t)(XSHARD_CACHELINE - 1);

    x = calloc(1, sizeof(*x));
    if (!x)
        goto fail;
    x->nr_shards = nr_shards;
    x->cap = cap;
    x->shards = aligned_alloc(XSHARD_CACHELINE, nr_shards * sizeof(*x->shards));
    x->rings = aligned_alloc(XSHARD_CACHELINE, nr_rings * sizeof(*x->rings));
    if (!x->shards || !x->rings)
        goto fail;
    memset(x->shards, 0, nr_shards * sizeof(*x->shards));
    memset(x->rings, 0, nr_rings * sizeof(*x->rings));
    for (i = 0; i < nr_shards; i++)
        atomic_init(&x->shards[i].sleeping, 0);
    for (i = 0; i < nr_rings; i++) {
        struct xshard_ring *r = &x->rings[i];

        r->p_slots = aligned_alloc(XSHARD_CACHELINE, slots_len);
        if (!r->p_slots)
            goto fail;
        r->c_slots = r->p_slots;
        r->p_mask = r->c_mask = cap - 1;
        r->p_tail = r->p_head = r->c_head = r->c_tail = XSHARD_INDEX_ORIGIN;
        atomic_init(&r->tail, XSHARD_INDEX_ORIGIN);
        atomic_init(&r->head, XSHARD_INDEX_ORIGIN);
    }
    return x;

fail:
    xshard_destroy(x);
    errno = ENOMEM;
    return NULL;
}

void xshard_destroy(struct xshard *x)
{
    size_t i;

    if (!x)
        return;
    if (x->rings) {
        for (i = 0; i < (size_t)x->nr_shards * x->nr_shards; i++) {
            free(x->rings[i].p_slots);
            free(x->rings[i].ovf.envs);
        }
    }
    free(x->rings);
    free(x->shards);
    free(x);
}

int xshard_push(struct xshard *x, unsigned from, unsigned to, const struct xshard_env *env)
{
    struct xshard_ring *r = ring_of(x, from, to);
    struct xshard_shard *s = &x->shards[from];

    /* Once the pair has overflow, everything after it queues behind it: FIFO per pair. */
    if (r->ovf.len == 0 && ring_room(r, 1) > 0) {
        r->p_slots[r->p_tail & r->p_mask] = *env;
        r->p_tail++;
        s->dirty |= bit(to);
        return 0;
    }
    if (ovf_append(&r->ovf, env) < 0)
        return -ENOMEM;
    s->overflowing |= bit(to);
    return 0;
}

uint32_t xshard_backlog(struct xshard *x, unsigned from, unsigned to, uint32_t floor)
{
    struct xshard_ring *r = ring_of(x, from, to);
    uint32_t n = r->p_tail - r->p_head;
    if (n + r->ovf.len > floor) {
        /* Acquire; as in ring_room. */
        r->p_head = atomic_load_explicit(&r->head, memory_order_acquire);
        n = r->p_tail - r->p_head;
    }
    return n + (uint32_t)r->ovf.len;
}

uint64_t xshard_flush(struct xshard *x, unsigned from, bool *pending)
{
    struct xshard_shard *s = &x->shards[from];
    uint64_t dirty, wake = 0, m;

    /* Overflow first: all of it was pushed after what is already in the ring and before
     * anything pushed later, so moving it in now keeps each pair in order. */
    for (m = s->overflowing; m; m &= m - 1) {
        unsigned to = (unsigned)__builtin_ctzll(m);

        if (ring_drain_ovf(ring_of(x, from, to), &s->dirty, to) == 0)
            s->overflowing &= ~bit(to);
    }

    dirty = s->dirty;
    s->dirty = 0;
    for (m = dirty; m; m &= m - 1) {
        struct xshard_ring *r = ring_of(x, from, (unsigned)__builtin_ctzll(m));

        /* Release; pairs with the acquire in ring_take and the seq_cst load in
         * xshard_prepare_sleep: the slots are written before the consumer sees the tail. */
        atomic_store_explicit(&r->tail, r->p_tail, memory_order_release);
    }

    if (dirty) {
        /*
         * Seq_cst fence; pairs with the seq_cst store of `sleeping` and the seq_cst loads of
         * tail in xshard_prepare_sleep. It is Dekker's handshake (Seastar's maybe_wakeup): the
         * consumer stores its flag then loads our tail, we store our tail then load its flag,
         * and without the fence both loads could see the old values (store-load reordering,
         * which x86 allows too), leaving the consumer asleep on a non-empty ring. One fence
         * after all the stores serves every ring of this flush.
         */
        atomic_thread_fence(memory_order_seq_cst);
        for (m = dirty; m; m &= m - 1) {
            unsigned to = (unsigned)__builtin_ctzll(m);
            atomic_uint *flag = &x->shards[to].sleeping;

            /* Relaxed: the fence above orders the load (pairing with the seq_cst store in
             * xshard_prepare_sleep), and atomicity alone makes the exchange pick exactly one
             * claimer. The plain load first keeps the line shared while the consumer is
             * awake, instead of writing it on every flush. */
            if (atomic_load_explicit(flag, memory_order_relaxed) &&
                atomic_exchange_explicit(flag, 0, memory_order_relaxed))
                wake |= bit(to);
        }
    }

    if (pending)
        *pending = s->overflowing != 0;
    return wake;
}

size_t xshard_pop(struct xshard *x, unsigned to, struct xshard_env *out, size_t max)
{
    struct xshard_shard *s = &x->shards[to];
    unsigned n = x->nr_shards, start = s->rr, nr_live = n, k, from;
    uint64_t live = n == 64 ? UINT64_MAX : bit(n) - 1;
    bool first_pass = true;
    size_t got = 0;

    /*
     * Passes over the producers in round-robin order, starting with s->rr. In each pass every
     * producer that may still have envelopes gets up to an equal share of what is left of
     * <max>, so a busy producer cannot starve the others; one that gives less than its share
     * is empty and is skipped from then on. A pass either drops a producer or fills its share
     * of <max>, so there are few passes.
     */
    while (got < max && nr_live) {
        size_t quota = (max - got) / nr_live;

        if (quota == 0)
            quota = 1;
        for (k = 0; k < n && got < max; k++) {
            size_t want = max - got < quota ? max - got : quota, took;

            from = start + k < n ? start + k : start + k - n;
            if (!(live & bit(from)))
                continue;
            took = ring_take(ring_of(x, from, to), out + got, want);
            got += took;
            if (took < want) {
                live &= ~bit(from);
                nr_live--;
            }
        }
        if (first_pass) {
            /* After a full circle the next call starts one further on; after a circle cut
             * short by <max>, it starts with the first producer this one did not reach. */
            s->rr = (start + (k == n ? 1 : k)) % n;
            first_pass = false;
        }
    }
    return got;
}

bool xshard_prepare_sleep(struct xshard *x, unsigned to)
{
    atomic_uint *flag = &x->shards[to].sleeping;
    unsigned from;

    /* Seq_cst; pairs with the fence in xshard_flush (see there). */
    atomic_store_explicit(flag, 1, memory_order_seq_cst);
    for (from = 0; from < x->nr_shards; from++) {
        struct xshard_ring *r = ring_of(x, from, to);

        /* Seq_cst, not acquire: in C11 only a seq_cst load stays after the seq_cst store
         * above. It is also an acquire; pairs with the release store of tail in xshard_flush,
         * which makes caching it safe. */
        r->c_tail = atomic_load_explicit(&r->tail, memory_order_seq_cst);
        if (r->c_tail != r->c_head) {
            /* Relaxed: withdrawing the announcement orders nothing. A producer may already
             * have claimed it; the doorbell it sends is then a harmless spurious wakeup. */
            atomic_store_explicit(flag, 0, memory_order_relaxed);
            return false;
        }
    }
    return true;
}

void xshard_wake_done(struct xshard *x, unsigned to)
{
    /* Relaxed: the shard is awake and re-checks its rings before it sleeps again; clearing the
     * flag only stops producers from ringing a doorbell nobody waits on (the shard may have
     * woken for I/O, with the flag still set). */
    atomic_store_explicit(&x->shards[to].sleeping, 0, memory_order_relaxed);
}
