/* SPDX-License-Identifier: MIT */
/*
 * fault: allocation failures on demand, for tests of the paths no healthy machine takes.
 *
 * Debug builds (the asan and tsan presets) compile it in; release builds compile every
 * FAULT() to false. At start, RINGCAST_FAULT=POINT[:N] arms one point: its Nth call (default
 * 1) and every Nth after fails as if out of memory, and the broker logs that it is armed. The
 * points are the enum below, named in lower case ("http_answer").
 *
 * Thread-safe: the counter is one relaxed atomic, touched only when the point is armed.
 */
#ifndef RINGCAST_FAULT_H
#define RINGCAST_FAULT_H

#include <stdbool.h>

enum fault_point {
    FAULT_NONE = 0,
    FAULT_HTTP_ANSWER, /* the memory of an HTTP answer (http.c) */
    FAULT_ROOM_NOTE,   /* a room's JOIN or LEAVE note to its home (room.c) */
    FAULT_PROTO_PUSH,  /* the pub push built for a fan-out's protocol members (room.c) */
    FAULT_NR,
};

#ifdef RINGCAST_FAULT_INJECTION
/* Reads RINGCAST_FAULT. Returns the armed point's name, or NULL when none. Main thread, once,
 * before the shards start. */
const char *fault_init(void);
/* True when this call of point <p> must fail. */
bool fault_hit(enum fault_point p);
#define FAULT(p) fault_hit(p)
#else
static inline const char *fault_init(void)
{
    return 0;
}
#define FAULT(p) false
#endif

#endif
