/* SPDX-License-Identifier: MIT */
/*
 * ringcast-bench's open-loop pacing and random publisher choice (tools/bench/pace.c): exact
 * event counts, schedules that never drift, catch-up that keeps scheduled timestamps (no
 * coordinated omission), and picks that are uniform, reproducible and not in connection order.
 *
 * The module is compiled in by including its .c file (see test_bench_hist.c).
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "../../tools/bench/pace.c"

#include <string.h>

#define MS 1000000ull
#define S  1000000000ull

static void counts_are_exact(void **state)
{
    (void)state;
    struct pace p;
    /* 200 publishes/s for 3 s: 600 events, the last at 2.995 s. */
    pace_init(&p, 200, 5 * S, 8 * S);
    assert_true(p.limit == 600);
    assert_true(pace_time(&p, 599) == 5 * S + 2995 * MS);
    /* A fractional rate over a fractional span: ceil(2.5 * 3) = 8 events in [0, 2.5 s). */
    pace_init(&p, 3, 0, 2500 * MS);
    assert_true(p.limit == 8);
    /* No rate, or no time: nothing. */
    pace_init(&p, 0, 0, S);
    assert_true(pace_due(&p, 10 * S) == 0 && pace_take(&p) == UINT64_MAX);
    pace_init(&p, 100, S, S);
    assert_true(pace_due(&p, 10 * S) == 0);
}

static void due_follows_the_clock(void **state)
{
    (void)state;
    struct pace p;
    pace_init(&p, 1000, 10 * S, UINT64_MAX);
    assert_true(pace_due(&p, 10 * S - 1) == 0);
    assert_true(pace_due(&p, 10 * S) == 1);
    assert_true(pace_due(&p, 10 * S + MS - 1) == 1);
    assert_true(pace_due(&p, 10 * S + MS) == 2);
    assert_true(pace_due(&p, 10 * S + 500 * MS) == 501);
    assert_true(pace_take(&p) == 10 * S);
    assert_true(pace_take(&p) == 10 * S + MS);
    assert_true(pace_due(&p, 10 * S + MS) == 0);
    assert_true(pace_next(&p) == 10 * S + 2 * MS);
}

/* A loop that wakes up 100 ms late takes 100 overdue events, each with its own scheduled time:
 * the delay shows up as latency instead of a lower offered rate. */
static void late_loop_catches_up_with_scheduled_stamps(void **state)
{
    (void)state;
    struct pace p;
    pace_init(&p, 1000, 0, S);
    uint64_t now = 100 * MS - 1;
    uint64_t due = pace_due(&p, now);
    assert_true(due == 100);
    for (uint64_t k = 0; k < due; k++)
        assert_true(pace_take(&p) == k * MS);
    assert_true(pace_due(&p, now) == 0);
    /* The end of the schedule stops it, however late the loop is. */
    assert_true(pace_due(&p, 100 * S) == 900);
    p.taken += 900;
    assert_true(pace_take(&p) == UINT64_MAX && pace_next(&p) == UINT64_MAX);
}

/* Times come from the event number, never from summing intervals: 7/s for a billion seconds
 * lands on the exact second even though 1/7 s is not a whole number of nanoseconds. */
static void schedule_never_drifts(void **state)
{
    (void)state;
    struct pace p;
    pace_init(&p, 7, 0, UINT64_MAX);
    assert_true(pace_time(&p, 7) == S);
    assert_true(pace_time(&p, 7000000000ull) == 1000000000ull * S);
    assert_true(pace_time(&p, 1) == 142857142);
    pace_init(&p, 0.5, S, UINT64_MAX);
    assert_true(pace_time(&p, 3) == 7 * S);
}

static void picks_are_uniform(void **state)
{
    (void)state;
    struct rng r;
    uint32_t counts[10] = {0};
    rng_seed(&r, 42);
    for (int i = 0; i < 100000; i++) {
        uint32_t v = rng_below(&r, 10);
        assert_true(v < 10);
        counts[v]++;
    }
    /* Chi-square with 9 degrees of freedom: 27.9 is the 0.1% critical value. */
    double chi = 0;
    for (int i = 0; i < 10; i++)
        chi += (counts[i] - 10000.0) * (counts[i] - 10000.0) / 10000.0;
    assert_true(chi < 27.9);
    assert_true(rng_below(&r, 1) == 0);
}

/* Independent users, not connection order: consecutive picks are rarely neighbours. */
static void picks_are_not_in_connection_order(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 7);
    uint32_t prev = rng_below(&r, 10000), next_in_order = 0, same_room = 0;
    for (int i = 0; i < 10000; i++) {
        uint32_t v = rng_below(&r, 10000);
        next_in_order += v == prev + 1;
        same_room += v / 50 == prev / 50; /* rooms of 50 */
        prev = v;
    }
    assert_true(next_in_order < 10);
    assert_true(same_room < 150); /* 1 in 200 expected: about 50 */
}

/* Every worker seeds the same way and draws the same sequence: one global random order. */
static void same_seed_same_picks(void **state)
{
    (void)state;
    struct rng a, b, c;
    rng_seed(&a, 0x1234);
    rng_seed(&b, 0x1234);
    rng_seed(&c, 0x1235);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = rng_below(&a, 100000), y = rng_below(&b, 100000), z = rng_below(&c, 100000);
        assert_true(x == y);
        differ += x != z;
    }
    assert_true(differ > 990);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_are_exact),
        cmocka_unit_test(due_follows_the_clock),
        cmocka_unit_test(late_loop_catches_up_with_scheduled_stamps),
        cmocka_unit_test(schedule_never_drifts),
        cmocka_unit_test(picks_are_uniform),
        cmocka_unit_test(picks_are_not_in_connection_order),
        cmocka_unit_test(same_seed_same_picks),
    };
    return cmocka_run_group_tests_name("bench_pace", tests, NULL, NULL);
}
