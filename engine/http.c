/* SPDX-License-Identifier: MIT */
/*
 * http: routing of a parsed request head (ARCHITECTURE.md, "Endpoints"): plain endpoints,
 * refusals with a one-line reason, and WebSocket upgrades to /echo and /room/<name>.
 * The parsing itself is ws_handshake's; this file decides.
 */
#include "log.h"
#include "metrics.h"
#include "probes.h"
#include "shard.h"
#include "ws_handshake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool str_eq(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static void answer(struct shard *s, struct conn *c, int status, const char *extra,
                   const char *ctype, const char *body, size_t body_len)
{
    size_t need = http_response(NULL, 0, status, extra, ctype, body, body_len);
    struct msg *m = msg_create(need, 0);
    if (!m) {
        conn_kill(s, c);
        return;
    }
    m->len = (uint32_t)http_response((char *)m->data, need, status, extra, ctype, body, body_len);
    conn_close_http(s, c, m);
}

static void refuse_with(struct shard *s, struct conn *c, int status, const char *extra,
                        const char *reason)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    STAT_ADD(s, handshakes_failed, 1);
    log_debug("shard %u: conn %u: %d %s", s->id, c->idx, status, reason);
    answer(s, c, status, extra, NULL, body, (size_t)n);
}

void http_refuse(struct shard *s, struct conn *c, int status, const char *reason)
{
    refuse_with(s, c, status, NULL, reason);
}

static bool origin_allowed(const struct config *cfg, struct http_str origin)
{
    if (!cfg->allowed_origins || origin.len == 0)
        return true;
    for (size_t i = 0; i < cfg->nr_allowed_origins; i++)
        if (str_eq(origin, cfg->allowed_origins[i]))
            return true;
    return false;
}

/* GET /metrics (Prometheus text) or /stats (JSON). The figures can grow between sizing and
 * rendering (a counter gains a digit), so render until the text fits. */
static void serve_metrics(struct shard *s, struct conn *c, bool prom)
{
    char small[4096];
    char *body = small;
    size_t cap = sizeof(small), n;
    for (;;) {
        n = prom ? metrics_prometheus(s->eng, body, cap) : metrics_json(s->eng, body, cap);
        if (n < cap)
            break;
        if (body != small)
            free(body);
        cap = n + 256;
        body = malloc(cap);
        if (!body) {
            refuse_with(s, c, 500, NULL, "out of memory");
            return;
        }
    }
    answer(s, c, 200, "Cache-Control: no-store\r\n",
           prom ? "text/plain; version=0.0.4" : "application/json", body, n);
    if (body != small)
        free(body);
}

/* Plain HTTP: the few GET endpoints, else the right refusal. */
static void serve_plain(struct shard *s, struct conn *c, const struct http_request *req,
                        bool is_ws_path)
{
    if (str_eq(req->path, "/healthz")) {
        if (s->draining)
            refuse_with(s, c, 503, NULL, "draining");
        else
            answer(s, c, 200, NULL, NULL, "ok\n", 3);
        return;
    }
    if (str_eq(req->path, "/metrics") || str_eq(req->path, "/stats")) {
        serve_metrics(s, c, req->path.len == 8);
        return;
    }
    if (is_ws_path) {
        refuse_with(s, c, 426, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
                    "this endpoint needs a WebSocket upgrade");
        return;
    }
    refuse_with(s, c, 404, NULL, "not found");
}

/* Admission: drain, capacity, per-address limit. Returns true when <c> may upgrade. */
static bool admit(struct shard *s, struct conn *c)
{
    struct engine *e = s->eng;
    if (s->draining) {
        refuse_with(s, c, 503, NULL, "draining");
        return false;
    }
    if (atomic_fetch_add_explicit(&e->nr_conns, 1, memory_order_relaxed) >= e->max_conns) {
        atomic_fetch_sub_explicit(&e->nr_conns, 1, memory_order_relaxed);
        refuse_with(s, c, 503, NULL, "server full");
        return false;
    }
    c->flags |= CF_COUNTED;
    STAT_ADD(s, conns, 1);
    if (e->cfg->max_conns_per_ip && c->peer_ip) {
        if (!ip_acquire(e, c->peer_ip)) {
            refuse_with(s, c, 429, NULL, "too many connections from this address");
            return false;
        }
        c->flags |= CF_IP_COUNTED;
    }
    return true;
}

int http_handle(struct shard *s, struct conn *c, const uint8_t *buf, size_t len)
{
    struct http_request req;
    memset(&req, 0, sizeof(req));
    int r = http_request_parse((const char *)buf, len, &req);
    if (r == -EAGAIN) {
        if (len > HTTP_HEAD_MAX) {
            refuse_with(s, c, 431, NULL, "request head too large");
            return -E2BIG;
        }
        return -EAGAIN;
    }
    if (r == -E2BIG) {
        refuse_with(s, c, 431, NULL, "request head too large");
        return r;
    }
    if (r < 0) {
        refuse_with(s, c, 400, NULL, "malformed HTTP request");
        return r;
    }

    bool is_echo = str_eq(req.path, "/echo");
    bool is_room = req.path.len >= 6 && memcmp(req.path.p, "/room/", 6) == 0;
    enum ws_upgrade_check chk = ws_upgrade_check(&req);
    if (chk == WS_UPGRADE_NOT_WEBSOCKET) {
        if (!str_eq(req.method, "GET") && !str_eq(req.method, "HEAD")) {
            refuse_with(s, c, 405, "Allow: GET\r\n", "method not allowed");
            return -EPROTO;
        }
        serve_plain(s, c, &req, is_echo || is_room);
        return -EPROTO;
    }
    if (!is_echo && !is_room) {
        refuse_with(s, c, 404, NULL, "not found");
        return -EPROTO;
    }
    if (chk == WS_UPGRADE_BAD_VERSION) {
        refuse_with(s, c, 426, "Sec-WebSocket-Version: 13\r\n",
                    "unsupported WebSocket version (13 only)");
        return -EPROTO;
    }
    if (chk != WS_UPGRADE_OK) {
        refuse_with(s, c, 400, NULL, "bad WebSocket upgrade request");
        return -EPROTO;
    }
    char name[ROOM_NAME_MAX];
    int name_len = 0;
    if (is_room) {
        name_len = room_name_decode(req.path.p + 6, req.path.len - 6, name);
        if (name_len < 0) {
            refuse_with(s, c, 400, NULL, "bad room name");
            return -EPROTO;
        }
    }
    if (!origin_allowed(s->eng->cfg, req.origin)) {
        refuse_with(s, c, 403, NULL, "origin not allowed");
        return -EPROTO;
    }
    if (!admit(s, c))
        return -EPROTO;

    struct msg *m = msg_create(256, 0);
    if (!m) {
        conn_kill(s, c);
        return -ENOMEM;
    }
    m->len = (uint32_t)ws_response_101((char *)m->data, req.ws_key.p, req.ws_key.len);
    c->state = CONN_WS;
    conn_enqueue(s, c, m);
    if (is_echo) {
        c->flags |= CF_ECHO;
    } else {
        struct http_str v;
        if (http_query_get(req.query, "echo", &v) && str_eq(v, "1"))
            c->flags |= CF_ECHO_SELF;
        if (room_join(s, c, name, (size_t)name_len) < 0) {
            conn_close_ws(s, c, WS_CLOSE_INTERNAL, "out of memory");
            return r;
        }
    }
    PROBE3(upgrade, s->id, c->idx, is_echo ? 1 : 2);
    c->next_ping = s->now + s->eng->cfg->ping_interval;
    conn_arm_ws_timer(s, c);
    return r;
}
