/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for net/timer.c, through the public header only.
 */
#include "timer.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs <setjmp.h>, <stdarg.h> and <stddef.h> included before it. */
#include <cmocka.h>

/* A timer's owner, as a connection would embed it. The timer comes first so that the callback
 * can get back to its owner without a cast that raises the alignment. */
struct tt {
    struct timer timer;
    unsigned id;
    unsigned nr_fired;
    uint32_t fired_at; /* w->now seen by the last callback */
};

/* What a callback does besides recording: re-arm itself, arm or disarm another timer. */
struct tt_ctx {
    struct timer_wheel *w;
    unsigned nr_calls;
    unsigned order[64];       /* ids in firing order, first 64 */
    struct tt *rearm_self_of; /* when this one fires, re-arm it at w->now + rearm_delta */
    uint32_t rearm_delta;
    struct tt *disarm_on_fire_of; /* when this one fires, disarm `victim` */
    struct tt *victim;
    struct tt *move_on_fire_of; /* when this one fires, re-arm `moved` at `moved_to` */
    struct tt *moved;
    uint32_t moved_to;
};

static void on_fire(struct timer *t, void *arg)
{
    struct tt *o = (struct tt *)t;
    struct tt_ctx *ctx = arg;

    /* The wheel disarms before the call, and the callback sees the new second. */
    assert_false(timer_armed(t));
    o->nr_fired++;
    o->fired_at = ctx->w->now;
    if (ctx->nr_calls < 64)
        ctx->order[ctx->nr_calls] = o->id;
    ctx->nr_calls++;
    if (o == ctx->rearm_self_of)
        timer_arm(ctx->w, t, ctx->w->now + ctx->rearm_delta);
    if (o == ctx->disarm_on_fire_of)
        timer_disarm(ctx->w, &ctx->victim->timer);
    if (o == ctx->move_on_fire_of)
        timer_arm(ctx->w, &ctx->moved->timer, ctx->moved_to);
}

static void test_arm_fires_at_its_second(void **state)
{
    struct timer_wheel w;
    struct tt a = {.id = 1};
    struct tt_ctx ctx = {.w = &w};

    (void)state;
    timer_wheel_init(&w, 1000);
    assert_false(timer_armed(&a.timer)); /* the all-zero timer is unarmed */
    timer_arm(&w, &a.timer, 1005);
    assert_true(timer_armed(&a.timer));
    assert_int_equal(w.nr_armed, 1);

    assert_int_equal(timer_wheel_advance(&w, 1004, on_fire, &ctx), 0);
    assert_int_equal(a.nr_fired, 0);
    assert_int_equal(timer_wheel_advance(&w, 1005, on_fire, &ctx), 1);
    assert_int_equal(a.nr_fired, 1);
    assert_int_equal(a.fired_at, 1005);
    assert_false(timer_armed(&a.timer));
    assert_int_equal(w.nr_armed, 0);
    assert_int_equal(timer_wheel_advance(&w, 1006 + TIMER_SLOTS, on_fire, &ctx), 0);
    assert_int_equal(a.nr_fired, 1);
}

static void test_arm_in_past_clamps_to_next_second(void **state)
{
    struct timer_wheel w;
    struct tt a = {.id = 1}, b = {.id = 2};
    struct tt_ctx ctx = {.w = &w};

    (void)state;
    timer_wheel_init(&w, 1000);
    timer_arm(&w, &a.timer, 990);
    timer_arm(&w, &b.timer, 1000);
    assert_int_equal(a.timer.expires, 1001);
    assert_int_equal(b.timer.expires, 1001);
    assert_int_equal(timer_wheel_advance(&w, 1001, on_fire, &ctx), 2);
    /* Same slot, same second: arming order. */
    assert_int_equal(ctx.order[0], 1);
    assert_int_equal(ctx.order[1], 2);
}

static void test_rearm_moves(void **state)
{
    struct timer_wheel w;
    struct tt a = {.id = 1};
    struct tt_ctx ctx = {.w = &w};

    (void)state;
    timer_wheel_init(&w, 50);
    timer_arm(&w, &a.timer, 55);
    timer_arm(&w, &a.timer, 60);
    assert_int_equal(w.nr_armed, 1);
    assert_int_equal(timer_wheel_advance(&w, 59, on_fire, &ctx), 0);
    /* Moving it earlier works too. */
    timer_arm(&w, &a.timer, 200);
    timer_arm(&w, &a.timer, 61);
    assert_int_equal(w.nr_armed, 1);
    assert_int_equal(timer_wheel_advance(&w, 60, on_fire, &ctx), 0);
    assert_int_equal(timer_wheel_advance(&w, 61, on_fire, &ctx), 1);
    assert_int_equal(a.fired_at, 61);
    assert_int_equal(timer_wheel_advance(&w, 300, on_fire, &ctx), 0);
    assert_int_equal(a.nr_fired, 1);
}

static void test_disarm(void **state)
{
    struct timer_wheel w;
    struct tt a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    struct tt_ctx ctx = {.w = &w};

    (void)state;
    timer_wheel_init(&w, 0);
    timer_disarm(&w, &a.timer); /* not armed: no-op */
    assert_int_equal(w.nr_armed, 0);
    timer_arm(&w, &a.timer, 7);
    timer_arm(&w, &b.timer, 7);
    timer_arm(&w, &c.timer, 7);
    timer_disarm(&w, &b.timer);
    assert_false(timer_armed(&b.timer));
    timer_disarm(&w, &b.timer);
    assert_int_equal(w.nr_armed, 2);
    assert_int_equal(timer_wheel_advance(&w, 7, on_fire, &ctx), 2);
    assert_int_equal(b.nr_fired, 0);
    assert_int_equal(ctx.order[0], 1);
    assert_int_equal(ctx.order[1], 3);
    assert_int_equal(w.nr_armed, 0);
}

static void test_far_future_waits_several_turns(void **state)
{
    struct timer_wheel w;
    struct tt a = {.id = 1};
    struct tt_ctx ctx = {.w = &w};
    uint32_t s, due = 100 + 3 * TIMER_SLOTS + 7;

    (void)state;
    timer_wheel_init(&w, 100);
    timer_arm(&w, &a.timer, due);
    /* Second by second: its slot comes round three times before its second does. */
    for (s = 101; s < due; s++)
        assert_int_equal(timer_wheel_advance(&w, s, on_fire, &ctx), 0);
    assert_true(timer_armed(&a.timer));
    assert_int_equal(timer_wheel_advance(&w, due, on_fire, &ctx), 1);
    assert_int_equal(a.fired_at, due);

    /* The same in jumps smaller than a turn. */
    timer_arm(&w, &a.timer, due + 5 * TIMER_SLOTS);
    for (s = due; s + 100 < due + 5 * TIMER_SLOTS; s += 100)
        assert_int_equal(timer_wheel_advance(&w, s + 100, on_fire, &ctx), 0);
    assert_int_equal(timer_wheel_advance(&w, due + 5 * TIMER_SLOTS, on_fire, &ctx), 1);
    assert_int_equal(a.nr_fired, 2);
}

#define MANY 1000

static void test_many_timers_in_one_slot(void **state)
{
    static struct tt t[MANY];
    struct timer_wheel w;
    struct tt_ctx ctx = {.w = &w};
    uint32_t base = 5000, s;
    unsigned i, total = 0;

    (void)state;
    memset(t, 0, sizeof(t));
    timer_wheel_init(&w, base);
    /* Four turns' worth, all hashed to the same slot. */
    for (i = 0; i < MANY; i++) {
        t[i].id = i;
        timer_arm(&w, &t[i].timer, base + 10 + (i % 4) * TIMER_SLOTS);
    }
    assert_int_equal(w.nr_armed, MANY);
    for (s = base + 1; s <= base + 10 + 3 * TIMER_SLOTS; s++) {
        unsigned n = timer_wheel_advance(&w, s, on_fire, &ctx);

        if (s >= base + 10 && (s - base - 10) % TIMER_SLOTS == 0)
            assert_int_equal(n, MANY / 4);
        else
            assert_int_equal(n, 0);
        total += n;
    }
    assert_int_equal(total, MANY);
    assert_int_equal(w.nr_armed, 0);
    for (i = 0; i < MANY; i++) {
        assert_int_equal(t[i].nr_fired, 1);
        assert_int_equal(t[i].fired_at, base + 10 + (i % 4) * TIMER_SLOTS);
    }
}

static void test_callback_rearms_self_and_disarms_next(void **state)
{
    struct timer_wheel w;
    struct tt a = {.id = 1}, b = {.id = 2}, c = {.id = 3}, d = {.id = 4};
    struct tt_ctx ctx = {.w = &w};

    (void)state;
    timer_wheel_init(&w, 10);
    /* One slot, one second, in the order a b c d. */
    timer_arm(&w, &a.timer, 20);
    timer_arm(&w, &b.timer, 20);
    timer_arm(&w, &c.timer, 20);
    timer_arm(&w, &d.timer, 20);
    /* a re-arms itself for the next second and disarms b, the timer right after it. */
    ctx.rearm_self_of = &a;
    ctx.rearm_delta = 1;
    ctx.disarm_on_fire_of = &a;
    ctx.victim = &b;
    /* c moves d one turn on: d stays in the same slot and must not fire now. */
    ctx.move_on_fire_of = &c;
    ctx.moved = &d;
    ctx.moved_to = 20 + TIMER_SLOTS;

    assert_int_equal(timer_wheel_advance(&w, 20, on_fire, &ctx), 2);
    assert_int_equal(ctx.order[0], 1);
    assert_int_equal(ctx.order[1], 3);
    assert_int_equal(b.nr_fired, 0);
    assert_int_equal(d.nr_fired, 0);
    assert_true(timer_armed(&a.timer));
    assert_false(timer_armed(&b.timer));
    assert_true(timer_armed(&d.timer));
    assert_int_equal(w.nr_armed, 2); /* a (re-armed) and d */

    /* A callback that re-arms itself "now" gets the next second, never a loop. */
    ctx.rearm_delta = 0;
    ctx.disarm_on_fire_of = NULL;
    ctx.move_on_fire_of = NULL;
    assert_int_equal(timer_wheel_advance(&w, 21, on_fire, &ctx), 1);
    assert_int_equal(a.fired_at, 21);
    assert_int_equal(a.timer.expires, 22);
    ctx.rearm_self_of = NULL;
    assert_int_equal(timer_wheel_advance(&w, 22, on_fire, &ctx), 1);
    assert_int_equal(a.nr_fired, 3);
    assert_int_equal(timer_wheel_advance(&w, 20 + TIMER_SLOTS, on_fire, &ctx), 1);
    assert_int_equal(d.nr_fired, 1);
    assert_int_equal(w.nr_armed, 0);
}

static void test_callback_disarms_timer_due_later_in_same_call(void **state)
{
    struct timer_wheel w;
    struct tt a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    struct tt_ctx ctx = {.w = &w};

    (void)state;
    timer_wheel_init(&w, 0);
    timer_arm(&w, &a.timer, 3);
    timer_arm(&w, &b.timer, 5);
    timer_arm(&w, &c.timer, 5);
    /* Within one advance, a (second 3) disarms c, due at second 5 of the same call. */
    ctx.disarm_on_fire_of = &a;
    ctx.victim = &c;
    assert_int_equal(timer_wheel_advance(&w, 6, on_fire, &ctx), 2);
    assert_int_equal(ctx.order[0], 1);
    assert_int_equal(ctx.order[1], 2);
    assert_int_equal(c.nr_fired, 0);
    assert_int_equal(w.nr_armed, 0);
}

static void test_large_jump(void **state)
{
    static struct tt t[6];
    static const uint32_t delta[6] = {1, 2, 255, 256, 257, 100000};
    struct timer_wheel w;
    struct tt_ctx ctx = {.w = &w};
    struct tt late = {.id = 99};
    unsigned i;

    (void)state;
    memset(t, 0, sizeof(t));
    timer_wheel_init(&w, 1000);
    for (i = 0; i < 6; i++) {
        t[i].id = i;
        timer_arm(&w, &t[i].timer, 1000 + delta[i]);
    }
    timer_arm(&w, &late.timer, 1000 + (UINT32_C(1) << 30) + 1);
    /* 2^30 seconds in one call: bounded to one visit per slot, and everything due fires. */
    assert_int_equal(timer_wheel_advance(&w, 1000 + (UINT32_C(1) << 30), on_fire, &ctx), 6);
    for (i = 0; i < 6; i++)
        assert_int_equal(t[i].nr_fired, 1);
    assert_true(timer_armed(&late.timer));
    assert_int_equal(w.nr_armed, 1);
    assert_int_equal(timer_wheel_advance(&w, 1001 + (UINT32_C(1) << 30), on_fire, &ctx), 1);
    assert_int_equal(late.nr_fired, 1);
    assert_int_equal(w.nr_armed, 0);
}

static void test_time_going_back_is_a_no_op(void **state)
{
    struct timer_wheel w;
    struct tt a = {.id = 1};
    struct tt_ctx ctx = {.w = &w};

    (void)state;
    timer_wheel_init(&w, 500);
    timer_arm(&w, &a.timer, 501);
    assert_int_equal(timer_wheel_advance(&w, 500, on_fire, &ctx), 0);
    assert_int_equal(timer_wheel_advance(&w, 400, on_fire, &ctx), 0);
    assert_int_equal(w.now, 500);
    assert_int_equal(timer_wheel_advance(&w, 501, on_fire, &ctx), 1);
}

static void test_wraps_at_2_to_32(void **state)
{
    struct timer_wheel w;
    struct tt a = {.id = 1}, b = {.id = 2};
    struct tt_ctx ctx = {.w = &w};
    uint32_t start = UINT32_MAX - 5, s;
    unsigned fired = 0;

    (void)state;
    timer_wheel_init(&w, start);
    timer_arm(&w, &a.timer, start + 10); /* 4 after the wrap */
    timer_arm(&w, &b.timer, start + 10 + TIMER_SLOTS);
    for (s = start + 1; s != start + 10; s++)
        fired += timer_wheel_advance(&w, s, on_fire, &ctx);
    assert_int_equal(fired, 0);
    assert_int_equal(timer_wheel_advance(&w, 4, on_fire, &ctx), 1);
    assert_int_equal(a.fired_at, 4);
    assert_int_equal(timer_wheel_advance(&w, 4 + TIMER_SLOTS, on_fire, &ctx), 1);
    assert_int_equal(b.nr_fired, 1);
}

static void test_nr_armed_bookkeeping(void **state)
{
    static struct tt t[32];
    struct timer_wheel w;
    struct tt_ctx ctx = {.w = &w};
    unsigned i;

    (void)state;
    memset(t, 0, sizeof(t));
    timer_wheel_init(&w, 0);
    for (i = 0; i < 32; i++)
        timer_arm(&w, &t[i].timer, 1 + i % 8);
    assert_int_equal(w.nr_armed, 32);
    for (i = 0; i < 32; i += 2)
        timer_arm(&w, &t[i].timer, 100); /* re-arm: no change */
    assert_int_equal(w.nr_armed, 32);
    for (i = 1; i < 32; i += 4)
        timer_disarm(&w, &t[i].timer);
    assert_int_equal(w.nr_armed, 24);
    /* The odd ones left: i = 3, 7, 11, ... with seconds 4 and 8. */
    assert_int_equal(timer_wheel_advance(&w, 4, on_fire, &ctx), 4);
    assert_int_equal(w.nr_armed, 20);
    ctx.rearm_self_of = &t[7];
    ctx.rearm_delta = 50;
    assert_int_equal(timer_wheel_advance(&w, 8, on_fire, &ctx), 4);
    assert_int_equal(w.nr_armed, 17);
    ctx.rearm_self_of = NULL;
    assert_int_equal(timer_wheel_advance(&w, 100, on_fire, &ctx), 17);
    assert_int_equal(w.nr_armed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arm_fires_at_its_second),
        cmocka_unit_test(test_arm_in_past_clamps_to_next_second),
        cmocka_unit_test(test_rearm_moves),
        cmocka_unit_test(test_disarm),
        cmocka_unit_test(test_far_future_waits_several_turns),
        cmocka_unit_test(test_many_timers_in_one_slot),
        cmocka_unit_test(test_callback_rearms_self_and_disarms_next),
        cmocka_unit_test(test_callback_disarms_timer_due_later_in_same_call),
        cmocka_unit_test(test_large_jump),
        cmocka_unit_test(test_time_going_back_is_a_no_op),
        cmocka_unit_test(test_wraps_at_2_to_32),
        cmocka_unit_test(test_nr_armed_bookkeeping),
    };

    return cmocka_run_group_tests_name("timer", tests, NULL, NULL);
}
