/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/iptable.c through iptable.h: counts and limits per address, entries
 * that go at their last release, a table that grows for 200,000 addresses held at once and
 * shrinks back when they leave, random churn checked against a plain array, and two threads
 * counting at once.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "iptable.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MANY 200000u

static void test_limits(void **state)
{
    (void)state;
    struct ip_table *t = iptable_create();
    assert_non_null(t);
    for (int i = 0; i < 3; i++)
        assert_int_equal(iptable_acquire(t, 0x7f000001u, 3), 0);
    assert_int_equal(iptable_acquire(t, 0x7f000001u, 3), -EUSERS);
    assert_int_equal(iptable_count(t, 0x7f000001u), 3);
    /* Another address has its own count; address 0 is an address like any other. */
    assert_int_equal(iptable_acquire(t, 0x7f000002u, 3), 0);
    assert_int_equal(iptable_acquire(t, 0, 3), 0);
    assert_int_equal(iptable_nr(t), 3);
    iptable_release(t, 0x7f000001u);
    assert_int_equal(iptable_acquire(t, 0x7f000001u, 3), 0);
    assert_int_equal(iptable_acquire(t, 0x7f000001u, 3), -EUSERS);
    /* A limit of 0 admits nobody; a lower limit than the count refuses. */
    assert_int_equal(iptable_acquire(t, 0x7f000009u, 0), -EUSERS);
    assert_int_equal(iptable_acquire(t, 0x7f000001u, 1), -EUSERS);
    assert_int_equal(iptable_count(t, 0x7f000009u), 0);
    for (int i = 0; i < 3; i++)
        iptable_release(t, 0x7f000001u);
    iptable_release(t, 0x7f000002u);
    iptable_release(t, 0);
    assert_int_equal(iptable_nr(t), 0);
    /* Releasing what has no count changes nothing (no wrap to 2^32 - 1). */
    iptable_release(t, 0x7f000001u);
    assert_int_equal(iptable_count(t, 0x7f000001u), 0);
    assert_int_equal(iptable_acquire(t, 0x7f000001u, 1), 0);
    iptable_release(t, 0x7f000001u);
    iptable_destroy(t);
    iptable_destroy(NULL);
}

/* 200,000 distinct addresses held at once, then released: every one admitted, each count
 * right, and the table back to its smallest size at the end. */
static void test_many_addresses_grow_and_shrink(void **state)
{
    (void)state;
    struct ip_table *t = iptable_create();
    assert_non_null(t);
    assert_int_equal(iptable_cap(t), IPTABLE_MIN_CAP);
    for (uint32_t i = 0; i < MANY; i++) {
        /* Two connections each from addresses that differ only in their high bits too. */
        uint32_t ip = i * 0x01000193u;
        assert_int_equal(iptable_acquire(t, ip, 2), 0);
        assert_int_equal(iptable_acquire(t, ip, 2), 0);
    }
    assert_int_equal(iptable_nr(t), MANY);
    assert_true(iptable_cap(t) >= 2 * MANY);
    assert_true(iptable_cap(t) <= 4 * MANY);
    for (uint32_t i = 0; i < MANY; i += 997)
        assert_int_equal(iptable_count(t, i * 0x01000193u), 2);
    for (uint32_t i = 0; i < MANY; i++) {
        uint32_t ip = i * 0x01000193u;
        iptable_release(t, ip);
        iptable_release(t, ip);
    }
    assert_int_equal(iptable_nr(t), 0);
    assert_int_equal(iptable_cap(t), IPTABLE_MIN_CAP);
    iptable_destroy(t);
}

/* Random acquires and releases over a small address space, so probe runs form, break and
 * re-form (deletion by backward shift): every count matches a plain array at every check. */
static void test_random_churn(void **state)
{
    (void)state;
    enum { SPACE = 5000, OPS = 400000, LIMIT = 4 };
    static uint32_t ref[SPACE];
    struct ip_table *t = iptable_create();
    assert_non_null(t);
    memset(ref, 0, sizeof(ref));
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t live = 0;
    for (unsigned op = 0; op < OPS; op++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t a = (uint32_t)(x % SPACE);
        uint32_t ip = 0xc0a80000u ^ (a << 7); /* spread over the hash's input bits */
        if ((x >> 32) & 1) {
            int r = iptable_acquire(t, ip, LIMIT);
            if (ref[a] < LIMIT) {
                assert_int_equal(r, 0);
                live += ref[a]++ == 0;
            } else {
                assert_int_equal(r, -EUSERS);
            }
        } else {
            iptable_release(t, ip);
            if (ref[a] > 0)
                live -= --ref[a] == 0;
        }
        if (op % 50000 == 0) {
            assert_int_equal(iptable_nr(t), live);
            for (uint32_t i = 0; i < SPACE; i++)
                assert_int_equal(iptable_count(t, 0xc0a80000u ^ (i << 7)), ref[i]);
        }
    }
    for (uint32_t i = 0; i < SPACE; i++) {
        assert_int_equal(iptable_count(t, 0xc0a80000u ^ (i << 7)), ref[i]);
        while (ref[i]--)
            iptable_release(t, 0xc0a80000u ^ (i << 7));
    }
    assert_int_equal(iptable_nr(t), 0);
    assert_int_equal(iptable_cap(t), IPTABLE_MIN_CAP);
    iptable_destroy(t);
}

/* Two threads (two shards) count the same and different addresses at once. */
struct worker_arg {
    struct ip_table *t;
    uint32_t base;
    int refused;
};

static void *worker(void *p)
{
    struct worker_arg *w = p;
    for (int round = 0; round < 50; round++) {
        for (uint32_t i = 0; i < 1000; i++) {
            if (iptable_acquire(w->t, w->base + i, 1000) != 0)
                w->refused++;
            if (iptable_acquire(w->t, 42, 1000000) != 0)
                w->refused++;
        }
        for (uint32_t i = 0; i < 1000; i++) {
            iptable_release(w->t, w->base + i);
            iptable_release(w->t, 42);
        }
    }
    return NULL;
}

static void test_two_threads(void **state)
{
    (void)state;
    struct ip_table *t = iptable_create();
    assert_non_null(t);
    struct worker_arg a = {t, 0x0a000000u, 0}, b = {t, 0x0b000000u, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, worker, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, worker, &b), 0);
    assert_int_equal(pthread_join(ta, NULL), 0);
    assert_int_equal(pthread_join(tb, NULL), 0);
    assert_int_equal(a.refused + b.refused, 0);
    assert_int_equal(iptable_nr(t), 0);
    assert_int_equal(iptable_count(t, 42), 0);
    iptable_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_many_addresses_grow_and_shrink),
        cmocka_unit_test(test_random_churn),
        cmocka_unit_test(test_two_threads),
    };
    return cmocka_run_group_tests_name("iptable", tests, NULL, NULL);
}
