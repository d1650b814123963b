/* SPDX-License-Identifier: MIT */
/*
 * proto_socketio: Socket.IO v5 over Engine.IO v4, WebSocket transport only, as a plain
 * WebSocket client speaks it (the protocol documents of socket.io-protocol and
 * engine.io-protocol; no Socket.IO library involved). The peer it is made for is
 * bench/peers/socketio-server.js: a client in room <name> (query room=<name>) emits event "m"
 * with one argument, which the server emits to every other member of the room, or to every
 * member with echo=1, or back to the sender without a room.
 *
 * Path: the URL's path (Socket.IO's own, /socket.io/ by default) with the query
 *
 *   ?EIO=4&transport=websocket&room=<the room name raw mode appends to the path>[&<URL query>]
 *
 * (no room in echo; &echo=1 for the fanout publisher, as in raw mode). Every WebSocket message
 * is one Engine.IO packet: a type digit and its data (engine.io-protocol, "Packet encoding"):
 *
 *   server                             client
 *   0{"sid":...,"pingInterval":...}    (open: ignored)
 *                                      40            Engine.IO message + Socket.IO CONNECT to
 *                                                    the main namespace: the hello
 *   40{"sid":"..."}                    (CONNECT answered: a member now)
 *   44{"message":"..."}                (CONNECT_ERROR: a refusal, PROTO_RX_BAD)
 *   2                                  3             heartbeat: the server pings, the client
 *                                                    answers within pingTimeout
 *   42["m",{"rcb":"...","p":"..."}]    42["m",{"rcb":"...","p":"..."}]   an EVENT
 *
 * Payload: 42["m",<raw mode's object>] (proto_raw.c), exactly --payload bytes. The object is
 * always at least PROTO_RAW_JSON_MIN bytes, padded with its "p" member, so that the server's
 * JSON.parse and JSON.stringify give the same bytes back, and a receiver reads the bench
 * fields at a fixed offset without a JSON parser.
 */
#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* engine.io-protocol, "Packet types". */
#define EIO_OPEN    '0'
#define EIO_CLOSE   '1'
#define EIO_PING    '2'
#define EIO_PONG    '3'
#define EIO_MESSAGE '4'
#define EIO_NOOP    '6'

/* socket.io-protocol, "Packet types". */
#define SIO_CONNECT    '0'
#define SIO_DISCONNECT '1'
#define SIO_EVENT      '2'

/* An EVENT "m" for the main namespace, no acknowledgement id: what the server writes. */
#define EVENT_OPEN     "42[\"m\","
#define EVENT_OPEN_LEN (sizeof(EVENT_OPEN) - 1)
#define SIO_HEAD_LEN   (EVENT_OPEN_LEN + PROTO_RAW_HEAD_LEN)     /* 48: what rx() reads */
#define SIO_MIN_LEN    (EVENT_OPEN_LEN + PROTO_RAW_JSON_MIN + 1) /* 57, with the closing ']' */

static int sio_path(const struct bench_opts *o, uint32_t g, char *out, size_t cap)
{
    char room[64];
    int n = plan_room_suffix(o, g, room, sizeof(room));
    if (n < 0)
        return n;
    /* The fanout publisher hears its own messages: that is how it counts what is in flight. */
    bool echo = o->scenario == SC_FANOUT && g == 0;
    int len =
        snprintf(out, cap, "%s?EIO=4&transport=websocket%s%s%s%s%s", o->path, n ? "&room=" : "",
                 room, o->query[0] ? "&" : "", o->query, echo ? "&echo=1" : "");
    if (len < 0 || (size_t)len >= cap)
        return -ENOSPC;
    return len;
}

static size_t sio_hello(const struct bench_opts *o, uint32_t g, uint8_t *out, size_t cap,
                        uint32_t *joins)
{
    (void)o, (void)g;
    /* socket.io-protocol, "Connection to a namespace": CONNECT to "/" has no namespace part;
     * the member is in its room once the server answers it. */
    *joins = 1;
    if (cap < 2)
        return 0;
    out[0] = EIO_MESSAGE;
    out[1] = SIO_CONNECT;
    return 2;
}

static size_t sio_publish(const struct bench_opts *o, const struct bench_msg *m, uint8_t *out,
                          size_t cap)
{
    size_t len = o->payload < SIO_MIN_LEN ? SIO_MIN_LEN : o->payload;
    if (len > cap)
        len = cap;
    memcpy(out, EVENT_OPEN, EVENT_OPEN_LEN);
    proto__raw_encode(m, out + EVENT_OPEN_LEN, len - EVENT_OPEN_LEN - 1);
    out[len - 1] = ']';
    return len;
}

/* An Engine.IO "message" packet: its data is one Socket.IO packet. */
static enum proto_rx sio_packet(const uint8_t *p, size_t have, size_t total, struct bench_msg *m)
{
    if (have < 2)
        return PROTO_RX_BAD;
    switch (p[1]) {
    case SIO_CONNECT:
        /* The answer to our CONNECT: "40" and, since v5, {"sid":...}. Another namespace
         * ("40/chat,...") is not ours. */
        return total == 2 || (have > 2 && p[2] == '{') ? PROTO_RX_JOINED : PROTO_RX_BAD;
    case SIO_DISCONNECT:
        /* The server left the namespace for us; it closes the transport next. */
        return PROTO_RX_IGNORE;
    case SIO_EVENT:
        if (have < SIO_HEAD_LEN || memcmp(p, EVENT_OPEN, EVENT_OPEN_LEN) != 0)
            return PROTO_RX_BAD;
        if (!proto__raw_decode(p + EVENT_OPEN_LEN, have - EVENT_OPEN_LEN, total - EVENT_OPEN_LEN,
                               m))
            return PROTO_RX_BAD;
        return PROTO_RX_DELIVERY;
    default:
        /* CONNECT_ERROR (a refused CONNECT: the room name), and ACK or binary packets, which
         * we never ask for. */
        return PROTO_RX_BAD;
    }
}

static enum proto_rx sio_rx(const struct bench_opts *o, const uint8_t *p, size_t have, size_t total,
                            struct bench_msg *m)
{
    (void)o;
    if (have == 0)
        return PROTO_RX_BAD;
    switch (p[0]) {
    case EIO_OPEN:
        return have > 1 && p[1] == '{' ? PROTO_RX_IGNORE : PROTO_RX_BAD;
    case EIO_PING:
        /* engine.io-protocol, "Heartbeat": answered with a pong carrying the same data (none
         * in a heartbeat), which must all be here. */
        return have == total && total <= PROTO_REPLY_MAX ? PROTO_RX_REPLY : PROTO_RX_BAD;
    case EIO_CLOSE:
    case EIO_PONG:
    case EIO_NOOP:
        return PROTO_RX_IGNORE;
    case EIO_MESSAGE:
        return sio_packet(p, have, total, m);
    default:
        return PROTO_RX_BAD;
    }
}

static size_t sio_reply(const struct bench_opts *o, const uint8_t *p, size_t have, size_t total,
                        uint8_t *out, size_t cap)
{
    (void)o;
    if (have == 0 || p[0] != EIO_PING || have != total || total > cap)
        return 0;
    out[0] = EIO_PONG;
    memcpy(out + 1, p + 1, total - 1);
    return total;
}

const struct proto_ops proto_socketio = {
    .name = "socketio",
    .rx_need = SIO_HEAD_LEN,
    .min_payload = SIO_MIN_LEN,
    .self_delivery = false,
    .path = sio_path,
    .hello = sio_hello,
    .publish = sio_publish,
    .split = NULL,
    .rx = sio_rx,
    .reply = sio_reply,
};
