/* SPDX-License-Identifier: MIT */
/*
 * routes: the engine's wiring. Which connection handlers exist (the registry conn.h indexes)
 * and which HTTP routes exist (the table http.c dispatches on), in one place, so that adding an
 * endpoint or a connection mode is a row here and a function in its own module:
 *
 *   a route:    write `void my_route(struct shard *, struct conn *, const struct http_request *,
 *               const uint8_t *body, size_t body_len)` that answers with http_respond, add a
 *               row {method, path, HTTP_EXACT or HTTP_PREFIX, flags, my_route} to http_routes;
 *   a handler:  define a struct conn_handler (or a struct ws_handler for a WebSocket
 *               application, ws.h), give it an index below and a row in conn_handlers, and
 *               switch to it from a route (conn_set_handler, or ws_upgrade for WebSockets).
 *
 * The plain endpoints (/healthz, /metrics, /stats) live here too: each is a few lines.
 */
#ifndef RINGCAST_ROUTES_H
#define RINGCAST_ROUTES_H

#include "http.h"

#include <stddef.h>

/* Connection handler indexes (struct conn.handler). */
enum {
    HANDLER_HTTP = 0, /* every connection starts here */
    HANDLER_ECHO,     /* WS /echo (raw.c) */
    HANDLER_ROOM,     /* WS /room/<name> (raw.c) */
    HANDLER_PROTO,    /* WS /connection/websocket (proto_conn.c) */
    NR_HANDLERS,
};

extern const struct http_route http_routes[];
extern const size_t http_nr_routes;

#endif
