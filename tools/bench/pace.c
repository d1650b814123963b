/* SPDX-License-Identifier: MIT */
/*
 * pace: open-loop schedule and random picks. See pace.h for the contract.
 *
 * Times are computed from the event number each time (start + k * 10^12 / rate_mhz, in 128-bit
 * arithmetic) rather than by adding an interval to the previous time, so a schedule never
 * drifts, even over billions of events at a rate whose period is not a whole nanosecond.
 */
#include "pace.h"

#define NS_PER_KS 1000000000000ull /* nanoseconds in 1000 s */

void pace_init(struct pace *p, double rate, uint64_t start_ns, uint64_t end_ns)
{
    p->start_ns = start_ns;
    p->taken = 0;
    p->limit = 0;
    p->rate_mhz = rate > 0 ? (uint64_t)(rate * 1000.0 + 0.5) : 0;
    if (p->rate_mhz == 0)
        return;
    if (end_ns == UINT64_MAX) {
        p->limit = UINT64_MAX;
        return;
    }
    if (end_ns <= start_ns)
        return;
    /* Events k with start + k / rate < end: k < (end - start) * rate, so ceil of that. */
    unsigned __int128 span = (unsigned __int128)(end_ns - start_ns) * p->rate_mhz;
    p->limit = (uint64_t)((span + NS_PER_KS - 1) / NS_PER_KS);
}

uint64_t pace_time(const struct pace *p, uint64_t k)
{
    if (p->rate_mhz == 0)
        return UINT64_MAX;
    unsigned __int128 off = (unsigned __int128)k * NS_PER_KS / p->rate_mhz;
    if (off > UINT64_MAX - p->start_ns)
        return UINT64_MAX;
    return p->start_ns + (uint64_t)off;
}

uint64_t pace_due(const struct pace *p, uint64_t now_ns)
{
    if (p->rate_mhz == 0 || now_ns < p->start_ns || p->taken >= p->limit)
        return 0;
    /* Events 0..k are due where k = floor((now - start) * rate). */
    unsigned __int128 k = (unsigned __int128)(now_ns - p->start_ns) * p->rate_mhz / NS_PER_KS;
    uint64_t upto = k >= p->limit ? p->limit : (uint64_t)k + 1;
    if (upto > p->limit)
        upto = p->limit;
    return upto > p->taken ? upto - p->taken : 0;
}

uint64_t pace_take(struct pace *p)
{
    if (p->taken >= p->limit)
        return UINT64_MAX;
    return pace_time(p, p->taken++);
}

uint64_t pace_next(const struct pace *p)
{
    if (p->taken >= p->limit)
        return UINT64_MAX;
    return pace_time(p, p->taken);
}

void rng_seed(struct rng *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}
