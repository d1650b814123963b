/* SPDX-License-Identifier: MIT */
/*
 * timer: a hashed timer wheel with one-second ticks (contract in timer.h).
 *
 * Slot i holds every timer whose second is congruent to i modulo TIMER_SLOTS, in a circular
 * doubly linked list around the sentinel _slots[i]; a timer is in at most one list, so arm and
 * disarm are O(1) unlinks. Timers more than TIMER_SLOTS seconds ahead simply share a slot with
 * nearer ones and are passed over until their second comes (the "hashed" wheel of Varghese and
 * Lauck, as in uSockets and nginx's coarse timers): per-connection timeouts are seconds to
 * minutes, and a second level of wheels would cost more than the few skips it saves.
 *
 * Seconds are free-running 32-bit counters compared by signed difference, as the kernel's
 * time_after() does, so the wheel survives the 2^32 wrap.
 */
#include "timer.h"

#include <stddef.h>

#define TIMER_MASK (TIMER_SLOTS - 1)

_Static_assert((TIMER_SLOTS & TIMER_MASK) == 0, "TIMER_SLOTS must be a power of two");

/* True when second <a> is after second <b>, across the wrap. */
static bool after(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

static void list_init(struct timer *head)
{
    head->_next = head;
    head->_prev = head;
}

static void list_add_tail(struct timer *head, struct timer *t)
{
    t->_prev = head->_prev;
    t->_next = head;
    head->_prev->_next = t;
    head->_prev = t;
}

/* Unlinks <t> and marks it unarmed. */
static void list_del(struct timer *t)
{
    t->_prev->_next = t->_next;
    t->_next->_prev = t->_prev;
    t->_next = NULL;
    t->_prev = NULL;
}

void timer_wheel_init(struct timer_wheel *w, uint32_t now)
{
    unsigned i;

    for (i = 0; i < TIMER_SLOTS; i++)
        list_init(&w->_slots[i]);
    w->now = now;
    w->nr_armed = 0;
}

void timer_arm(struct timer_wheel *w, struct timer *t, uint32_t expires)
{
    if (timer_armed(t))
        list_del(t);
    else
        w->nr_armed++;
    /* The wheel has already walked second w->now: a timer put in the slot of that second or
     * an earlier one would only be found a whole turn later, so the next second is the
     * earliest. */
    if (!after(expires, w->now))
        expires = w->now + 1;
    t->expires = expires;
    list_add_tail(&w->_slots[expires & TIMER_MASK], t);
}

void timer_disarm(struct timer_wheel *w, struct timer *t)
{
    if (!timer_armed(t))
        return;
    list_del(t);
    w->nr_armed--;
}

/*
 * Fires the due timers of one slot. The slot's list is first moved onto a local sentinel and
 * timers are taken one at a time from its front, so a callback may disarm or re-arm any timer,
 * the next one in this slot included: removing it from the local list needs no help from us,
 * and re-arming puts it back in a slot list, never in the local one, so it cannot fire twice.
 */
static unsigned run_slot(struct timer_wheel *w, struct timer *head, timer_cb cb, void *arg)
{
    struct timer walk;
    unsigned fired = 0;

    if (head->_next == head)
        return 0;
    walk._next = head->_next;
    walk._prev = head->_prev;
    walk._next->_prev = &walk;
    walk._prev->_next = &walk;
    list_init(head);

    while (walk._next != &walk) {
        struct timer *t = walk._next;

        list_del(t);
        if (after(t->expires, w->now)) {
            /* A later turn of the wheel. */
            list_add_tail(head, t);
            continue;
        }
        w->nr_armed--;
        fired++;
        cb(t, arg);
    }
    return fired;
}

unsigned timer_wheel_advance(struct timer_wheel *w, uint32_t now, timer_cb cb, void *arg)
{
    uint32_t first, steps, i;
    unsigned fired = 0;

    if (!after(now, w->now))
        return 0;
    /* A jump of TIMER_SLOTS seconds or more visits every slot once, not once per second:
     * a suspended laptop or a clock step must not cost billions of iterations. */
    steps = now - w->now;
    if (steps > TIMER_SLOTS)
        steps = TIMER_SLOTS;
    first = w->now + 1;
    /* Callbacks see the new time, so that a timer they arm relative to w->now lands in the
     * future and is not found again by this call. */
    w->now = now;
    for (i = 0; i < steps; i++)
        fired += run_slot(w, &w->_slots[(first + i) & TIMER_MASK], cb, arg);
    return fired;
}
