/* SPDX-License-Identifier: MIT */
/*
 * rxbuf: bytes set aside between two receives (a partial request head, frame or fragmented
 * message), grown by doubling up to a caller's limit. The owner of the pointer owns the buffer
 * and frees it with free(). Not thread-safe; nothing else.
 */
#ifndef RINGCAST_RXBUF_H
#define RINGCAST_RXBUF_H

#include <stddef.h>
#include <stdint.h>

struct rxbuf {
    uint32_t len, cap;
    uint8_t data[];
};

/*
 * Appends <p>[0..<len>) to *<rx> (NULL: none yet), which may hold at most <limit> bytes, growing
 * it as needed (*<rx> may move). Returns 0, or -EMSGSIZE (over the limit) or -ENOMEM; on an
 * error *<rx> and its bytes are unchanged.
 */
int rxbuf_append(struct rxbuf **rx, const uint8_t *p, size_t len, size_t limit);

#endif
