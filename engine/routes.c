/* SPDX-License-Identifier: MIT */
/*
 * routes: the handler registry, the route table and the plain endpoints (contract in routes.h).
 */
#include "routes.h"

#include "api.h"
#include "metrics.h"
#include "proto_conn.h"
#include "raw.h"
#include "shard.h"
#include "web.h"

#include <stdlib.h>

/* ---- plain endpoints ---------------------------------------------------------------------- */

/* GET /healthz: 200 while accepting, 503 while draining (ARCHITECTURE.md, "Endpoints"). */
static void route_healthz(struct shard *s, struct conn *c, const struct http_request *req,
                          const uint8_t *body, size_t body_len)
{
    (void)body;
    (void)body_len;
    if (s->draining)
        http_respond(s, c, req, 503, NULL, NULL, "draining\n", 9);
    else
        http_respond(s, c, req, 200, NULL, NULL, "ok\n", 3);
}

/* GET /metrics (Prometheus text) or /stats (JSON). The figures can grow between sizing and
 * rendering (a counter gains a digit), so render until the text fits. */
static void serve_metrics(struct shard *s, struct conn *c, const struct http_request *req,
                          bool prom)
{
    char small[4096];
    char *text = small;
    size_t cap = sizeof(small), n;
    for (;;) {
        n = prom ? metrics_prometheus(s->eng, text, cap) : metrics_json(s->eng, text, cap);
        if (n < cap)
            break;
        if (text != small)
            free(text);
        cap = n + 256;
        text = malloc(cap);
        if (!text) {
            http_refuse(s, c, 500, NULL, "out of memory");
            return;
        }
    }
    http_respond(s, c, req, 200, "Cache-Control: no-store\r\n",
                 prom ? "text/plain; version=0.0.4" : "application/json", text, n);
    if (text != small)
        free(text);
}

static void route_metrics(struct shard *s, struct conn *c, const struct http_request *req,
                          const uint8_t *body, size_t body_len)
{
    (void)body;
    (void)body_len;
    serve_metrics(s, c, req, true);
}

static void route_stats(struct shard *s, struct conn *c, const struct http_request *req,
                        const uint8_t *body, size_t body_len)
{
    (void)body;
    (void)body_len;
    serve_metrics(s, c, req, false);
}

/* ---- the tables --------------------------------------------------------------------------- */

static const struct conn_handler http_handler = {
    .name = "http",
    .on_input = http_on_input,
    .on_timer = http_on_timer,
    .on_drain = http_on_drain,
};

const struct conn_handler *const conn_handlers[CONN_HANDLERS_MAX] = {
    [HANDLER_HTTP] = &http_handler,
    [HANDLER_ECHO] = &raw_echo_handler.conn,
    [HANDLER_ROOM] = &raw_room_handler.conn,
    [HANDLER_PROTO] = &proto_handler.conn,
};

const struct http_route http_routes[] = {
    {"GET", "/", HTTP_EXACT, 0, web_route_asset}, /* the chat page */
    {"GET", "/healthz", HTTP_EXACT, 0, route_healthz},
    {"GET", "/metrics", HTTP_EXACT, 0, route_metrics},
    {"GET", "/stats", HTTP_EXACT, 0, route_stats},
    {"GET", "/echo", HTTP_EXACT, 0, raw_route_echo},
    {"GET", "/room/", HTTP_PREFIX, 0, raw_route_room},
    {"GET", "/connection/websocket", HTTP_EXACT, 0, proto_route},
    {"GET", "/ops", HTTP_EXACT, 0, web_route_asset},
    {"GET", "/assets/", HTTP_PREFIX, 0, web_route_asset},
    {"POST", "/api/", HTTP_PREFIX, HTTP_R_BODY, api_route},
};
const size_t http_nr_routes = sizeof(http_routes) / sizeof(http_routes[0]);
