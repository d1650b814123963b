/* SPDX-License-Identifier: MIT */
#include "msg.h"

#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

struct msg *msg_create(size_t len, size_t name_len)
{
    struct msg *m = malloc(sizeof(*m) + len + name_len);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->len = (uint32_t)len;
    m->room_hash = 0;
    m->origin = UINT32_MAX;
    m->origin_gen = 0;
    m->t_recv_ns = 0;
    m->name_len = (uint16_t)name_len;
    m->opcode = 0;
    return m;
}

void msg_unref(struct msg *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

struct msg *msg_frame(uint8_t opcode, const uint8_t *p, size_t len, const char *name,
                      size_t name_len)
{
    uint8_t hdr[WS_HEADER_MAX];
    size_t h = ws_frame_header(hdr, opcode, true, len, NULL);
    struct msg *m = msg_create(h + len, name_len);
    if (!m)
        return NULL;
    memcpy(m->data, hdr, h);
    if (len)
        memcpy(m->data + h, p, len);
    if (name_len)
        memcpy(m->data + h + len, name, name_len);
    m->opcode = opcode;
    return m;
}

const uint8_t *msg_payload(const struct msg *m, size_t *len)
{
    /* RFC 6455 §5.2: a 7-bit length, 126 for a 16-bit one, 127 for a 64-bit one; a server
     * frame has no mask. */
    uint8_t l7 = m->data[1] & 0x7f;
    size_t h = l7 == 127 ? 10 : l7 == 126 ? 4 : 2;
    *len = m->len - h;
    return m->data + h;
}
