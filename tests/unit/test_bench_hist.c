/* SPDX-License-Identifier: MIT */
/*
 * ringcast-bench's latency histogram (tools/bench/hist.c): bucket maths, precision bounds,
 * percentiles, merging.
 *
 * tests/unit/CMakeLists.txt links every unit test with ringcast_engine only, so the module
 * under test is compiled in by including its .c file (h2o's habit, STYLE.md 2.6).
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "../../tools/bench/hist.c"

#include <stdlib.h>

static struct hist *new_hist(void)
{
    struct hist *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    return h;
}

/* Buckets tile the whole 64-bit range: no gap, no overlap, every value lands in its bucket. */
static void buckets_tile_the_range(void **state)
{
    (void)state;
    assert_int_equal(hist_bucket_low(0), 0);
    for (unsigned i = 0; i + 1 < HIST_NR_BUCKETS; i++) {
        assert_true(hist_bucket_high(i) >= hist_bucket_low(i));
        assert_true(hist_bucket_low(i + 1) == hist_bucket_high(i) + 1);
        assert_int_equal(hist_index(hist_bucket_low(i)), i);
        assert_int_equal(hist_index(hist_bucket_high(i)), i);
    }
    assert_true(hist_bucket_high(HIST_NR_BUCKETS - 1) == UINT64_MAX);
    assert_int_equal(hist_index(UINT64_MAX), HIST_NR_BUCKETS - 1);
}

/* Small values are exact; any bucket is at most 1/128 of its lowest value wide. */
static void precision_is_bounded(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < 256; v++)
        assert_true(hist_bucket_low(hist_index(v)) == v && hist_bucket_high(hist_index(v)) == v);
    for (unsigned i = 256; i < HIST_NR_BUCKETS; i++) {
        uint64_t lo = hist_bucket_low(i), width = hist_bucket_high(i) - lo + 1;
        assert_true(width * 128 <= lo);
    }
}

static void empty_histogram(void **state)
{
    (void)state;
    struct hist *h = new_hist();
    assert_true(hist_quantile(h, 0.5) == 0);
    assert_true(hist_quantile(h, 1.0) == 0);
    assert_true(hist_mean(h) == 0.0);
    free(h);
}

/* 1..100000 uniformly: each quantile is within the bucket precision of the exact answer. */
static void quantiles_of_uniform_values(void **state)
{
    (void)state;
    struct hist *h = new_hist();
    for (uint64_t v = 1; v <= 100000; v++)
        hist_record(h, v * 1000);
    assert_true(h->count == 100000);
    assert_true(h->min == 1000 && h->max == 100000000);
    static const double q[] = {0.5, 0.9, 0.99, 0.999};
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        double exact = q[i] * 100000 * 1000;
        double got = (double)hist_quantile(h, q[i]);
        assert_true(got >= exact);
        assert_true(got <= exact * (1 + 1.0 / 128));
    }
    assert_true(hist_quantile(h, 1.0) == 100000000);
    assert_true(hist_mean(h) == 50000.5 * 1000);
    free(h);
}

/* Ranks are ceil(q * n): p99 of 100 values is the 99th, not the 100th. */
static void quantile_rank_is_exact_for_small_counts(void **state)
{
    (void)state;
    struct hist *h = new_hist();
    for (uint64_t v = 1; v <= 100; v++)
        hist_record(h, v);
    assert_true(hist_quantile(h, 0.5) == 50);
    assert_true(hist_quantile(h, 0.9) == 90);
    assert_true(hist_quantile(h, 0.99) == 99);
    assert_true(hist_quantile(h, 0.999) == 100);
    assert_true(hist_quantile(h, 1.0) == 100);
    assert_true(hist_quantile(h, 0.001) == 1);
    free(h);
}

/* A single huge value: p100 is the exact maximum, not the bucket's upper edge. */
static void max_is_exact(void **state)
{
    (void)state;
    struct hist *h = new_hist();
    hist_record(h, 123456789012ull);
    assert_true(hist_quantile(h, 1.0) == 123456789012ull);
    assert_true(hist_quantile(h, 0.5) == 123456789012ull);
    free(h);
}

/* Merging the histograms of several workers equals recording everything in one. */
static void merge_equals_single(void **state)
{
    (void)state;
    struct hist *a = new_hist(), *b = new_hist(), *all = new_hist(), *m = new_hist();
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 50000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t v = x % 50000000;
        hist_record(i % 3 ? a : b, v);
        hist_record(all, v);
    }
    hist_merge(m, a);
    hist_merge(m, b);
    assert_true(m->count == all->count && m->sum == all->sum);
    assert_true(m->min == all->min && m->max == all->max);
    assert_memory_equal(m->counts, all->counts, sizeof(all->counts));
    assert_true(hist_quantile(m, 0.99) == hist_quantile(all, 0.99));
    /* Merging an empty histogram changes nothing. */
    struct hist *empty = new_hist();
    hist_merge(m, empty);
    assert_true(m->count == all->count && m->min == all->min);
    free(a), free(b), free(all), free(m), free(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets_tile_the_range),
        cmocka_unit_test(precision_is_bounded),
        cmocka_unit_test(empty_histogram),
        cmocka_unit_test(quantiles_of_uniform_values),
        cmocka_unit_test(quantile_rank_is_exact_for_small_counts),
        cmocka_unit_test(max_is_exact),
        cmocka_unit_test(merge_equals_single),
    };
    return cmocka_run_group_tests_name("bench_hist", tests, NULL, NULL);
}
