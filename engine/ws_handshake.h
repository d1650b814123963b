/* SPDX-License-Identifier: MIT */
/*
 * ws_handshake: the HTTP/1.1 side of a WebSocket connection.
 *
 * Parses one HTTP/1.1 request head in place (picohttpparser style: the caller keeps the bytes,
 * the result points into them; calling again with more bytes is cheap because the scan resumes
 * where the last call stopped), classifies it as a WebSocket upgrade or a plain request,
 * computes Sec-WebSocket-Accept (RFC 6455 §4.2.2, SHA-1 and base64 from mbedtls), decodes and
 * validates room names, and formats the 101 answer and HTTP refusals.
 *
 * It owns nothing: every pointer in struct http_request borrows the caller's buffer. It does
 * no I/O and no allocation. Any thread.
 */
#ifndef RINGCAST_WS_HANDSHAKE_H
#define RINGCAST_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A request head larger than this is refused (431). */
#define HTTP_HEAD_MAX 8192
/* More header lines than this is a malformed request (400). */
#define HTTP_HEADERS_MAX 64
/* Longest room name after percent-decoding (ARCHITECTURE.md: 1 to 255 bytes). */
#define ROOM_NAME_MAX 255
/* Length of a Sec-WebSocket-Accept value (base64 of 20 bytes), without NUL. */
#define WS_ACCEPT_LEN 28

struct http_str {
    const char *p;
    size_t len;
};

struct http_request {
    struct http_str method;
    struct http_str path;  /* before '?', not decoded */
    struct http_str query; /* after '?', without it; len 0 when absent */
    int minor_version;     /* HTTP/1.<minor> */
    struct http_str host;
    struct http_str origin;          /* len 0 when absent */
    struct http_str ws_key;          /* Sec-WebSocket-Key, trimmed */
    struct http_str ws_protocol;     /* Sec-WebSocket-Protocol, raw; len 0 when absent */
    struct http_str authorization;   /* len 0 when absent */
    struct http_str api_key;         /* X-API-Key (the server API's key); len 0 when absent */
    struct http_str accept_encoding; /* Accept-Encoding, raw, first line; len 0 when absent */
    struct http_str if_none_match;   /* If-None-Match, raw, first line; len 0 when absent */
    struct http_str accept;          /* Accept, raw, first line; len 0 when absent */
    int ws_version;                  /* Sec-WebSocket-Version as a number, -1 when absent */
    bool upgrade_websocket;          /* Upgrade: websocket (case-insensitive, token lists) */
    bool connection_upgrade;         /* Connection: contains the token "upgrade" */
    bool connection_close;           /* Connection: contains the token "close" */
    bool connection_keep_alive;      /* Connection: contains the token "keep-alive" */
    bool has_content_length;         /* a Content-Length header was present */
    uint64_t content_length;         /* 0 when absent */
    /* private: where the next call resumes, and what the lines seen so far held */
    size_t _scanned; /* bytes examined */
    size_t _line;    /* offset of the line being read */
    uint16_t _nr_headers;
    uint16_t _seen; /* single-valued headers already seen (duplicates are refused) */
};

/*
 * Parses the request head in <buf>[0..<len>). <req> must be zeroed before the first call and
 * passed unchanged to later calls on the same (grown) buffer. The bytes already passed must not
 * change, but the buffer may move between calls (grown with realloc): the pointers are taken
 * from the call that completes the head. Lines end in CRLF; a bare LF or CR is malformed.
 * A malformed line is reported as soon as it is complete, before the head is.
 * Returns the length of the head including the final CRLFCRLF (> 0), or
 *   -EAGAIN  incomplete: call again with more bytes
 *   -EPROTO  malformed request (answer 400), including more than HTTP_HEADERS_MAX header
 *            lines; a duplicate Host, Origin, Authorization, X-API-Key, Content-Length,
 *            Sec-WebSocket-Key or Sec-WebSocket-Version; a Content-Length that is not a
 *            uint64_t or a Sec-WebSocket-Version that is not 0..255 (RFC 6455 §4.1); any
 *            Transfer-Encoding (bodies are framed by Content-Length only). A repeated
 *            Sec-WebSocket-Protocol, Accept-Encoding or If-None-Match line is allowed (each
 *            is a list, RFC 9110 §5.3); the first is kept.
 *   -E2BIG   head longer than HTTP_HEAD_MAX (answer 431)
 * Errors are sticky: calling again returns the same error. The fields of *<req> mean something
 * only after a call returned > 0; their pointers then borrow <buf>.
 */
int http_request_parse(const char *buf, size_t len, struct http_request *req);

enum ws_upgrade_check {
    WS_UPGRADE_OK = 0,
    WS_UPGRADE_NOT_WEBSOCKET, /* plain HTTP request: serve it or 426 */
    WS_UPGRADE_BAD_VERSION,   /* 426 with Sec-WebSocket-Version: 13 */
    WS_UPGRADE_BAD_REQUEST,   /* 400: missing/invalid key, not GET, HTTP/1.0, no Host or
                                 Connection: Upgrade */
};

/*
 * Classifies a parsed request: RFC 6455 §4.2.1 requires GET, HTTP/1.1 or later, Host,
 * Upgrade: websocket, Connection: Upgrade, a Sec-WebSocket-Key that is base64 of 16 bytes and
 * Sec-WebSocket-Version 13. Cannot fail.
 */
enum ws_upgrade_check ws_upgrade_check(const struct http_request *req);

/*
 * Computes Sec-WebSocket-Accept for <key> into <out> (WS_ACCEPT_LEN bytes + NUL).
 * Cannot fail.
 */
void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/*
 * Decodes a room name taken from a path (percent-decoding, RFC 3986) into <out> (at least
 * ROOM_NAME_MAX bytes) and validates it: 1 to 255 bytes, valid UTF-8, no '/', no control
 * characters (C0, DEL, C1). Returns the decoded length, or -EINVAL (answer 400).
 */
int room_name_decode(const char *in, size_t in_len, char *out);

/*
 * Looks up <name> in a query string ("a=1&echo=1"). Returns true and sets *<val> when found
 * (value not decoded; empty when the key has no '='). Cannot fail.
 */
bool http_query_get(struct http_str query, const char *name, struct http_str *val);

/*
 * True when the Accept-Encoding list <list> (RFC 9110 §12.5.3) accepts the content coding
 * <coding> (lower case): named (for "gzip", "x-gzip" too, §8.4.1.3) or covered by "*", with
 * a q-value that is not 0; a named element wins over "*". An absent header (len 0) gives false:
 * identity is always acceptable, so nothing else is sent unless asked for. Cannot fail.
 */
bool http_accepts_coding(struct http_str list, const char *coding);

/*
 * True when the Accept list <list> (RFC 9110 §12.5.1) names the media type <type> (lower case,
 * "text/html") itself with a q-value that is not 0. Wildcard ranges do not count: the question
 * is whether the client is a browser asking for a page, and tools such as curl send the
 * all-types range. An absent header gives false. Cannot fail.
 */
bool http_accepts_type(struct http_str list, const char *type);

/*
 * True when the If-None-Match list <list> (RFC 9110 §13.1.2) matches the entity-tag <etag>
 * (with its quotes, e.g. "\"abc\"", or W/"abc"): "*", or an element equal to it under the weak
 * comparison (the W/ prefixes ignored). A malformed list matches nothing from the bad element
 * on; an absent header gives false. Cannot fail.
 */
bool http_etag_match(struct http_str list, const char *etag);

/*
 * Writes the 101 Switching Protocols answer for <key> into <out> (at least 160 bytes).
 * Returns its length. Cannot fail.
 */
size_t ws_response_101(char *out, const char *key, size_t key_len);

/*
 * Writes an HTTP/1.1 response with <status>, <extra_headers> (complete lines, may be NULL), a
 * Content-Type of <content_type> (NULL: text/plain; charset=utf-8) and Content-Length of
 * <body_len>, `Connection: close` when <close>, then the body unless <head_only> (an answer to
 * HEAD). Returns the full length; writes at most <cap> bytes (call with cap 0 to size it).
 */
size_t http_response_write(char *out, size_t cap, int status, const char *extra_headers,
                           const char *content_type, const char *body, size_t body_len, bool close,
                           bool head_only);

/*
 * Writes a complete HTTP/1.1 response: status line, Content-Type <content_type> (NULL means
 * "text/plain; charset=utf-8"), Content-Length, "Connection: close", the header lines in
 * <extra_headers> when not NULL (each ending in CRLF), a blank line and <body>.
 * A <status> outside 100..599 is a caller bug: it asserts, and release builds send 500.
 * Returns the length written, or the length it would have needed when that is more than <cap>
 * (then <out> holds nothing useful; with <cap> 0, <out> may be NULL, which sizes the answer).
 * Cannot fail otherwise.
 */
size_t http_response(char *out, size_t cap, int status, const char *extra_headers,
                     const char *content_type, const char *body, size_t body_len);

/* Reason phrase for an HTTP status ("Bad Request"); "Unknown" for others. Cannot fail. */
const char *http_reason(int status);

#endif
