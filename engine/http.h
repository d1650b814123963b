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
 * the call) with http_respond or http_refuse, or upgrade <c>. It must answer exactly once,
 * before it returns.
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

/* Refuses the request on <c> with <status> and a one-line <reason>, counted as a failed
 * handshake, and closes <c> after the answer. */
void http_refuse(struct shard *s, struct conn *c, int status, const char *extra_headers,
                 const char *reason);

/* The handler's functions, for the handler registry (routes.c). */
void http_on_input(struct shard *s, struct conn *c, uint8_t *p, size_t len);
void http_on_timer(struct shard *s, struct conn *c);
void http_on_drain(struct shard *s, struct conn *c);

#endif
