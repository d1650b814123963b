/* SPDX-License-Identifier: MIT */
/*
 * rxbuf: bytes set aside between two receives (contract in rxbuf.h).
 */
#include "rxbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int rxbuf_append(struct rxbuf **rxp, const uint8_t *p, size_t len, size_t limit)
{
    struct rxbuf *rx = *rxp;
    size_t have = rx ? rx->len : 0;
    if (have + len > limit)
        return -EMSGSIZE;
    if (!rx || rx->cap < have + len) {
        size_t cap = rx ? rx->cap : 0;
        if (cap < 256)
            cap = 256;
        while (cap < have + len)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        struct rxbuf *n = realloc(rx, sizeof(*n) + cap);
        if (!n)
            return -ENOMEM;
        if (!rx)
            n->len = 0;
        n->cap = (uint32_t)cap;
        *rxp = rx = n;
    }
    memcpy(rx->data + rx->len, p, len);
    rx->len += (uint32_t)len;
    return 0;
}
