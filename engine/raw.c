/* SPDX-License-Identifier: MIT */
/*
 * raw: echo and raw rooms (contract in raw.h).
 */
#include "raw.h"

#include "room.h"
#include "routes.h"

#include <string.h>

/* The room handler's part of the private area: its one subscription. */
_Static_assert(sizeof(struct sub) <= WS_APP_PRIV, "a raw member's sub must fit conn_priv");

static struct sub *sub_of(struct conn *c)
{
    return ws_app_priv(c);
}

static void echo_message(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p,
                         size_t len)
{
    struct msg *m = msg_frame(opcode, p, len, NULL, 0);
    if (!m) {
        conn_close(s, c, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    conn_enqueue(s, c, m);
}

static void room_message(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p,
                         size_t len)
{
    if (room_publish(s, sub_of(c), opcode, p, len) < 0)
        conn_close(s, c, WS_CLOSE_INTERNAL, "out of memory");
}

static void room_close(struct shard *s, struct conn *c)
{
    room_unsubscribe(s, sub_of(c));
}

const struct ws_handler raw_echo_handler = {
    .conn = WS_HANDLER_BASE("echo"),
    .on_message = echo_message,
};

const struct ws_handler raw_room_handler = {
    .conn = WS_HANDLER_BASE("room"),
    .on_message = room_message,
    .on_close = room_close,
};

void raw_route_echo(struct shard *s, struct conn *c, const struct http_request *req,
                    const uint8_t *body, size_t body_len)
{
    (void)body;
    (void)body_len;
    ws_upgrade(s, c, req, HANDLER_ECHO);
}

void raw_route_room(struct shard *s, struct conn *c, const struct http_request *req,
                    const uint8_t *body, size_t body_len)
{
    (void)body;
    (void)body_len;
    char name[ROOM_NAME_MAX];
    static const size_t prefix = sizeof("/room/") - 1;
    int name_len = room_name_decode(req->path.p + prefix, req->path.len - prefix, name);
    if (name_len < 0) {
        http_refuse(s, c, 400, NULL, "bad room name");
        return;
    }
    if (ws_upgrade(s, c, req, HANDLER_ROOM) < 0)
        return;
    struct http_str v;
    uint32_t flags = 0;
    if (http_query_get(req->query, "echo", &v) && v.len == 1 && v.p[0] == '1')
        flags |= SUB_ECHO;
    if (room_subscribe(s, sub_of(c), c, name, (size_t)name_len, flags) < 0)
        conn_close(s, c, WS_CLOSE_INTERNAL, "out of memory");
}
