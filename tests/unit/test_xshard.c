/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/xshard.c, through the public header only: single-threaded tests of the
 * ring, the overflow, the batching and the doorbell, then a multi-thread stress test (label
 * "stress", run under TSan too) that checks per-pair FIFO order, exact counts and that no
 * doorbell is lost.
 */
#include "xshard.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs <setjmp.h>, <stdarg.h> and <stddef.h> included before it. */
#include <cmocka.h>

#define T_KIND 0x5eedu

static struct xshard_env env_of(unsigned from, uint64_t seq)
{
    struct xshard_env e = {.kind = T_KIND, .arg = from, .ptr = NULL, .val = seq};

    return e;
}

static void push_ok(struct xshard *x, unsigned from, unsigned to, uint64_t seq)
{
    struct xshard_env e = env_of(from, seq);

    assert_int_equal(xshard_push(x, from, to, &e), 0);
}

/* Pops exactly <n> envelopes for <to> and checks that they are <from>'s <seq>, <seq> + 1, ... */
static void pop_expect(struct xshard *x, unsigned to, unsigned from, uint64_t seq, size_t n)
{
    struct xshard_env out[64];
    size_t i;

    assert_true(n <= 64);
    assert_int_equal(xshard_pop(x, to, out, 64), n);
    for (i = 0; i < n; i++) {
        assert_int_equal(out[i].kind, T_KIND);
        assert_int_equal(out[i].arg, from);
        assert_int_equal(out[i].val, seq + i);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Single-threaded
 * ------------------------------------------------------------------------------------------- */

static void test_create_rejects_bad_sizes(void **state)
{
    struct xshard *x;

    (void)state;
    errno = 0;
    assert_null(xshard_create(0, 8));
    assert_int_equal(errno, EINVAL);
    assert_null(xshard_create(XSHARD_MAX_SHARDS + 1, 8));
    assert_null(xshard_create(2, (1u << 31) + 1));
    x = xshard_create(1, 0); /* rounds up to a ring of one */
    assert_non_null(x);
    push_ok(x, 0, 0, 0);
    push_ok(x, 0, 0, 1);
    assert_int_equal(xshard_flush(x, 0, NULL), 0);
    pop_expect(x, 0, 0, 0, 1);
    xshard_flush(x, 0, NULL);
    pop_expect(x, 0, 0, 1, 1);
    xshard_destroy(x);
    xshard_destroy(NULL);
}

static void test_empty_pop(void **state)
{
    struct xshard *x = xshard_create(3, 8);
    struct xshard_env out[4];
    bool pending = true;

    (void)state;
    assert_non_null(x);
    assert_int_equal(xshard_pop(x, 1, out, 4), 0);
    assert_int_equal(xshard_flush(x, 0, &pending), 0);
    assert_false(pending);
    assert_int_equal(xshard_pop(x, 1, out, 4), 0);
    push_ok(x, 0, 1, 0);
    xshard_flush(x, 0, NULL);
    assert_int_equal(xshard_pop(x, 1, out, 0), 0); /* max 0 takes nothing */
    pop_expect(x, 1, 0, 0, 1);
    assert_int_equal(xshard_pop(x, 1, out, 4), 0);
    xshard_destroy(x);
}

/*
 * 5 rounds up to 8 slots; 20,000 envelopes in batches of 1 to 8 wrap the slot array thousands
 * of times at every offset. xshard.c starts its indices 512 below 2^32, so this also crosses
 * the 32-bit index wrap.
 */
static void test_wrap_around(void **state)
{
    struct xshard *x = xshard_create(2, 5);
    uint64_t seq = 0;
    unsigned batch = 1, i;
    bool pending;

    (void)state;
    assert_non_null(x);
    while (seq < 20000) {
        for (i = 0; i < batch; i++)
            push_ok(x, 1, 0, seq + i);
        xshard_flush(x, 1, &pending);
        assert_false(pending);
        pop_expect(x, 0, 1, seq, batch);
        seq += batch;
        batch = batch % 8 + 1;
    }
    xshard_destroy(x);
}

static void test_flush_batching(void **state)
{
    struct xshard *x = xshard_create(2, 16);
    struct xshard_env out[16];

    (void)state;
    assert_non_null(x);
    push_ok(x, 0, 1, 0);
    push_ok(x, 0, 1, 1);
    push_ok(x, 0, 1, 2);
    /* Pushed but not flushed: the consumer sees nothing, not even when it checks to sleep. */
    assert_int_equal(xshard_pop(x, 1, out, 16), 0);
    assert_true(xshard_prepare_sleep(x, 1));
    xshard_wake_done(x, 1);
    /* Flushing another shard publishes nothing of shard 0's. */
    assert_int_equal(xshard_flush(x, 1, NULL), 0);
    assert_int_equal(xshard_pop(x, 1, out, 16), 0);
    assert_int_equal(xshard_flush(x, 0, NULL), 0);
    pop_expect(x, 1, 0, 0, 3);
    xshard_destroy(x);
}

static void test_full_ring_overflows_in_order(void **state)
{
    struct xshard *x = xshard_create(2, 4);
    bool pending;
    uint64_t i;

    (void)state;
    assert_non_null(x);
    for (i = 0; i < 10; i++)
        push_ok(x, 0, 1, i); /* 0-3 fill the ring, 4-9 overflow */
    xshard_flush(x, 0, &pending);
    assert_true(pending);
    pop_expect(x, 1, 0, 0, 4);

    /* The ring has room again, but 4-9 wait in overflow: 10 must queue behind them. */
    push_ok(x, 0, 1, 10);
    xshard_flush(x, 0, &pending);
    assert_true(pending);
    pop_expect(x, 1, 0, 4, 4);
    xshard_flush(x, 0, &pending);
    assert_false(pending);
    pop_expect(x, 1, 0, 8, 3);

    /* Drained: the next push goes straight to the ring again. */
    push_ok(x, 0, 1, 11);
    xshard_flush(x, 0, &pending);
    assert_false(pending);
    pop_expect(x, 1, 0, 11, 1);
    xshard_destroy(x);
}

static void test_overflow_grows_and_drains(void **state)
{
    struct xshard *x = xshard_create(3, 2);
    struct xshard_env out[64];
    uint64_t next[3] = {0, 0, 0}, i;
    bool pending = true;
    size_t n, k;
    int rounds = 0;

    (void)state;
    assert_non_null(x);
    /* Thousands behind a two-slot ring, from two producers: several doublings each. */
    for (i = 0; i < 3000; i++) {
        push_ok(x, 1, 0, i);
        push_ok(x, 2, 0, i);
    }
    do {
        xshard_flush(x, 1, &pending);
        xshard_flush(x, 2, NULL);
        n = xshard_pop(x, 0, out, 64);
        for (k = 0; k < n; k++) {
            assert_true(out[k].arg == 1 || out[k].arg == 2);
            assert_int_equal(out[k].val, next[out[k].arg]++);
        }
        assert_true(++rounds < 10000);
    } while (pending || n);
    assert_int_equal(next[1], 3000);
    assert_int_equal(next[2], 3000);
    /* A second burst after a full drain works the same (the overflow was freed and regrows). */
    for (i = 0; i < 100; i++)
        push_ok(x, 1, 0, 3000 + i);
    xshard_flush(x, 1, &pending);
    assert_true(pending);
    xshard_destroy(x);
}

static void test_destroy_drops_queued(void **state)
{
    struct xshard *x = xshard_create(2, 4);
    uint64_t i;

    (void)state;
    assert_non_null(x);
    for (i = 0; i < 100; i++)
        push_ok(x, 0, 1, i);
    xshard_flush(x, 0, NULL);
    for (i = 0; i < 100; i++)
        push_ok(x, 1, 0, i);
    /* ASan's leak check proves the rings and both overflows are freed. */
    xshard_destroy(x);
}

static void test_prepare_sleep_refuses_when_waiting(void **state)
{
    struct xshard *x = xshard_create(3, 8);
    struct xshard_env out[8];

    (void)state;
    assert_non_null(x);
    push_ok(x, 2, 1, 0);
    assert_int_equal(xshard_flush(x, 2, NULL), 0); /* 1 is awake: no doorbell */
    assert_false(xshard_prepare_sleep(x, 1));
    /* A refused sleep withdraws the announcement: later flushes ring nothing. */
    push_ok(x, 0, 1, 0);
    assert_int_equal(xshard_flush(x, 0, NULL), 0);
    /* Rotation starts at producer 0. */
    assert_int_equal(xshard_pop(x, 1, out, 8), 2);
    assert_int_equal(out[0].arg, 0);
    assert_int_equal(out[1].arg, 2);
    assert_true(xshard_prepare_sleep(x, 1));
    xshard_wake_done(x, 1);
    xshard_destroy(x);
}

static void test_doorbell_claimed_once(void **state)
{
    struct xshard *x = xshard_create(3, 8);
    struct xshard_env out[8];

    (void)state;
    assert_non_null(x);
    assert_true(xshard_prepare_sleep(x, 2));
    /* Flushing nothing, or into another shard, claims nothing. */
    assert_int_equal(xshard_flush(x, 0, NULL), 0);
    push_ok(x, 0, 1, 0);
    assert_int_equal(xshard_flush(x, 0, NULL), 0);

    push_ok(x, 0, 2, 0);
    assert_int_equal(xshard_flush(x, 0, NULL), UINT64_C(1) << 2);
    push_ok(x, 0, 2, 1);
    assert_int_equal(xshard_flush(x, 0, NULL), 0); /* already claimed by this producer */
    push_ok(x, 1, 2, 0);
    assert_int_equal(xshard_flush(x, 1, NULL), 0); /* ... and not given to a second one */

    xshard_wake_done(x, 2);
    assert_int_equal(xshard_pop(x, 2, out, 8), 3);
    assert_true(xshard_prepare_sleep(x, 2));
    push_ok(x, 1, 2, 1);
    assert_int_equal(xshard_flush(x, 1, NULL), UINT64_C(1) << 2); /* a new sleep, a new bell */
    xshard_wake_done(x, 2);

    /* Woken for something else: after wake_done, producers ring no bell. */
    assert_int_equal(xshard_pop(x, 2, out, 8), 1);
    assert_true(xshard_prepare_sleep(x, 2));
    xshard_wake_done(x, 2);
    push_ok(x, 0, 2, 2);
    assert_int_equal(xshard_flush(x, 0, NULL), 0);
    assert_int_equal(xshard_pop(x, 1, out, 8), 1);
    assert_int_equal(xshard_pop(x, 2, out, 8), 1);
    xshard_destroy(x);
}

static void test_doorbell_two_sleepers_and_shard_63(void **state)
{
    struct xshard *x = xshard_create(XSHARD_MAX_SHARDS, 2);
    struct xshard_env out[4];

    (void)state;
    assert_non_null(x);
    assert_true(xshard_prepare_sleep(x, 5));
    assert_true(xshard_prepare_sleep(x, 63));
    push_ok(x, 0, 5, 0);
    push_ok(x, 0, 63, 0);
    push_ok(x, 0, 7, 0);
    assert_int_equal(xshard_flush(x, 0, NULL), (UINT64_C(1) << 5) | (UINT64_C(1) << 63));
    xshard_wake_done(x, 5);
    xshard_wake_done(x, 63);
    assert_int_equal(xshard_pop(x, 5, out, 4), 1);
    assert_int_equal(xshard_pop(x, 63, out, 4), 1);
    assert_int_equal(xshard_pop(x, 7, out, 4), 1);
    xshard_destroy(x);
}

static void test_self_pair(void **state)
{
    struct xshard *x = xshard_create(2, 4);
    bool pending;
    uint64_t i;

    (void)state;
    assert_non_null(x);
    for (i = 0; i < 6; i++)
        push_ok(x, 1, 1, i);
    xshard_flush(x, 1, &pending);
    assert_true(pending);
    pop_expect(x, 1, 1, 0, 4);
    xshard_flush(x, 1, &pending);
    assert_false(pending);
    pop_expect(x, 1, 1, 4, 2);
    /* The loop-back ring follows the same doorbell rule. */
    assert_true(xshard_prepare_sleep(x, 1));
    push_ok(x, 1, 1, 6);
    assert_int_equal(xshard_flush(x, 1, NULL), UINT64_C(1) << 1);
    xshard_wake_done(x, 1);
    pop_expect(x, 1, 1, 6, 1);
    xshard_destroy(x);
}

static void test_pop_is_fair(void **state)
{
    struct xshard *x = xshard_create(4, 64);
    struct xshard_env out[16];
    unsigned from, seen[4], i, round;
    uint64_t next[4] = {0, 0, 0, 0};

    (void)state;
    assert_non_null(x);
    for (from = 1; from < 4; from++) {
        for (i = 0; i < 30; i++)
            push_ok(x, from, 0, i);
        xshard_flush(x, from, NULL);
    }
    /* max 3 over 3 busy producers: one each. max 6: two each. */
    assert_int_equal(xshard_pop(x, 0, out, 3), 3);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < 3; i++) {
        seen[out[i].arg]++;
        assert_int_equal(out[i].val, next[out[i].arg]++);
    }
    assert_int_equal(seen[1] * seen[2] * seen[3], 1);
    assert_int_equal(xshard_pop(x, 0, out, 6), 6);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < 6; i++) {
        seen[out[i].arg]++;
        assert_int_equal(out[i].val, next[out[i].arg]++);
    }
    assert_int_equal(seen[1] * seen[2] * seen[3], 8);

    /* One at a time: every window of three pops serves all three producers. */
    for (round = 0; round < 5; round++) {
        memset(seen, 0, sizeof(seen));
        for (i = 0; i < 3; i++) {
            assert_int_equal(xshard_pop(x, 0, out, 1), 1);
            seen[out[0].arg]++;
            assert_int_equal(out[0].val, next[out[0].arg]++);
        }
        assert_int_equal(seen[1] * seen[2] * seen[3], 1);
    }

    /* Drain, in order. */
    for (;;) {
        size_t n = xshard_pop(x, 0, out, 16);

        if (n == 0)
            break;
        for (i = 0; i < n; i++)
            assert_int_equal(out[i].val, next[out[i].arg]++);
    }
    for (from = 1; from < 4; from++)
        assert_int_equal(next[from], 30);

    /* Only 1 and 3 busy: they alternate. The empty 0 and 2 must not hand their turns to the
     * same neighbour every time. */
    for (i = 0; i < 10; i++) {
        push_ok(x, 1, 0, 30 + i);
        push_ok(x, 3, 0, 30 + i);
    }
    xshard_flush(x, 1, NULL);
    xshard_flush(x, 3, NULL);
    for (round = 0; round < 10; round++) {
        assert_int_equal(xshard_pop(x, 0, out, 1), 1);
        from = out[0].arg;
        assert_int_equal(out[0].val, next[from]++);
        assert_int_equal(xshard_pop(x, 0, out, 1), 1);
        assert_int_equal(out[0].arg, 4 - from);
        assert_int_equal(out[0].val, next[out[0].arg]++);
    }
    assert_int_equal(xshard_pop(x, 0, out, 16), 0);
    xshard_destroy(x);
}

/* ---------------------------------------------------------------------------------------------
 * Multi-thread stress: shards as threads, an eventfd per shard as the doorbell.
 * ------------------------------------------------------------------------------------------- */

#define ST_SHARDS     3
#define ST_COUNT      200000 /* per ordered pair */
#define ST_RING_CAP   8      /* tiny: overflow is the common case */
#define ST_DEADLINE_S 60     /* well under ctest's TIMEOUT */
#define ST_WAIT_MS    5000   /* a doorbell later than this counts as lost */

struct st_shard {
    struct xshard *x;
    unsigned id;
    int efd;
    struct st_shard *all;
    uint64_t sent[ST_SHARDS];
    uint64_t next[ST_SHARDS]; /* next sequence number expected from each producer */
    /* Results, read by the main thread after join. */
    unsigned long nr_errors, nr_lost_wakeups, nr_sleeps, nr_bells;
    bool timed_out;
};

static double st_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void st_ring(struct st_shard *s, uint64_t mask)
{
    for (; mask; mask &= mask - 1) {
        uint64_t one = 1;

        if (write(s->all[__builtin_ctzll(mask)].efd, &one, sizeof(one)) != sizeof(one))
            s->nr_errors++;
    }
}

static size_t st_pop(struct st_shard *s)
{
    struct xshard_env out[64];
    size_t n = xshard_pop(s->x, s->id, out, 64), i;

    for (i = 0; i < n; i++) {
        unsigned from = out[i].arg;

        if (out[i].kind != T_KIND || from >= ST_SHARDS || from == s->id ||
            out[i].ptr != &s->all[from] || out[i].val != s->next[from])
            s->nr_errors++;
        if (from < ST_SHARDS)
            s->next[from] = out[i].val + 1;
    }
    return n;
}

/* Pushes up to <burst> to every peer, interleaved, so that all pairs overflow together. */
static void st_send(struct st_shard *s, unsigned burst)
{
    unsigned b, to;

    for (b = 0; b < burst; b++) {
        for (to = 0; to < ST_SHARDS; to++) {
            struct xshard_env e = {.kind = T_KIND, .arg = s->id, .ptr = s, .val = s->sent[to]};

            if (to == s->id || s->sent[to] == ST_COUNT)
                continue;
            if (xshard_push(s->x, s->id, to, &e) == 0)
                s->sent[to]++;
            else
                s->nr_errors++;
        }
    }
}

static bool st_all(const struct st_shard *s, const uint64_t *counts)
{
    unsigned i;

    for (i = 0; i < ST_SHARDS; i++)
        if (i != s->id && counts[i] != ST_COUNT)
            return false;
    return true;
}

static void st_sleep(struct st_shard *s, double deadline)
{
    struct pollfd pfd = {.fd = s->efd, .events = POLLIN};
    double left_ms = (deadline - st_now()) * 1000;
    int ms = left_ms <= 0 ? 0 : left_ms < ST_WAIT_MS ? (int)left_ms + 1 : ST_WAIT_MS;
    uint64_t v;

    if (!xshard_prepare_sleep(s->x, s->id))
        return;
    s->nr_sleeps++;
    if (poll(&pfd, 1, ms) == 1) {
        if (read(s->efd, &v, sizeof(v)) == sizeof(v))
            s->nr_bells++;
    } else if (st_now() < deadline) {
        /* Nothing rang for ST_WAIT_MS: if envelopes were waiting all along, the bell was
         * lost. */
        xshard_wake_done(s->x, s->id);
        if (st_pop(s))
            s->nr_lost_wakeups++;
        return;
    }
    xshard_wake_done(s->x, s->id);
}

static void *st_main(void *arg)
{
    struct st_shard *s = arg;
    double deadline = st_now() + ST_DEADLINE_S;
    unsigned rnd = 12345u * (s->id + 1);
    bool pending = false;

    for (;;) {
        bool sent_all;
        size_t got;

        /* Bursts of 1 to 32 per peer while the rings keep up; one per peer while overflow
         * is held, so the overflow keeps growing and draining without running away. */
        rnd = rnd * 1103515245u + 12345u;
        st_send(s, pending ? 1 : 1 + (rnd >> 16) % 32);
        st_ring(s, xshard_flush(s->x, s->id, &pending));
        got = st_pop(s);

        sent_all = st_all(s, s->sent) && !pending;
        if (sent_all && st_all(s, s->next))
            break;
        if (st_now() > deadline) {
            s->timed_out = true;
            break;
        }
        if (got == 0 && sent_all)
            st_sleep(s, deadline);
        else if (got == 0 && pending)
            sched_yield(); /* our overflow waits for a consumer: let it run */
    }
    return NULL;
}

static void test_stress_threads(void **state)
{
    struct st_shard sh[ST_SHARDS];
    pthread_t th[ST_SHARDS];
    struct xshard *x = xshard_create(ST_SHARDS, ST_RING_CAP);
    unsigned i, j;

    (void)state;
    assert_non_null(x);
    memset(sh, 0, sizeof(sh));
    for (i = 0; i < ST_SHARDS; i++) {
        sh[i].x = x;
        sh[i].id = i;
        sh[i].all = sh;
        sh[i].efd = eventfd(0, EFD_CLOEXEC);
        assert_true(sh[i].efd >= 0);
    }
    for (i = 0; i < ST_SHARDS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, st_main, &sh[i]), 0);
    for (i = 0; i < ST_SHARDS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    for (i = 0; i < ST_SHARDS; i++) {
        print_message("shard %u: %lu sleeps, %lu doorbells\n", i, sh[i].nr_sleeps, sh[i].nr_bells);
        assert_false(sh[i].timed_out);
        assert_int_equal(sh[i].nr_errors, 0);
        assert_int_equal(sh[i].nr_lost_wakeups, 0);
        for (j = 0; j < ST_SHARDS; j++) {
            if (j == i)
                continue;
            assert_int_equal(sh[i].sent[j], ST_COUNT);
            assert_int_equal(sh[i].next[j], ST_COUNT);
        }
        close(sh[i].efd);
    }
    xshard_destroy(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_sizes),
        cmocka_unit_test(test_empty_pop),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_flush_batching),
        cmocka_unit_test(test_full_ring_overflows_in_order),
        cmocka_unit_test(test_overflow_grows_and_drains),
        cmocka_unit_test(test_destroy_drops_queued),
        cmocka_unit_test(test_prepare_sleep_refuses_when_waiting),
        cmocka_unit_test(test_doorbell_claimed_once),
        cmocka_unit_test(test_doorbell_two_sleepers_and_shard_63),
        cmocka_unit_test(test_self_pair),
        cmocka_unit_test(test_pop_is_fair),
        cmocka_unit_test(test_stress_threads),
    };

    return cmocka_run_group_tests_name("xshard", tests, NULL, NULL);
}
