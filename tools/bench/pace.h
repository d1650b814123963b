/* SPDX-License-Identifier: MIT */
/*
 * pace: open-loop rate pacing and the random choice of who acts next, for ringcast-bench.
 *
 * A pace is a fixed schedule: event k (from 0) is due at start + k / rate, whatever happened
 * to earlier events. A loop that falls behind takes every overdue event at once, each still
 * stamped with its own scheduled time, so time lost in the server or in the load generator
 * shows up as latency instead of silently lowering the offered load (the "coordinated
 * omission" that closed-loop generators suffer from; wrk2 does the same).
 *
 * The random choice models independent users: each event picks its actor uniformly at random
 * from everyone, independently of the previous picks, never in connection order (an order that
 * follows connections piles a whole tick of messages into one room and flatters any server
 * that coalesces sends). Several processes that seed a rng identically draw the same sequence,
 * so each can walk one global schedule and act only on the events whose actor it owns.
 *
 * Owns nothing outside its structs; all-zero structs are valid (a zero rate never fires).
 * Any thread, one at a time per struct.
 */
#ifndef RINGCAST_BENCH_PACE_H
#define RINGCAST_BENCH_PACE_H

#include <stdint.h>

struct pace {
    uint64_t start_ns;
    uint64_t rate_mhz; /* events per 1000 seconds: fractional rates stay exact */
    uint64_t taken;    /* events handed out so far */
    uint64_t limit;    /* events in the whole schedule */
};

/*
 * Sets up a schedule of <rate> events per second (> 0; a rate <= 0 gives an empty schedule)
 * from <start_ns>, holding the events due strictly before <end_ns> (UINT64_MAX: no end).
 * Cannot fail.
 */
void pace_init(struct pace *p, double rate, uint64_t start_ns, uint64_t end_ns);

/* Scheduled time of event <k>. Cannot fail. */
uint64_t pace_time(const struct pace *p, uint64_t k);

/* Number of events due at <now_ns> that were not taken yet. Cannot fail. */
uint64_t pace_due(const struct pace *p, uint64_t now_ns);

/* Takes the next event and gives its scheduled time; UINT64_MAX when the schedule is over. */
uint64_t pace_take(struct pace *p);

/* Scheduled time of the next event not taken; UINT64_MAX when the schedule is over. */
uint64_t pace_next(const struct pace *p);

/* A small fast generator (splitmix64): statistical quality only, never for secrets. */
struct rng {
    uint64_t s;
};

/* Seeds <r>. Cannot fail. */
void rng_seed(struct rng *r, uint64_t seed);

/* Next 64 random bits. Cannot fail. */
uint64_t rng_next(struct rng *r);

/* Uniform in [0, <n>) for <n> > 0 (Lemire's multiply-shift; the bias is below 2^-32). */
uint32_t rng_below(struct rng *r, uint32_t n);

#endif
