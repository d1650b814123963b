/* SPDX-License-Identifier: MIT */
/*
 * timer: an intrusive hashed timer wheel with one-second ticks, for coarse per-connection
 * timeouts (handshake, ping, idle), nginx/uSockets style: arming is O(1), re-arming a timer
 * that is already armed just moves it, and expiry runs once per tick.
 *
 * The wheel owns no memory beyond its slot heads: timers are embedded in their owners' structs
 * (the all-zero struct timer is a valid, unarmed timer). A timer further in the future than the
 * wheel spans stays in its slot and is skipped until its second comes. Shard rule: a wheel and
 * its timers belong to one thread.
 */
#ifndef RINGCAST_TIMER_H
#define RINGCAST_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMER_SLOTS 256 /* power of two */

struct timer {
    struct timer *_next, *_prev; /* private; NULL when unarmed */
    uint32_t expires;            /* second at which it fires */
};

struct timer_wheel {
    struct timer _slots[TIMER_SLOTS]; /* private: list heads */
    uint32_t now;                     /* last second processed */
    uint32_t nr_armed;
};

typedef void (*timer_cb)(struct timer *t, void *arg);

/* Initialises <w> at second <now>. Cannot fail. */
void timer_wheel_init(struct timer_wheel *w, uint32_t now);

/* Arms (or re-arms) <t> to fire at second <expires> (clamped to now + 1 when not in the
 * future; seconds are compared across the 2^32 wrap, so <expires> must lie within 2^31 s of
 * now). Cannot fail. */
void timer_arm(struct timer_wheel *w, struct timer *t, uint32_t expires);

/* Disarms <t>; a no-op when it is not armed. Cannot fail. */
void timer_disarm(struct timer_wheel *w, struct timer *t);

/* True when <t> is armed. */
static inline bool timer_armed(const struct timer *t)
{
    return t->_next != NULL;
}

/*
 * Advances the wheel to second <now> and calls <cb>(t, <arg>) for every timer whose second has
 * come, disarming each before its call. <cb> may arm or disarm any timer, including <t>; it
 * sees w->now == <now>, and a timer it arms fires on a later call. A <now> that is not after
 * the wheel's second is a no-op. Timers fire in order of their second, except after a jump of
 * TIMER_SLOTS seconds or more, which visits each slot once. Returns the number of timers
 * fired. Cannot fail.
 */
unsigned timer_wheel_advance(struct timer_wheel *w, uint32_t now, timer_cb cb, void *arg);

#endif
