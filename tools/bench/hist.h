/* SPDX-License-Identifier: MIT */
/*
 * hist: a log-linear latency histogram in the style of HdrHistogram, for ringcast-bench.
 *
 * Values are unsigned 64-bit integers (nanoseconds in practice). Values below 2^HIST_SUB_BITS
 * get a bucket each; above that, every power of two is split into 2^(HIST_SUB_BITS - 1) equal
 * buckets, so a bucket is never wider than 1/128 of the values it holds (0.8% with 8 sub-bits)
 * whatever the magnitude: 1 microsecond and 10 seconds are both resolved to better than 1%.
 * The whole 64-bit range fits in HIST_NR_BUCKETS counters (58 KiB), so nothing is ever
 * clamped and two histograms merge by adding counters.
 *
 * Owns nothing outside the struct; the all-zero struct is an empty histogram. One writer at
 * a time: the writer updates counters with relaxed atomic stores, so another process may read
 * a histogram that is being written (through shared memory) and see a slightly stale but
 * never torn count; hist_merge() reads that way.
 */
#ifndef RINGCAST_BENCH_HIST_H
#define RINGCAST_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 8
#define HIST_HALF     (1u << (HIST_SUB_BITS - 1))
/* Exponent shifts run from 1 to 64 - HIST_SUB_BITS + 1; see hist_index(). */
#define HIST_NR_BUCKETS ((64 - HIST_SUB_BITS + 2) * HIST_HALF)

struct hist {
    uint64_t count;
    uint64_t sum; /* wraps after 584 years of nanoseconds: fine for a mean */
    uint64_t min; /* meaningful only when count > 0 */
    uint64_t max;
    uint64_t counts[HIST_NR_BUCKETS];
};

/* Bucket index of <v>. Cannot fail. */
unsigned hist_index(uint64_t v);

/* Smallest value that falls into bucket <idx>. Cannot fail. */
uint64_t hist_bucket_low(unsigned idx);

/* Largest value that falls into bucket <idx>. Cannot fail. */
uint64_t hist_bucket_high(unsigned idx);

/* Empties <h>. Cannot fail. */
void hist_reset(struct hist *h);

/* Records one value. Cannot fail. */
void hist_record(struct hist *h, uint64_t v);

/*
 * Adds <src> into <dst>. <src> may be written concurrently by another process (its counters
 * are read with relaxed atomic loads); <dst> must be private to the caller. Cannot fail.
 */
void hist_merge(struct hist *dst, const struct hist *src);

/*
 * The value at quantile <q> (0 < q <= 1): the highest value of the bucket holding the
 * ceil(q * count)-th smallest recorded value, clamped to [min, max] so that p100 is the exact
 * maximum. Returns 0 for an empty histogram. Cannot fail.
 */
uint64_t hist_quantile(const struct hist *h, double q);

/* Mean of the recorded values; 0 when empty. Cannot fail. */
double hist_mean(const struct hist *h);

#endif
