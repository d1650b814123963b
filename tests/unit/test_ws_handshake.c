/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for ws_handshake, through the public header only.
 *
 * Parser rows are tables in picohttpparser's manner: one named row per valid request and one per
 * error class. Each row is fed whole, one byte at a time and split at pseudo-random points
 * (uWebSockets' chunked fuzzing). Every call sees its bytes copied to the very end of a page
 * followed by a PROT_NONE page, so a read one byte past <len> faults at once, and the buffer
 * moves between calls as a caller's realloc would make it.
 */
/* cmocka.h needs these four first; clang-format 14 would sort it above them. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "ws_handshake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * Guard page
 */

/* Room for the largest input (a head past HTTP_HEAD_MAX) and a PROT_NONE page after it. */
#define GUARD_AREA (4 * HTTP_HEAD_MAX)

struct guard {
    uint8_t *map;
    size_t map_len;
    uint8_t *end; /* first byte of the PROT_NONE page */
};

static void guard_init(struct guard *g)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    g->map_len = GUARD_AREA + page;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->map != MAP_FAILED);
    g->end = g->map + GUARD_AREA;
    assert_int_equal(mprotect(g->end, page, PROT_NONE), 0);
}

static void guard_fini(struct guard *g)
{
    assert_int_equal(munmap(g->map, g->map_len), 0);
}

/* Copies <len> bytes so that they end right before the guard page; returns where they start. */
static const char *guard_place(struct guard *g, const void *data, size_t len)
{
    assert_true(len <= GUARD_AREA);
    memcpy(g->end - len, data, len);
    return (const char *)(g->end - len);
}

/* Deterministic xorshift64, so that a failing split can be reproduced. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---------------------------------------------------------------------------------------------
 * Request rows
 */

struct req_row {
    const char *name;
    const char *text;
    size_t len; /* 0: strlen(text) */
    int expect; /* 0: success, the head ends at the first CRLFCRLF; else -EPROTO or -E2BIG */
    enum ws_upgrade_check check;
    /* Expected fields on success; NULL means absent (len 0). */
    const char *path, *query, *host, *origin, *key, *protocol;
    const char *accept_encoding, *if_none_match, *accept;
    const char *api_key;
    int version;
    uint64_t content_length;
};

#define UPGRADE_HEADERS                                                                            \
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"                   \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="

static const struct req_row valid_rows[] = {
    {
        .name = "browser (Chromium)",
        .text = "GET /room/lobby HTTP/1.1\r\n"
                "Host: localhost:8080\r\n"
                "Connection: Upgrade\r\n"
                "Pragma: no-cache\r\n"
                "Cache-Control: no-cache\r\n"
                "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                "Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
                "Upgrade: websocket\r\n"
                "Origin: http://localhost:8080\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "Accept-Encoding: gzip, deflate, br\r\n"
                "Accept-Language: en-US,en;q=0.9\r\n"
                "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                "\r\n",
        .path = "/room/lobby",
        .host = "localhost:8080",
        .origin = "http://localhost:8080",
        .key = RFC_KEY,
        .accept_encoding = "gzip, deflate, br",
        .version = 13,
    },
    {
        .name = "browser (Firefox, Connection token list)",
        .text = "GET /room/caf%C3%A9 HTTP/1.1\r\n"
                "Host: chat.example:8443\r\n"
                "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 "
                "Firefox/115.0\r\n"
                "Accept: */*\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "Origin: https://chat.example:8443\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
                "Connection: keep-alive, Upgrade\r\n"
                "Sec-Fetch-Mode: websocket\r\n"
                "Upgrade: websocket\r\n"
                "\r\n",
        .path = "/room/caf%C3%A9",
        .host = "chat.example:8443",
        .origin = "https://chat.example:8443",
        .key = "x3JJHMbDL1EzLkh9GBhXDw==",
        .accept = "*/*",
        .version = 13,
    },
    {
        .name = "python websockets 10.4",
        .text = "GET /echo HTTP/1.1\r\n"
                "Host: 127.0.0.1:8080\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                "User-Agent: Python/3.11 websockets/10.4\r\n"
                "\r\n",
        .path = "/echo",
        .host = "127.0.0.1:8080",
        .key = "AQIDBAUGBwgJCgsMDQ4PEA==",
        .version = 13,
    },
    {
        .name = "node ws 8.11 with query",
        .text = "GET /room/lobby?echo=1 HTTP/1.1\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: +/+/+/+/+/+/+/+/+/+/+w==\r\n"
                "Connection: Upgrade\r\n"
                "Upgrade: websocket\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                "Host: 127.0.0.1:8080\r\n"
                "\r\n",
        .path = "/room/lobby",
        .query = "echo=1",
        .host = "127.0.0.1:8080",
        .key = "+/+/+/+/+/+/+/+/+/+/+w==",
        .version = 13,
    },
    {
        .name = "query with '?' inside, origin, subprotocol, authorization",
        .text = "GET /connection/websocket?a=1&b=?x HTTP/1.1\r\n"
                "Host: h\r\n"
                "Origin: null\r\n"
                "Authorization: Bearer abc.def.ghi\r\n"
                "Sec-WebSocket-Protocol: centrifuge-json, chat\r\n" UPGRADE_HEADERS "\r\n",
        .path = "/connection/websocket",
        .query = "a=1&b=?x",
        .host = "h",
        .origin = "null",
        .key = RFC_KEY,
        .protocol = "centrifuge-json, chat",
        .version = 13,
    },
    {
        .name = "mixed-case names and values",
        .text = "GET / HTTP/1.1\r\n"
                "hOsT: H\r\n"
                "UPGRADE: WebSocket\r\n"
                "connection: UPGRADE\r\n"
                "SEC-WEBSOCKET-KEY: " RFC_KEY "\r\n"
                "sec-websocket-version: 13\r\n"
                "\r\n",
        .path = "/",
        .host = "H",
        .key = RFC_KEY,
        .version = 13,
    },
    {
        .name = "token lists, empty elements, OWS and tabs",
        .text = "GET /x HTTP/1.1\r\n"
                "Host:\t h \t\r\n"
                "Upgrade: h2c , websocket\r\n"
                "Connection: keep-alive, ,\tUpgrade ,\r\n"
                "Sec-WebSocket-Key:" RFC_KEY "  \r\n"
                "Sec-WebSocket-Version:\t13\r\n"
                "\r\n",
        .path = "/x",
        .host = "h",
        .key = RFC_KEY,
        .version = 13,
    },
    {
        .name = "repeated Sec-WebSocket-Protocol keeps the first line",
        .text = "GET / HTTP/1.1\r\nHost: h\r\n"
                "Sec-WebSocket-Protocol: a\r\n"
                "Sec-WebSocket-Protocol: b\r\n" UPGRADE_HEADERS "\r\n",
        .path = "/",
        .host = "h",
        .key = RFC_KEY,
        .protocol = "a",
        .version = 13,
    },
    {
        .name = "obs-text in a value, empty value, HTTP/1.2",
        .text = "GET /a HTTP/1.2\r\nHost: h\r\nX-Name: caf\xc3\xa9\r\nX-Empty:\r\n" UPGRADE_HEADERS
                "\r\n",
        .path = "/a",
        .host = "h",
        .key = RFC_KEY,
        .version = 13,
    },
    {
        .name = "plain GET /healthz",
        .text = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\n"
                "Accept: */*\r\n\r\n",
        .check = WS_UPGRADE_NOT_WEBSOCKET,
        .path = "/healthz",
        .host = "localhost",
        .accept = "*/*",
        .version = -1,
    },
    {
        .name = "browser GET of a cached page, Accept, Accept-Encoding, If-None-Match repeated",
        .text = "GET /ops HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                "Accept: text/html,application/xhtml+xml\r\n"
                "Accept-Encoding: gzip, deflate, br, zstd\r\n"
                "Accept: */*\r\n"
                "Accept-Encoding: identity\r\n"
                "If-None-Match: \"a1b2\", W/\"c,3\"\r\n"
                "If-None-Match: \"ignored\"\r\n\r\n",
        .check = WS_UPGRADE_NOT_WEBSOCKET,
        .path = "/ops",
        .host = "127.0.0.1:8080",
        .accept_encoding = "gzip, deflate, br, zstd",
        .if_none_match = "\"a1b2\", W/\"c,3\"",
        .accept = "text/html,application/xhtml+xml",
        .version = -1,
    },
    {
        .name = "POST with a body after the head",
        .text = "POST /api/publish HTTP/1.1\r\nHost: h\r\nX-API-Key: k\r\n"
                "Content-Type: application/json\r\nContent-Length: 27\r\n\r\n"
                "{\"channel\":\"a\",\"data\":{}}",
        .check = WS_UPGRADE_NOT_WEBSOCKET,
        .path = "/api/publish",
        .host = "h",
        .api_key = "k",
        .version = -1,
        .content_length = 27,
    },
    {
        .name = "largest Content-Length",
        .text = "POST /api/x HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
        .check = WS_UPGRADE_NOT_WEBSOCKET,
        .path = "/api/x",
        .version = -1,
        .content_length = UINT64_MAX,
    },
    {
        .name = "Upgrade: h2c is not websocket",
        .text = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        .check = WS_UPGRADE_NOT_WEBSOCKET,
        .path = "/",
        .host = "h",
        .version = -1,
    },
    {
        .name = "upgrade: version 8",
        .text = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " RFC_KEY "\r\n\r\n",
        .check = WS_UPGRADE_BAD_VERSION,
        .path = "/",
        .host = "h",
        .key = RFC_KEY,
        .version = 8,
    },
    {
        .name = "upgrade: no version",
        .text = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: " RFC_KEY "\r\n\r\n",
        .check = WS_UPGRADE_BAD_VERSION,
        .path = "/",
        .host = "h",
        .key = RFC_KEY,
        .version = -1,
    },
    {
        .name = "upgrade: hixie-76 (no key, no version)",
        .text = "GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nSec-WebSocket-Protocol: sample\r\n"
                "Upgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
                "Origin: http://example.com\r\n\r\n",
        .check = WS_UPGRADE_BAD_VERSION,
        .path = "/demo",
        .host = "example.com",
        .origin = "http://example.com",
        .protocol = "sample",
        .version = -1,
    },
    {
        .name = "upgrade: HTTP/1.0",
        .text = "GET / HTTP/1.0\r\nHost: h\r\n" UPGRADE_HEADERS "\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .host = "h",
        .key = RFC_KEY,
        .version = 13,
    },
    {
        .name = "upgrade: POST",
        .text = "POST / HTTP/1.1\r\nHost: h\r\n" UPGRADE_HEADERS "\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .host = "h",
        .key = RFC_KEY,
        .version = 13,
    },
    {
        .name = "upgrade: lower-case method",
        .text = "get / HTTP/1.1\r\nHost: h\r\n" UPGRADE_HEADERS "\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .host = "h",
        .key = RFC_KEY,
        .version = 13,
    },
    {
        .name = "upgrade: no Host",
        .text = "GET / HTTP/1.1\r\n" UPGRADE_HEADERS "\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .key = RFC_KEY,
        .version = 13,
    },
    {
        .name = "upgrade: empty Host",
        .text = "GET / HTTP/1.1\r\nHost: \r\n" UPGRADE_HEADERS "\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .host = "",
        .key = RFC_KEY,
        .version = 13,
    },
    {
        .name = "upgrade: Connection without upgrade",
        .text = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " RFC_KEY "\r\n\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .host = "h",
        .key = RFC_KEY,
        .version = 13,
    },
    {
        .name = "upgrade: no key",
        .text = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .host = "h",
        .version = 13,
    },
    {
        .name = "upgrade: key of 15 bytes",
        .text = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25j\r\n\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .host = "h",
        .key = "dGhlIHNhbXBsZSBub25j",
        .version = 13,
    },
    {
        .name = "upgrade: key of 17 bytes",
        .text = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .host = "h",
        .key = "AAAAAAAAAAAAAAAAAAAAAAA=",
        .version = 13,
    },
    {
        .name = "upgrade: key not base64",
        .text = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub2-jZQ==\r\n\r\n",
        .check = WS_UPGRADE_BAD_REQUEST,
        .path = "/",
        .host = "h",
        .key = "dGhlIHNhbXBsZSBub2-jZQ==",
        .version = 13,
    },
};

#define NUL_ROW "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n"

static const struct req_row error_rows[] = {
    {.name = "bad method: not a token", .text = "G@T / HTTP/1.1\r\n\r\n", .expect = -EPROTO},
    {.name = "bad method: empty", .text = " / HTTP/1.1\r\n\r\n", .expect = -EPROTO},
    {.name = "bad request line: two spaces", .text = "GET  / HTTP/1.1\r\n\r\n", .expect = -EPROTO},
    {.name = "bad request line: no version", .text = "GET /\r\n\r\n", .expect = -EPROTO},
    {.name = "bad request line: empty", .text = "\r\nGET / HTTP/1.1\r\n\r\n", .expect = -EPROTO},
    {.name = "bad target: absolute-form",
     .text = "GET http://h/ HTTP/1.1\r\n\r\n",
     .expect = -EPROTO},
    {.name = "bad target: asterisk", .text = "OPTIONS * HTTP/1.1\r\n\r\n", .expect = -EPROTO},
    {.name = "bad target: fragment", .text = "GET /a#b HTTP/1.1\r\n\r\n", .expect = -EPROTO},
    {.name = "bad target: raw UTF-8",
     .text = "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
     .expect = -EPROTO},
    {.name = "bad version: HTTP/2.0", .text = "GET / HTTP/2.0\r\n\r\n", .expect = -EPROTO},
    {.name = "bad version: HTTP/1.10", .text = "GET / HTTP/1.10\r\n\r\n", .expect = -EPROTO},
    {.name = "bad version: lower case", .text = "GET / http/1.1\r\n\r\n", .expect = -EPROTO},
    {.name = "bad version: trailing space", .text = "GET / HTTP/1.1 \r\n\r\n", .expect = -EPROTO},
    {.name = "missing CRLF: bare LF", .text = "GET / HTTP/1.1\nHost: h\n\n", .expect = -EPROTO},
    {.name = "missing CRLF: bare LF at the end",
     .text = "GET / HTTP/1.1\r\nHost: h\r\n\n",
     .expect = -EPROTO},
    {.name = "missing CRLF: bare CR", .text = "GET / HTTP/1.1\rHost: h\r\n\r\n", .expect = -EPROTO},
    {.name = "header without colon", .text = "GET / HTTP/1.1\r\nHost h\r\n\r\n", .expect = -EPROTO},
    {.name = "header with space before colon",
     .text = "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
     .expect = -EPROTO},
    {.name = "header with empty name", .text = "GET / HTTP/1.1\r\n: h\r\n\r\n", .expect = -EPROTO},
    {.name = "header name not a token",
     .text = "GET / HTTP/1.1\r\nX(a): h\r\n\r\n",
     .expect = -EPROTO},
    {.name = "control char: SOH in a value",
     .text = "GET / HTTP/1.1\r\nX-A: a\x01"
             "b\r\n\r\n",
     .expect = -EPROTO},
    {.name = "control char: NUL in a value",
     .text = NUL_ROW,
     .len = sizeof(NUL_ROW) - 1,
     .expect = -EPROTO},
    {.name = "control char: DEL in a value",
     .text = "GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n",
     .expect = -EPROTO},
    {.name = "control char: ESC in the target",
     .text = "GET /\x1b HTTP/1.1\r\n\r\n",
     .expect = -EPROTO},
    {.name = "control char: TLS ClientHello on the plain port",
     .text = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
     .expect = -EPROTO},
    {.name = "obs-fold", .text = "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", .expect = -EPROTO},
    {.name = "obs-fold with a tab",
     .text = "GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n",
     .expect = -EPROTO},
    {.name = "whitespace before the first header",
     .text = "GET / HTTP/1.1\r\n Host: h\r\n\r\n",
     .expect = -EPROTO},
    {.name = "duplicate Sec-WebSocket-Key",
     .text =
         "GET / HTTP/1.1\r\nHost: h\r\n" UPGRADE_HEADERS "sec-websocket-key: " RFC_KEY "\r\n\r\n",
     .expect = -EPROTO},
    {.name = "duplicate Host",
     .text = "GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n",
     .expect = -EPROTO},
    {.name = "duplicate Origin",
     .text = "GET / HTTP/1.1\r\nOrigin: http://a\r\nOrigin: http://b\r\n\r\n",
     .expect = -EPROTO},
    {.name = "duplicate Sec-WebSocket-Version",
     .text = "GET / HTTP/1.1\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n\r\n",
     .expect = -EPROTO},
    {.name = "duplicate X-API-Key",
     .text = "POST / HTTP/1.1\r\nX-API-Key: a\r\nx-api-key: a\r\n\r\n",
     .expect = -EPROTO},
    {.name = "duplicate Content-Length",
     .text = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Content-Length: garbage",
     .text = "POST / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Content-Length: negative",
     .text = "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Content-Length: empty",
     .text = "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Content-Length: list",
     .text = "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Content-Length: overflow",
     .text = "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Transfer-Encoding",
     .text = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Sec-WebSocket-Version: not a number",
     .text = "GET / HTTP/1.1\r\nSec-WebSocket-Version: thirteen\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Sec-WebSocket-Version: a list",
     .text = "GET / HTTP/1.1\r\nSec-WebSocket-Version: 13, 8\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Sec-WebSocket-Version: 256",
     .text = "GET / HTTP/1.1\r\nSec-WebSocket-Version: 256\r\n\r\n",
     .expect = -EPROTO},
    {.name = "Sec-WebSocket-Version: leading zero",
     .text = "GET / HTTP/1.1\r\nSec-WebSocket-Version: 013\r\n\r\n",
     .expect = -EPROTO},
};

static size_t row_len(const struct req_row *r)
{
    return r->len ? r->len : strlen(r->text);
}

/* Where the head ends for a valid row: just after the first CRLFCRLF. */
static size_t row_head_len(const struct req_row *r)
{
    const char *end = strstr(r->text, "\r\n\r\n");

    assert_non_null(end);
    return (size_t)(end - r->text) + 4;
}

static void check_str(const char *row, const char *field, const struct http_str *got,
                      const char *want, const char *buf, size_t len)
{
    if (!want) {
        if (got->len != 0)
            fail_msg("%s: %s: expected absent, got \"%.*s\"", row, field, (int)got->len, got->p);
        return;
    }
    if (got->len != strlen(want) || (got->len && memcmp(got->p, want, got->len) != 0))
        fail_msg("%s: %s: expected \"%s\", got \"%.*s\"", row, field, want, (int)got->len,
                 got->p ? got->p : "");
    /* Every pointer borrows the buffer of the completing call. */
    if (got->p < buf || got->p + got->len > buf + len)
        fail_msg("%s: %s points outside the buffer", row, field);
}

static void check_fields(const struct req_row *r, const struct http_request *req, const char *buf,
                         size_t len)
{
    check_str(r->name, "path", &req->path, r->path, buf, len);
    check_str(r->name, "query", &req->query, r->query, buf, len);
    check_str(r->name, "host", &req->host, r->host, buf, len);
    check_str(r->name, "origin", &req->origin, r->origin, buf, len);
    check_str(r->name, "ws_key", &req->ws_key, r->key, buf, len);
    check_str(r->name, "ws_protocol", &req->ws_protocol, r->protocol, buf, len);
    check_str(r->name, "accept_encoding", &req->accept_encoding, r->accept_encoding, buf, len);
    check_str(r->name, "if_none_match", &req->if_none_match, r->if_none_match, buf, len);
    check_str(r->name, "api_key", &req->api_key, r->api_key, buf, len);
    check_str(r->name, "accept", &req->accept, r->accept, buf, len);
    if (req->ws_version != r->version)
        fail_msg("%s: version %d, expected %d", r->name, req->ws_version, r->version);
    if (req->content_length != r->content_length)
        fail_msg("%s: content_length %llu", r->name, (unsigned long long)req->content_length);
    if (ws_upgrade_check(req) != r->check)
        fail_msg("%s: ws_upgrade_check %d, expected %d", r->name, (int)ws_upgrade_check(req),
                 (int)r->check);
}

/*
 * Feeds <text> in prefixes ending at each of <cuts> (increasing, the last one <len>), each
 * prefix placed at the end of the guard area. Returns the first result that is not -EAGAIN
 * (with <req> and *<buf_out> from that call), or -EAGAIN.
 */
static int feed(struct guard *g, const char *text, const size_t *cuts, size_t nr_cuts,
                struct http_request *req, const char **buf_out, size_t *len_out)
{
    int rc = -EAGAIN;

    memset(req, 0, sizeof(*req));
    for (size_t i = 0; i < nr_cuts && rc == -EAGAIN; i++) {
        const char *buf = guard_place(g, text, cuts[i]);

        rc = http_request_parse(buf, cuts[i], req);
        *buf_out = buf;
        *len_out = cuts[i];
    }
    return rc;
}

/* Every way of feeding must give the same result: the head length, or the row's error. */
static void check_result(const struct req_row *r, const char *how, int rc,
                         const struct http_request *req, const char *buf, size_t len)
{
    int want = r->expect ? r->expect : (int)row_head_len(r);

    if (rc != want)
        fail_msg("%s (%s): got %d, expected %d", r->name, how, rc, want);
    if (rc > 0)
        check_fields(r, req, buf, len);
}

static void run_row(struct guard *g, const struct req_row *r)
{
    size_t len = row_len(r), stop = r->expect ? len : row_head_len(r);
    size_t *cuts = test_malloc(len * sizeof(*cuts));
    struct http_request req;
    const char *buf;
    size_t got_len;
    int rc;

    /* Whole. */
    cuts[0] = len;
    rc = feed(g, r->text, cuts, 1, &req, &buf, &got_len);
    check_result(r, "whole", rc, &req, buf, got_len);
    /* A call after the result gives the same result: success is repeatable, errors sticky. */
    rc = http_request_parse(buf, got_len, &req);
    check_result(r, "again", rc, &req, buf, got_len);

    /* One byte at a time, up to the end of the head for valid rows. */
    for (size_t i = 0; i < stop; i++)
        cuts[i] = i + 1;
    rc = feed(g, r->text, cuts, stop, &req, &buf, &got_len);
    check_result(r, "byte by byte", rc, &req, buf, got_len);
    if (rc > 0 && got_len != stop)
        fail_msg("%s: completed after %zu bytes, head is %zu", r->name, got_len, stop);

    /* Random splits into 2 to 5 pieces. */
    for (int iter = 0; iter < 64 && len > 1; iter++) {
        size_t nr = 0, pieces = 1 + (size_t)(rng() % 4);

        for (size_t k = 0; k < pieces; k++)
            cuts[nr++] = 1 + (size_t)(rng() % (len - 1));
        /* Sort, drop duplicates, and finish with the whole input. */
        for (size_t a = 1; a < nr; a++)
            for (size_t b = a; b > 0 && cuts[b - 1] > cuts[b]; b--) {
                size_t t = cuts[b];

                cuts[b] = cuts[b - 1];
                cuts[b - 1] = t;
            }
        size_t w = 0;
        for (size_t k = 0; k < nr; k++)
            if (w == 0 || cuts[w - 1] != cuts[k])
                cuts[w++] = cuts[k];
        cuts[w++] = len;
        rc = feed(g, r->text, cuts, w, &req, &buf, &got_len);
        check_result(r, "split", rc, &req, buf, got_len);
    }
    test_free(cuts);
}

static void test_valid_requests(void **state)
{
    struct guard g;

    (void)state;
    guard_init(&g);
    for (size_t i = 0; i < sizeof(valid_rows) / sizeof(valid_rows[0]); i++)
        run_row(&g, &valid_rows[i]);
    guard_fini(&g);
}

static void test_malformed_requests(void **state)
{
    struct guard g;

    (void)state;
    guard_init(&g);
    for (size_t i = 0; i < sizeof(error_rows) / sizeof(error_rows[0]); i++)
        run_row(&g, &error_rows[i]);
    guard_fini(&g);
}

/*
 * Builds a head of "GET / HTTP/1.1", <nr_headers> short header lines and, when <total> is not
 * 0, one "X-P: ppp..." line long enough to make the head exactly <total> bytes.
 */
static char *build_head(size_t nr_headers, size_t total)
{
    char *s = test_malloc(total + 16 * nr_headers + 64);
    size_t n = (size_t)sprintf(s, "GET / HTTP/1.1\r\n");

    for (size_t i = 0; i < nr_headers; i++)
        n += (size_t)sprintf(s + n, "X-%zu: v\r\n", i);
    if (total) {
        size_t pad = total - n - strlen("X-P: \r\n\r\n");

        assert_true(total > n + 9);
        n += (size_t)sprintf(s + n, "X-P: ");
        memset(s + n, 'p', pad);
        n += pad;
        n += (size_t)sprintf(s + n, "\r\n");
    }
    n += (size_t)sprintf(s + n, "\r\n");
    assert_true(total == 0 || n == total);
    return s;
}

static void test_limits(void **state)
{
    struct guard g;
    struct {
        const char *name;
        size_t nr_headers, total;
        int expect;
    } rows[] = {
        {"64 headers", HTTP_HEADERS_MAX, 0, 0},
        {"too many headers: 65", HTTP_HEADERS_MAX + 1, 0, -EPROTO},
        {"head of exactly HTTP_HEAD_MAX", 1, HTTP_HEAD_MAX, 0},
        {"head of HTTP_HEAD_MAX + 1", 1, HTTP_HEAD_MAX + 1, -E2BIG},
        {"head of 3 * HTTP_HEAD_MAX", 1, 3 * HTTP_HEAD_MAX, -E2BIG},
    };

    (void)state;
    guard_init(&g);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *text = build_head(rows[i].nr_headers, rows[i].total);
        struct req_row r = {
            .name = rows[i].name,
            .text = text,
            .expect = rows[i].expect,
            .check = WS_UPGRADE_NOT_WEBSOCKET,
            .path = "/",
            .version = -1,
        };

        run_row(&g, &r);
        test_free(text);
    }
    /* -E2BIG comes as soon as HTTP_HEAD_MAX bytes hold no end of head, not at the end. */
    {
        char *text = build_head(1, 2 * HTTP_HEAD_MAX);
        struct http_request req = {0};

        assert_int_equal(http_request_parse(text, HTTP_HEAD_MAX - 1, &req), -EAGAIN);
        assert_int_equal(http_request_parse(text, HTTP_HEAD_MAX, &req), -E2BIG);
        test_free(text);
    }
    guard_fini(&g);
}

/* Errors surface when the bad line is complete, without waiting for the end of the head. */
static void test_early_errors(void **state)
{
    static const char bad_line[] = "GET / HTTP/9.9\r\n";
    static const char bad_char[] = "GET /\x01";
    static const char bad_cr[] = "GET / HTTP/1.1\rX";
    struct http_request req = {0};

    (void)state;
    assert_int_equal(http_request_parse(bad_line, sizeof(bad_line) - 2, &req), -EAGAIN);
    assert_int_equal(http_request_parse(bad_line, sizeof(bad_line) - 1, &req), -EPROTO);
    memset(&req, 0, sizeof(req));
    assert_int_equal(http_request_parse(bad_char, sizeof(bad_char) - 1, &req), -EPROTO);
    /* A bare CR fails on the byte after it. */
    memset(&req, 0, sizeof(req));
    assert_int_equal(http_request_parse(bad_cr, sizeof(bad_cr) - 2, &req), -EAGAIN);
    assert_int_equal(http_request_parse(bad_cr, sizeof(bad_cr) - 1, &req), -EPROTO);
}

/* ---------------------------------------------------------------------------------------------
 * Accept key and 101
 */

static void test_accept_key(void **state)
{
    char out[WS_ACCEPT_LEN + 1];

    (void)state;
    /* RFC 6455 §1.3. */
    ws_accept_key(RFC_KEY, strlen(RFC_KEY), out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* RFC 6455 §4.2.2 is silent on keys of other lengths; the function still hashes them. */
    ws_accept_key("", 0, out);
    assert_int_equal(strlen(out), WS_ACCEPT_LEN);
}

static void test_response_101(void **state)
{
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "\r\n";
    struct guard g;
    char *out;
    size_t n;

    (void)state;
    guard_init(&g);
    /* The header promises 160 bytes are enough: give exactly that, against the guard page. */
    out = (char *)g.end - 160;
    n = ws_response_101(out, RFC_KEY, strlen(RFC_KEY));
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
    guard_fini(&g);
}

/* ---------------------------------------------------------------------------------------------
 * Room names
 */

struct room_row {
    const char *name;
    const char *in;
    size_t in_len;    /* 0: strlen(in) */
    const char *want; /* NULL: -EINVAL */
};

static const struct room_row room_rows[] = {
    {"ascii", "lobby", 0, "lobby"},
    {"plus stays plus", "a+b", 0, "a+b"},
    {"spaces and punctuation", "a%20b~!$&'()*,;=:@", 0, "a b~!$&'()*,;=:@"},
    {"2-byte UTF-8, upper-case hex", "caf%C3%A9", 0, "caf\xc3\xa9"},
    {"2-byte UTF-8, lower-case hex", "caf%c3%a9", 0, "caf\xc3\xa9"},
    {"raw UTF-8", "caf\xc3\xa9", 0, "caf\xc3\xa9"},
    {"3-byte UTF-8", "%E2%82%AC", 0, "\xe2\x82\xac"},
    {"4-byte UTF-8", "%F0%9F%98%80", 0, "\xf0\x9f\x98\x80"},
    {"U+10FFFF", "%F4%8F%BF%BF", 0, "\xf4\x8f\xbf\xbf"},
    {"U+00A0 is not C1", "%C2%A0", 0, "\xc2\xa0"},
    {"decoded percent", "100%25", 0, "100%"},
    {"%2F decodes to '/', which is refused", "a%2Fb", 0, NULL},
    {"%2f lower case", "a%2fb", 0, NULL},
    {"raw '/'", "a/b", 0, NULL},
    {"empty", "", 0, NULL},
    {"NUL", "a%00", 0, NULL},
    {"raw NUL", "a\0b", 3, NULL},
    {"TAB", "a%09b", 0, NULL},
    {"LF", "%0A", 0, NULL},
    {"US (0x1F)", "%1F", 0, NULL},
    {"DEL", "%7F", 0, NULL},
    {"C1 U+0080", "%C2%80", 0, NULL},
    {"C1 U+009F", "x%C2%9Fy", 0, NULL},
    {"bad escape: lone %", "%", 0, NULL},
    {"bad escape: one digit at the end", "ab%4", 0, NULL},
    {"bad escape: not hex", "%G0", 0, NULL},
    {"bad escape: second not hex", "%4G", 0, NULL},
    {"bad escape: %%", "%%41", 0, NULL},
    {"overlong '/' (C0 AF)", "%C0%AF", 0, NULL},
    {"overlong C1 BF", "%C1%BF", 0, NULL},
    {"overlong 3-byte", "%E0%80%AF", 0, NULL},
    {"overlong 4-byte", "%F0%80%80%AF", 0, NULL},
    {"surrogate", "%ED%A0%80", 0, NULL},
    {"above U+10FFFF", "%F4%90%80%80", 0, NULL},
    {"F5 lead byte", "%F5%80%80%80", 0, NULL},
    {"truncated sequence", "%E2%82", 0, NULL},
    {"lone continuation byte", "%80", 0, NULL},
    {"lead byte then ASCII", "%C3A", 0, NULL},
};

/* The input and the output each end against a guard page; the output gets ROOM_NAME_MAX. */
static struct guard room_in, room_out;

static void room_check(const char *name, const char *in, size_t in_len, const char *want,
                       size_t want_len)
{
    char *out = (char *)room_out.end - ROOM_NAME_MAX;
    const char *src = guard_place(&room_in, in, in_len);
    int rc = room_name_decode(src, in_len, out);

    if (!want) {
        if (rc != -EINVAL)
            fail_msg("room %s: got %d, expected -EINVAL", name, rc);
        return;
    }
    if (rc < 0 || (size_t)rc != want_len || memcmp(out, want, want_len) != 0)
        fail_msg("room %s: got %d", name, rc);
}

static void test_room_names(void **state)
{
    char *in = test_malloc(3 * (ROOM_NAME_MAX + 1) + 1);
    char *want = test_malloc(ROOM_NAME_MAX + 1);

    (void)state;
    guard_init(&room_in);
    guard_init(&room_out);
    for (size_t i = 0; i < sizeof(room_rows) / sizeof(room_rows[0]); i++) {
        const struct room_row *r = &room_rows[i];
        size_t n = r->in_len ? r->in_len : strlen(r->in);

        room_check(r->name, r->in, n, r->want, r->want ? strlen(r->want) : 0);
    }
    memset(want, 'a', ROOM_NAME_MAX + 1);
    memset(in, 'a', ROOM_NAME_MAX + 1);
    room_check("255 bytes", in, ROOM_NAME_MAX, want, ROOM_NAME_MAX);
    room_check("256 bytes", in, ROOM_NAME_MAX + 1, NULL, 0);
    for (size_t i = 0; i <= ROOM_NAME_MAX; i++)
        memcpy(in + 3 * i, "%61", 3);
    room_check("255 bytes from escapes", in, 3 * ROOM_NAME_MAX, want, ROOM_NAME_MAX);
    room_check("256 bytes from escapes", in, 3 * (ROOM_NAME_MAX + 1), NULL, 0);
    /* 254 ASCII bytes and a 2-byte character: 256 bytes once decoded. */
    memset(in, 'a', ROOM_NAME_MAX - 1);
    memcpy(in + ROOM_NAME_MAX - 1, "%C3%A9", 6);
    room_check("character across the limit", in, ROOM_NAME_MAX + 5, NULL, 0);
    guard_fini(&room_in);
    guard_fini(&room_out);
    test_free(in);
    test_free(want);
}

/* ---------------------------------------------------------------------------------------------
 * Query strings
 */

static void test_query_get(void **state)
{
    static const struct {
        const char *query, *name, *want; /* want NULL: not found */
    } rows[] = {
        {"echo=1&token=abc", "echo", "1"},
        {"echo=1&token=abc", "token", "abc"},
        {"echo=1&token=abc", "missing", NULL},
        {"a&echo", "echo", ""},
        {"echo=", "echo", ""},
        {"echo", "echo", ""},
        {"xecho=1&echox=2", "echo", NULL},
        {"echo=1&echo=2", "echo", "1"},
        {"&&echo=3&", "echo", "3"},
        {"a=b=c", "a", "b=c"},
        {"", "echo", NULL},
    };
    struct http_str v;

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct http_str q = {rows[i].query, strlen(rows[i].query)};
        bool found = http_query_get(q, rows[i].name, &v);

        if (found != (rows[i].want != NULL))
            fail_msg("query \"%s\" name %s: found %d", rows[i].query, rows[i].name, found);
        if (found && (v.len != strlen(rows[i].want) || memcmp(v.p, rows[i].want, v.len) != 0))
            fail_msg("query \"%s\" name %s: got \"%.*s\"", rows[i].query, rows[i].name, (int)v.len,
                     v.p);
    }
    /* An absent query from the parser is {NULL, 0}. */
    assert_false(http_query_get((struct http_str){NULL, 0}, "echo", &v));
}

/* ---------------------------------------------------------------------------------------------
 * Content negotiation and validators
 */

static void test_accepts_coding(void **state)
{
    static const struct {
        const char *list, *coding;
        bool want;
    } rows[] = {
        {"gzip, deflate, br", "gzip", true},
        {"deflate, br", "gzip", false},
        {"GZIP", "gzip", true},
        {"x-gzip", "gzip", true},
        {"gzip;q=0", "gzip", false},
        {"gzip ; q=0.000, br", "gzip", false},
        {"gzip;q=0.001", "gzip", true},
        {"gzip;Q=1.0", "gzip", true},
        {"*", "gzip", true},
        {"*;q=0", "gzip", false},
        {"gzip;q=0, *", "gzip", false},
        {"*;q=0, gzip", "gzip", true},
        {"identity", "gzip", false},
        {"gzipx, xgzip", "gzip", false},
        {" , ,gzip,", "gzip", true},
        {"", "gzip", false},
        {"br;q=0.5, gzip;q=0.8", "br", true},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct http_str l = {rows[i].list, strlen(rows[i].list)};

        if (http_accepts_coding(l, rows[i].coding) != rows[i].want)
            fail_msg("Accept-Encoding \"%s\" coding %s: expected %d", rows[i].list, rows[i].coding,
                     rows[i].want);
    }
    assert_false(http_accepts_coding((struct http_str){NULL, 0}, "gzip"));
}

static void test_accepts_type(void **state)
{
    static const struct {
        const char *list;
        bool want;
    } rows[] = {
        /* Chromium's and Firefox's for a page, then what tools send. */
        {"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
         "image/apng,*/*;q=0.8",
         true},
        {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
        {"*/*", false},
        {"text/*", false},
        {"TEXT/HTML", true},
        {"text/html;q=0", false},
        {"text/html ; level=1 ; q=0.5", true},
        {"text/htmlx, xtext/html", false},
        {"application/json, text/plain", false},
        {" , ,text/html,", true},
        {"", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct http_str l = {rows[i].list, strlen(rows[i].list)};

        if (http_accepts_type(l, "text/html") != rows[i].want)
            fail_msg("Accept \"%s\": expected %d", rows[i].list, rows[i].want);
    }
    assert_false(http_accepts_type((struct http_str){NULL, 0}, "text/html"));
}

static void test_etag_match(void **state)
{
    static const struct {
        const char *list, *etag;
        bool want;
    } rows[] = {
        {"\"abc\"", "\"abc\"", true},        {"\"abd\"", "\"abc\"", false},
        {"W/\"abc\"", "\"abc\"", true},      {"\"abc\"", "W/\"abc\"", true},
        {"\"x\", \"abc\"", "\"abc\"", true}, {"\"a,b\", \"abc\"", "\"abc\"", true},
        {"\"a,b\"", "\"b\"", false},         {"*", "\"abc\"", true},
        {"abc", "\"abc\"", false},           {"\"abc", "\"abc\"", false},
        {"w/\"abc\"", "\"abc\"", false},     {"", "\"abc\"", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct http_str l = {rows[i].list, strlen(rows[i].list)};

        if (http_etag_match(l, rows[i].etag) != rows[i].want)
            fail_msg("If-None-Match %s etag %s: expected %d", rows[i].list, rows[i].etag,
                     rows[i].want);
    }
    assert_false(http_etag_match((struct http_str){NULL, 0}, "\"abc\""));
}

/* ---------------------------------------------------------------------------------------------
 * Responses
 */

/*
 * Formats a response, then reads it back: status line, the headers as separate lines, a
 * Content-Length that matches the body, and the body.
 */
static void test_response_round_trip(void **state)
{
    static const char body[] = "room name is not valid UTF-8\n";
    static const char extra[] = "Sec-WebSocket-Version: 13\r\n";
    struct guard g;
    char *out, *end;
    size_t need, n;
    unsigned long long cl;

    (void)state;
    guard_init(&g);
    need = http_response(NULL, 0, 426, extra, NULL, body, sizeof(body) - 1);
    /* One byte short: reports the size and writes nothing past <cap> (guard page). */
    out = (char *)g.end - (need - 1);
    assert_int_equal(http_response(out, need - 1, 426, extra, NULL, body, sizeof(body) - 1), need);
    out = (char *)g.end - need;
    n = http_response(out, need, 426, extra, NULL, body, sizeof(body) - 1);
    assert_int_equal(n, need);

    char *text = test_malloc(n + 1);
    memcpy(text, out, n);
    text[n] = '\0';
    assert_true(strncmp(text, "HTTP/1.1 426 Upgrade Required\r\n", 31) == 0);
    assert_non_null(strstr(text, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(text, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(text, "\r\nSec-WebSocket-Version: 13\r\n"));
    const char *clh = strstr(text, "\r\nContent-Length: ");
    assert_non_null(clh);
    assert_int_equal(sscanf(clh, "\r\nContent-Length: %llu\r\n", &cl), 1);
    end = strstr(text, "\r\n\r\n");
    assert_non_null(end);
    assert_int_equal(cl, sizeof(body) - 1);
    assert_int_equal((size_t)(end + 4 - text) + cl, n);
    assert_memory_equal(end + 4, body, cl);
    test_free(text);

    /* No body, own content type, no extra headers. */
    char small[256];
    n = http_response(small, sizeof(small), 200, NULL, "application/json", NULL, 0);
    static const char want[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(small, want, n);
    guard_fini(&g);
}

static void test_reasons(void **state)
{
    static const int codes[] = {100, 101, 200, 400, 401, 403, 404,
                                405, 413, 426, 429, 431, 500, 503};

    (void)state;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_string_not_equal(http_reason(codes[i]), "Unknown");
    assert_string_equal(http_reason(101), "Switching Protocols");
    assert_string_equal(http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_reason(299), "Unknown");
    assert_string_equal(http_reason(-1), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_requests), cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_limits),         cmocka_unit_test(test_early_errors),
        cmocka_unit_test(test_accept_key),     cmocka_unit_test(test_response_101),
        cmocka_unit_test(test_room_names),     cmocka_unit_test(test_query_get),
        cmocka_unit_test(test_accepts_coding), cmocka_unit_test(test_accepts_type),
        cmocka_unit_test(test_etag_match),     cmocka_unit_test(test_response_round_trip),
        cmocka_unit_test(test_reasons),
    };

    return cmocka_run_group_tests_name("ws_handshake", tests, NULL, NULL);
}
