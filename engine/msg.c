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
    m->offset = 0;
    m->pub = NULL;
    m->name_len = (uint16_t)name_len;
    m->info_len = 0;
    m->opcode = 0;
    m->kind = MSG_PUB;
    return m;
}

void msg_unref(struct msg *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        if (m->pub)
            msg_unref(m->pub);
        free(m);
    }
}

struct msg *msg_frame_info(uint8_t opcode, const uint8_t *p, size_t len, const char *name,
                           size_t name_len, const char *info, size_t info_len)
{
    uint8_t hdr[WS_HEADER_MAX];
    size_t h = ws_frame_header(hdr, opcode, true, len, NULL);
    struct msg *m = msg_create(h + len, name_len + info_len);
    if (!m)
        return NULL;
    memcpy(m->data, hdr, h);
    if (len)
        memcpy(m->data + h, p, len);
    if (name_len)
        memcpy(m->data + h + len, name, name_len);
    if (info_len)
        memcpy(m->data + h + len + name_len, info, info_len);
    m->name_len = (uint16_t)name_len; /* msg_create counted the info in */
    m->info_len = (uint16_t)info_len;
    m->opcode = opcode;
    return m;
}

struct msg *msg_frame(uint8_t opcode, const uint8_t *p, size_t len, const char *name,
                      size_t name_len)
{
    return msg_frame_info(opcode, p, len, name, name_len, NULL, 0);
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
