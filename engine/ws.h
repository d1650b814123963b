/* SPDX-License-Identifier: MIT */
/*
 * ws: the WebSocket layer of a connection after its upgrade. It takes the upgrade itself
 * (checks, admission, the 101), then reads frames (RFC 6455: unmasking, fragments, control
 * frames, UTF-8, limits), keeps the connection alive (pings, idle timeout), applies
 * --rate-limit, and hands each complete data message to the application above it: a struct
 * ws_handler adds on_message (and on_close) to the connection handler table, so echo, raw rooms
 * and protocol mode are WebSocket applications of a few lines each.
 *
 * Every WebSocket handler's private area starts with struct ws_state; the application's own
 * state follows it (WS_APP_PRIV bytes are left for it).
 *
 * Shard rule: every function must be called on the thread of the shard that owns <c>.
 */
#ifndef RINGCAST_WS_H
#define RINGCAST_WS_H

#include "conn.h"
#include "ws_frame.h"

#include <stddef.h>
#include <stdint.h>

struct http_request;

/* At the start of a WebSocket handler's private area. */
struct ws_state {
    struct ws_parser parser;
    uint8_t *ctl; /* a control frame split across receives (<= 125 bytes) */
    uint32_t next_ping;
    float rl_tokens;     /* --rate-limit token bucket */
    uint32_t rl_last_ms; /* shard milliseconds at the last refill */
    uint8_t ctl_len;
    uint8_t flags; /* private */
};

/* Bytes of the private area left to the application, after struct ws_state. */
#define WS_APP_PRIV (CONN_PRIV_SIZE - ((sizeof(struct ws_state) + 7) & ~(size_t)7))

/* The application's part of the private area of <c>. */
static inline void *ws_app_priv(struct conn *c)
{
    return (unsigned char *)conn_priv(c) + ((sizeof(struct ws_state) + 7) & ~(size_t)7);
}

/* A WebSocket application: a connection handler whose on_input, on_timer, on_close and farewell
 * are WS_HANDLER_BASE, plus what to do with messages. */
struct ws_handler {
    struct conn_handler conn;
    /* A complete data message of <opcode> (text or binary) at <p>[0..<len>), borrowed for the
     * call. Text is valid UTF-8. */
    void (*on_message)(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p,
                       size_t len);
    /* The connection stops being open (may be NULL): leave rooms, free what the application's
     * part of the private area points to. */
    void (*on_close)(struct shard *s, struct conn *c);
    /* The keep-alive sent every --ping-interval, given with one reference (NULL when out of
     * memory: that ping is skipped). NULL: a WebSocket ping frame (raw mode); protocol mode
     * sends its application-level ping instead (PROTOCOL-CENTRIFUGO.md §7). */
    struct msg *(*ping)(void);
    /* The application's own deadline (may be NULL): due() gives the shard second (s->now) at
     * which tick() must run next, UINT32_MAX for none; the WebSocket timer runs it then, and
     * the application calls ws_rearm() when its deadline moves earlier. */
    uint32_t (*due)(const struct conn *c);
    void (*tick)(struct shard *s, struct conn *c);
};

/* Re-arms <c>'s timer after its application's deadline changed. Cannot fail. */
void ws_rearm(struct shard *s, struct conn *c);

void ws_on_input(struct shard *s, struct conn *c, uint8_t *p, size_t len);
void ws_on_timer(struct shard *s, struct conn *c);
void ws_on_close(struct shard *s, struct conn *c);
struct msg *ws_farewell(uint16_t code, const char *reason);

/* The connection half of a struct ws_handler named <nm>. */
#define WS_HANDLER_BASE(nm)                                                                        \
    {                                                                                              \
        .name = (nm), .on_input = ws_on_input, .on_timer = ws_on_timer, .on_close = ws_on_close,   \
        .farewell = ws_farewell, .lossy = true                                                     \
    }

/*
 * Upgrades the HTTP request <req> on <c> to a WebSocket handled by conn_handlers[<handler>]
 * (a struct ws_handler): checks the request (426, 400), the origin (403) and admission
 * (draining 503, --max-conns 503, --max-conns-per-ip 429), queues the 101 and swaps the
 * handler; the application's part of the private area is zeroed for the caller to fill.
 * Returns 0, or a negative errno when refused (the refusal is queued and <c> is closing).
 */
int ws_upgrade(struct shard *s, struct conn *c, const struct http_request *req, uint8_t handler);

#endif
