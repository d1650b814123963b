/* SPDX-License-Identifier: MIT */
/*
 * hist: log-linear histogram. See hist.h for the contract.
 *
 * Index maths, with S = HIST_SUB_BITS and H = 2^(S-1):
 *   v < 2^S:   idx = v (exact buckets)
 *   otherwise: e = msb(v) - S + 1 (>= 1), m = v >> e (in [H, 2H)), idx = e * H + m
 * Consecutive octaves therefore tile the index space without gaps: octave msb = S starts at
 * 2H = 2^S, right after the exact range, and each further octave adds H indices.
 */
#include "hist.h"

#include <string.h>

static inline uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Single writer: a relaxed load and store is a plain add on x86, and never tears for a reader. */
static inline void store(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

unsigned hist_index(uint64_t v)
{
    if (v < (1u << HIST_SUB_BITS))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned e = msb - HIST_SUB_BITS + 1;
    return e * HIST_HALF + (unsigned)(v >> e);
}

uint64_t hist_bucket_low(unsigned idx)
{
    if (idx < (1u << HIST_SUB_BITS))
        return idx;
    unsigned e = idx / HIST_HALF - 1;
    uint64_t m = idx - e * HIST_HALF;
    return m << e;
}

uint64_t hist_bucket_high(unsigned idx)
{
    if (idx < (1u << HIST_SUB_BITS))
        return idx;
    unsigned e = idx / HIST_HALF - 1;
    return hist_bucket_low(idx) + ((1ull << e) - 1);
}

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

void hist_record(struct hist *h, uint64_t v)
{
    unsigned i = hist_index(v);
    uint64_t n = h->count;

    store(&h->counts[i], h->counts[i] + 1);
    if (n == 0 || v < h->min)
        store(&h->min, v);
    if (v > h->max)
        store(&h->max, v);
    store(&h->sum, h->sum + v);
    /* Last, so that a reader never sees a count larger than the buckets account for. */
    __atomic_store_n(&h->count, n + 1, __ATOMIC_RELEASE);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    uint64_t n = __atomic_load_n(&src->count, __ATOMIC_ACQUIRE);
    uint64_t got = 0;

    if (n == 0)
        return;
    for (unsigned i = 0; i < HIST_NR_BUCKETS; i++) {
        uint64_t c = load(&src->counts[i]);
        dst->counts[i] += c;
        got += c;
    }
    uint64_t mn = load(&src->min), mx = load(&src->max);
    if (dst->count == 0 || mn < dst->min)
        dst->min = mn;
    if (mx > dst->max)
        dst->max = mx;
    dst->sum += load(&src->sum);
    /* Buckets read after the count may hold a few more values than <n>: count what was added. */
    dst->count += got;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    /* ceil(q * count), forgiving the rounding of q (0.99 * 100 must be 99, not 100). */
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r - 1e-9)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_NR_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
