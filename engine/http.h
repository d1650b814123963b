/* SPDX-License-Identifier: MIT */
/*
 * http: the connection handler every connection starts with. It reads HTTP/1.1 requests (heads
 * through ws_handshake's parser, bodies with Content-Length up to --max-message), matches each
 * against a route table (method and path, exact or prefix) and calls the route's function,
 * which answers (http_respond, http_refuse) or upgrades the connection to another handler
 * (ws_upgrade). Keep-alive: requests are answered in order, pipelined ones included; a
 * connection waits --handshake-timeout seconds for its next request, then is closed. HEAD gets
 * a GET's head without the body; `Connection: close` and HTTP/1.0 close after the answer.
 *
 * Deferred answers: a route whose answer needs another shard (the server API's questions) calls
 * http_defer and answers later with http_respond_deferred, on the same shard. Meanwhile the
 * requests pipelined behind it are read but wait, set aside with the connection's other unread
 * bytes (at most HTTP_HEAD_MAX + --max-message of them; more kills the connection), and are
 * answered in order after it. The request timeout does not run while an answer is awaited; a
 * separate HTTP_DEFER_TIMEOUT_S answers 504 and closes when the answer never comes (a question
 * lost for want of memory). A connection closed meanwhile simply drops the late answer: the
 * caller keeps the connection's slot, generation and ticket, and the slot's owner checks them.
 *
 * Refusals: 400 malformed (chunked bodies included: Transfer-Encoding is not supported), 404
 * no route, 405 wrong method (with Allow), 411 a body route without Content-Length, 413 a body
 * over --max-message, 431 a head over HTTP_HEAD_MAX. A refusal of a request whose bytes cannot
 * be skipped (400, 411, 413, 431) closes the connection.
 *
 * The route table itself is the engine's wiring (routes.c), not this file's.
 * Shard rule: every function must be called on the thread of the shard that owns <c>.
 */
#ifndef RINGCAST_HTTP_H
#define RINGCAST_HTTP_H

#include "conn.h"
#include "ws_handshake.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A route's function: answer <req> on <c> (its head and <body>[0..<body_len>) are borrowed for
 * the call) with http_respond or http_refuse, or upgrade <c>, or http_defer the answer. It must
 * answer (or defer) exactly once, before it returns.
 */
typedef void (*http_route_fn)(struct shard *s, struct conn *c, const struct http_request *req,
                              const uint8_t *body, size_t body_len);

enum http_match {
    HTTP_EXACT = 0,
    HTTP_PREFIX, /* the path starts with the route's path */
};

enum http_route_flag {
    HTTP_R_BODY = 1u << 0, /* needs a body: 411 without Content-Length */
};

struct http_route {
    const char *method; /* "GET" (HEAD is served by the GET row), "POST", ... */
    const char *path;
    uint8_t match; /* enum http_match */
    uint8_t flags; /* enum http_route_flag */
    http_route_fn fn;
};

/*
 * Finds the row of <table>[0..<n>) for <method> and <path>. Returns it, or NULL with the
 * refusal in *<status>: 404 when no row has the path, 405 when rows have it with other
 * methods; for 405 the allowed methods are written to <allow> (a header line,
 * "Allow: GET, POST\r\n", at most <allow_cap> bytes). Cannot fail otherwise.
 */
const struct http_route *http_route_find(const struct http_route *table, size_t n,
                                         struct http_str method, struct http_str path, int *status,
                                         char *allow, size_t allow_cap);

/*
 * Answers <req> on <c> with <status>, <extra_headers> (complete lines, may be NULL), the body
 * <body>[0..<len>) of type <ctype> (NULL: text/plain). Keeps the connection for the next
 * request unless the request or the broker's state (draining) says close. Without memory, kills
 * <c>.
 */
void http_respond(struct shard *s, struct conn *c, const struct http_request *req, int status,
                  const char *extra_headers, const char *ctype, const char *body, size_t len);

/*
 * Answers <req> on <c> with a head only: <status>, <extra_headers>, <ctype>, and the
 * Content-Length <len> of the body a 200 would carry (RFC 9110 §8.6, §15.4.5: what a 304 says),
 * but no body. Otherwise as http_respond.
 */
void http_respond_head(struct shard *s, struct conn *c, const struct http_request *req, int status,
                       const char *extra_headers, const char *ctype, size_t len);

/* Seconds a deferred answer may take before the connection gets 504 and is closed. */
#define HTTP_DEFER_TIMEOUT_S 30

/*
 * Defers the answer to <req> on <c> (from inside its route's function): remembers what the
 * answer needs of <req> (HEAD, keep-alive), so that <req> may go. Returns the ticket (never 0)
 * to give to http_respond_deferred; the caller keeps it with <c>'s slot and generation. Cannot
 * fail.
 */
uint32_t http_defer(struct shard *s, struct conn *c, const struct http_request *req);

/* True while <c> is an OPEN HTTP connection waiting for the deferred answer <ticket>. */
bool http_is_deferred(const struct conn *c, uint32_t ticket);

/*
 * Gives the deferred answer <ticket> on <c>, as http_respond would have, then reads the requests
 * that waited behind it (their routes run inside this call). Returns false, doing nothing, when
 * <c> is no longer waiting for <ticket> (closed, timed out, another request). Without memory,
 * kills <c>.
 */
bool http_respond_deferred(struct shard *s, struct conn *c, uint32_t ticket, int status,
                           const char *extra_headers, const char *ctype, const char *body,
                           size_t len);

/* Refuses the request on <c> with <status> and a one-line <reason>, counted as a failed
 * handshake, and closes <c> after the answer. */
void http_refuse(struct shard *s, struct conn *c, int status, const char *extra_headers,
                 const char *reason);

/* The handler's functions, for the handler registry (routes.c). */
void http_on_input(struct shard *s, struct conn *c, uint8_t *p, size_t len);
void http_on_timer(struct shard *s, struct conn *c);
void http_on_drain(struct shard *s, struct conn *c);

#endif
