/* SPDX-License-Identifier: MIT */
/*
 * fault: allocation failures on demand (contract in fault.h).
 */
#include "fault.h"

#ifdef RINGCAST_FAULT_INJECTION
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[FAULT_NR] = {
    [FAULT_HTTP_ANSWER] = "http_answer",
    [FAULT_ROOM_NOTE] = "room_note",
    [FAULT_PROTO_PUSH] = "proto_push",
};

static enum fault_point armed;
static unsigned long every = 1;
static atomic_ulong calls;

const char *fault_init(void)
{
    const char *v = getenv("RINGCAST_FAULT");
    if (!v || !*v)
        return NULL;
    size_t n = strcspn(v, ":");
    for (int p = 1; p < FAULT_NR; p++) {
        if (strlen(names[p]) == n && memcmp(names[p], v, n) == 0) {
            armed = (enum fault_point)p;
            if (v[n] == ':' && strtoul(v + n + 1, NULL, 10) > 0)
                every = strtoul(v + n + 1, NULL, 10);
            return names[p];
        }
    }
    return NULL;
}

bool fault_hit(enum fault_point p)
{
    if (p != armed)
        return false;
    return (atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed) + 1) % every == 0;
}
#endif
