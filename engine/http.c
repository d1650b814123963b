/* SPDX-License-Identifier: MIT */
/*
 * http: requests, keep-alive and the route table's dispatch (contract in http.h). The parsing
 * of a head is ws_handshake's; which routes exist is routes.c's; this file reads requests off a
 * connection and answers them in order.
 */
#include "http.h"

#include "fault.h"
#include "log.h"
#include "routes.h"
#include "shard.h"
#include "web.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The HTTP handler's private area. */
struct http_state {
    uint32_t nr_requests; /* answered on this connection */
    uint32_t ticket;      /* the deferred answer awaited (http_defer); 0: none */
    uint32_t last_ticket; /* the last ticket given */
    bool head;            /* the request being answered is a HEAD: no body in any answer */
    bool defer_head;      /* the deferred request was a HEAD */
    bool defer_keep;      /* the deferred request keeps the connection */
    bool in_input;        /* run_requests is on the stack: it reads what waited, not us */
};
_Static_assert(sizeof(struct http_state) <= CONN_PRIV_SIZE, "struct http_state must fit");

static bool str_eq(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* ---- the route table ---------------------------------------------------------------------- */

static bool path_matches(const struct http_route *r, struct http_str path)
{
    size_t n = strlen(r->path);
    if (r->match == HTTP_PREFIX)
        return path.len >= n && memcmp(path.p, r->path, n) == 0;
    return path.len == n && memcmp(path.p, r->path, n) == 0;
}

const struct http_route *http_route_find(const struct http_route *table, size_t n,
                                         struct http_str method, struct http_str path, int *status,
                                         char *allow, size_t allow_cap)
{
    /* HEAD is a GET without the body (RFC 9110 §9.3.2). */
    bool head = str_eq(method, "HEAD");
    const char *methods[16];
    size_t nr_methods = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        const struct http_route *r = &table[i];
        if (!path_matches(r, path))
            continue;
        if (str_eq(method, r->method) || (head && strcmp(r->method, "GET") == 0))
            return r;
        any = true;
        bool seen = false;
        for (size_t j = 0; j < nr_methods && !seen; j++)
            seen = strcmp(methods[j], r->method) == 0;
        if (!seen && nr_methods < sizeof(methods) / sizeof(methods[0]))
            methods[nr_methods++] = r->method;
    }
    *status = any ? 405 : 404;
    if (!allow_cap)
        return NULL;
    /* RFC 9110 §15.5.6: a 405 lists the methods the resource has. The line is all or nothing:
     * one that does not fit is left out rather than cut. */
    size_t len = 0;
    allow[0] = '\0';
    for (size_t j = 0; any && j < nr_methods; j++) {
        bool get = strcmp(methods[j], "GET") == 0;
        int w = snprintf(allow + len, allow_cap - len, "%s%s%s", j ? ", " : "Allow: ", methods[j],
                         get ? ", HEAD" : "");
        if (w < 0 || (size_t)w >= allow_cap - len) {
            allow[0] = '\0';
            return NULL;
        }
        len += (size_t)w;
    }
    if (len && len + 3 <= allow_cap)
        memcpy(allow + len, "\r\n", 3);
    else
        allow[0] = '\0';
    return NULL;
}

/* ---- answers ------------------------------------------------------------------------------ */

/* RFC 9112 §9.3: HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless
 * told to keep it. A draining broker closes. */
static bool keep_alive(const struct shard *s, const struct http_request *req)
{
    if (s->draining || req->connection_close)
        return false;
    return req->minor_version >= 1 || req->connection_keep_alive;
}

/* Queues an answer and either keeps <c> for the next request or closes it after the answer. */
static void answer(struct shard *s, struct conn *c, int status, const char *extra,
                   const char *ctype, const char *body, size_t len, bool keep, bool head)
{
    size_t need = http_response_write(NULL, 0, status, extra, ctype, body, len, !keep, head);
    struct msg *m = FAULT(FAULT_HTTP_ANSWER) ? NULL : msg_create(need, 0);
    if (!m) {
        conn_kill(s, c);
        return;
    }
    m->len = (uint32_t)http_response_write((char *)m->data, need, status, extra, ctype, body, len,
                                           !keep, head);
    if (!keep) {
        conn_close_after(s, c, m);
        return;
    }
    conn_enqueue(s, c, m);
    struct http_state *st = conn_priv(c);
    st->nr_requests++;
}

void http_respond(struct shard *s, struct conn *c, const struct http_request *req, int status,
                  const char *extra_headers, const char *ctype, const char *body, size_t len)
{
    answer(s, c, status, extra_headers, ctype, body, len, keep_alive(s, req),
           str_eq(req->method, "HEAD"));
}

void http_respond_head(struct shard *s, struct conn *c, const struct http_request *req, int status,
                       const char *extra_headers, const char *ctype, size_t len)
{
    answer(s, c, status, extra_headers, ctype, NULL, len, keep_alive(s, req), true);
}

void http_refuse(struct shard *s, struct conn *c, int status, const char *extra_headers,
                 const char *reason)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    const struct http_state *st = conn_priv(c);
    STAT_HS_FAIL(s, hs_fail_of_status(status));
    log_debug("shard %u: conn %u: %d %s", s->id, c->idx, status, reason);
    answer(s, c, status, extra_headers, NULL, body, (size_t)n, false, st->head);
}

/* ---- requests ----------------------------------------------------------------------------- */

/* Largest request body: the largest message a client may publish. */
static size_t body_max(const struct shard *s)
{
    return (size_t)s->eng->cfg->max_message;
}

/*
 * Handles the request at the start of <p>[0..<len>). Returns the bytes it took (> 0), 0 when the
 * request is not complete yet, or -1 when the connection was refused or upgraded (stop here).
 */
static ssize_t one_request(struct shard *s, struct conn *c, const uint8_t *p, size_t len)
{
    struct http_request req;
    memset(&req, 0, sizeof(req));
    int r = http_request_parse((const char *)p, len, &req);
    if (r == -EAGAIN) {
        if (len <= HTTP_HEAD_MAX)
            return 0;
        r = -E2BIG;
    }
    if (r == -E2BIG) {
        http_refuse(s, c, 431, NULL, "request head too large");
        return -1;
    }
    if (r < 0) {
        http_refuse(s, c, 400, NULL, "malformed HTTP request");
        return -1;
    }
    struct http_state *st = conn_priv(c);
    st->head = str_eq(req.method, "HEAD");
    /* RFC 9112 §3.2: an HTTP/1.1 request without Host is a bad request. */
    if (req.minor_version >= 1 && req.host.len == 0) {
        http_refuse(s, c, 400, NULL, "missing Host header");
        return -1;
    }
    if (req.content_length > body_max(s)) {
        http_refuse(s, c, 413, NULL, "request body too large");
        return -1;
    }
    size_t total = (size_t)r + (size_t)req.content_length;
    if (len < total)
        return 0;
    char allow[64];
    int status = 0;
    const struct http_route *route = http_route_find(http_routes, http_nr_routes, req.method,
                                                     req.path, &status, allow, sizeof(allow));
    if (!route) {
        /* The request was read whole: the connection can go on. */
        if (status == 404) {
            web_not_found(s, c, &req); /* a page for a browser, a line for the rest */
        } else {
            STAT_HS_FAIL(s, hs_fail_of_status(status));
            http_respond(s, c, &req, status, allow, NULL, "method not allowed\n", 19);
        }
        st->head = false;
        return conn_is_open(c) ? (ssize_t)total : -1;
    }
    if ((route->flags & HTTP_R_BODY) && !req.has_content_length) {
        http_refuse(s, c, 411, NULL, "a body with Content-Length is required");
        return -1;
    }
    route->fn(s, c, &req, p + r, (size_t)req.content_length);
    if (!conn_is_open(c))
        return -1;
    if (c->handler == HANDLER_HTTP)
        st->head = false;
    return (ssize_t)total;
}

/* Largest set-aside input: one incomplete request, or what waits behind a deferred answer. */
static size_t rx_limit(const struct shard *s)
{
    return HTTP_HEAD_MAX + body_max(s);
}

/*
 * Reads the requests in <p>[0..<len>) in order until they are done, one is incomplete (kept
 * for the next receive), one is deferred (what follows it is kept until its answer), or the
 * connection was refused or upgraded.
 */
static void run_requests(struct shard *s, struct conn *c, uint8_t *p, size_t len)
{
    struct http_state *st = conn_priv(c);
    st->in_input = true;
    while (len && conn_is_open(c)) {
        if (st->ticket) {
            /* Waiting for a deferred answer: the rest waits too, in order. */
            if (conn_rx_append(c, p, len, rx_limit(s)) < 0)
                conn_kill(s, c);
            break;
        }
        ssize_t n = one_request(s, c, p, len);
        if (n < 0)
            break;
        if (n == 0) {
            /* Incomplete: keep the rest for the next receive. */
            if (conn_rx_append(c, p, len, rx_limit(s)) < 0)
                conn_kill(s, c);
            break;
        }
        p += n;
        len -= (size_t)n;
        if (c->handler != HANDLER_HTTP) {
            /* Upgraded: what followed the head (frames already) is the new handler's. */
            if (len && conn_is_open(c))
                conn_handler(c)->on_input(s, c, p, len);
            return; /* the private area is the new handler's now */
        }
        /* Answered: the next request has --handshake-timeout to arrive whole. Deferred: the
         * answer has HTTP_DEFER_TIMEOUT_S to come. */
        conn_timer_arm(s, c,
                       s->now + 1 +
                           (st->ticket ? HTTP_DEFER_TIMEOUT_S : s->eng->cfg->handshake_timeout));
    }
    if (c->handler == HANDLER_HTTP)
        st->in_input = false;
}

void http_on_input(struct shard *s, struct conn *c, uint8_t *p, size_t len)
{
    /*
     * What is set aside is at most one request that is not complete yet, so at most
     * HTTP_HEAD_MAX + --max-message bytes (one_request refuses a longer head or body); a receive
     * is added to it whole, pipelined requests behind it included, and what is left after the
     * complete ones is again one incomplete request. Behind a deferred answer the same bound
     * holds for everything that waits.
     */
    struct http_state *st = conn_priv(c);
    if (st->ticket) {
        if (conn_rx_append(c, p, len, rx_limit(s)) < 0)
            conn_kill(s, c);
        return;
    }
    struct rxbuf *rx = NULL;
    if (c->rx) {
        if (conn_rx_append(c, p, len, rx_limit(s) + len) < 0) {
            conn_kill(s, c);
            return;
        }
        rx = conn_rx_take(c);
        p = rx->data;
        len = rx->len;
    }
    run_requests(s, c, p, len);
    free(rx);
}

/* ---- deferred answers --------------------------------------------------------------------- */

uint32_t http_defer(struct shard *s, struct conn *c, const struct http_request *req)
{
    struct http_state *st = conn_priv(c);
    assert(!st->ticket);
    if (++st->last_ticket == 0)
        st->last_ticket = 1;
    st->ticket = st->last_ticket;
    st->defer_head = str_eq(req->method, "HEAD");
    st->defer_keep = keep_alive(s, req);
    return st->ticket;
}

bool http_is_deferred(const struct conn *c, uint32_t ticket)
{
    const struct http_state *st = (const struct http_state *)c->priv;
    return conn_is_open(c) && c->handler == HANDLER_HTTP && ticket && st->ticket == ticket;
}

bool http_respond_deferred(struct shard *s, struct conn *c, uint32_t ticket, int status,
                           const char *extra_headers, const char *ctype, const char *body,
                           size_t len)
{
    if (!http_is_deferred(c, ticket))
        return false;
    struct http_state *st = conn_priv(c);
    st->ticket = 0;
    answer(s, c, status, extra_headers, ctype, body, len, st->defer_keep && !s->draining,
           st->defer_head);
    if (!conn_is_open(c))
        return true;
    conn_timer_arm(s, c, s->now + s->eng->cfg->handshake_timeout + 1);
    /* Inside run_requests (an answer given before the route returned) the loop goes on by
     * itself; otherwise the requests that waited are read now. */
    if (st->in_input || !c->rx)
        return true;
    struct rxbuf *rx = conn_rx_take(c);
    run_requests(s, c, rx->data, rx->len);
    free(rx);
    return true;
}

void http_on_timer(struct shard *s, struct conn *c)
{
    const struct http_state *st = conn_priv(c);
    if (st->ticket) {
        /* The deferred answer never came: say so, and close, since the requests waiting
         * behind it cannot be answered in order any more. */
        log_warn("shard %u: conn %u: deferred answer timed out", s->id, c->idx);
        answer(s, c, 504, NULL, NULL, "answer timed out\n", 17, false, st->defer_head);
        return;
    }
    if (st->nr_requests == 0 || c->rx) {
        /* A request that did not arrive whole in time: a failed handshake. */
        STAT_HS_FAIL(s, HS_FAIL_TIMEOUT);
        log_debug("shard %u: conn %u: request timeout", s->id, c->idx);
        conn_kill(s, c);
        return;
    }
    /* An idle keep-alive connection: close it politely. */
    conn_close(s, c, 0, NULL);
}

void http_on_drain(struct shard *s, struct conn *c)
{
    /* Between two requests: close now. A request on its way is answered first (503 for an
     * upgrade, `Connection: close` on any answer), and the request timeout bounds the wait. */
    const struct http_state *st = conn_priv(c);
    if (st->nr_requests && !c->rx && !st->ticket)
        conn_close(s, c, 0, NULL);
}
