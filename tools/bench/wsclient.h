/* SPDX-License-Identifier: MIT */
/*
 * wsclient: the client side of RFC 6455 for ringcast-bench: the opening request with a random
 * key, the check of the server's answer (status 101, Upgrade, Connection, the exact
 * Sec-WebSocket-Accept, no extension or subprotocol the client did not ask for), and masked
 * client frames. Frame headers, masking and the accept computation come from the engine's codec
 * (ws_frame.h, ws_handshake.h); this file adds only what a client needs on top.
 *
 * Owns nothing but the random pool in struct wsc_random. No I/O besides getrandom(2), no
 * allocation. Any thread; a random pool must not be shared between processes (reseed after
 * fork by initialising a fresh one).
 */
#ifndef RINGCAST_BENCH_WSCLIENT_H
#define RINGCAST_BENCH_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

/* Sec-WebSocket-Key: base64 of 16 random bytes (RFC 6455 §4.1), without NUL. */
#define WSC_KEY_LEN 24
/* Longest response head the client accepts before calling the answer malformed. */
#define WSC_RESPONSE_MAX 4096

/*
 * Random bytes from the kernel's CSPRNG, fetched 4 KiB at a time: RFC 6455 §5.3 wants masking
 * keys from a strong source of entropy, and one getrandom(2) per 1024 frames keeps that cheap.
 */
struct wsc_random {
    uint8_t buf[4096];
    size_t off; /* bytes of <buf> already used; sizeof(buf) or 0 on a zeroed pool */
    int fresh;  /* 0 on a zeroed pool: refill before first use */
};

/* Fills <out> with <n> random bytes. Exits the process if getrandom(2) fails (it cannot). */
void wsc_random_bytes(struct wsc_random *r, void *out, size_t n);

/* Base64 (RFC 4648, padded) of <n> bytes into <out> (4 * ceil(n / 3) + 1 bytes). Returns the
 * length without NUL. Cannot fail. */
size_t wsc_base64(const uint8_t *in, size_t n, char *out);

/* A fresh Sec-WebSocket-Key into <out>. Cannot fail. */
void wsc_make_key(struct wsc_random *r, char out[WSC_KEY_LEN + 1]);

/*
 * Writes the opening handshake (RFC 6455 §4.1) for <host> (as in the Host header, with the
 * port) and <path> (with any query) using <key>. <extra> is NULL or header lines ending in
 * CRLF. Returns the length, or -ENOSPC when <cap> is too small.
 */
int wsc_request(char *out, size_t cap, const char *host, const char *path, const char *key,
                const char *extra);

/*
 * Checks the server's answer in <buf>[0..<len>) to a request made with <key>.
 * Returns the length of the response head (the bytes after it are already WebSocket frames),
 * or
 *   -EAGAIN        the head is not complete yet
 *   -ECONNREFUSED  a well-formed answer with a status other than 101 (*<status> set)
 *   -EPROTO        malformed, longer than WSC_RESPONSE_MAX, or a 101 that fails RFC 6455
 *                  §4.1 (missing Upgrade/Connection, wrong or missing accept, an extension or
 *                  subprotocol that was not asked for); *<status> set when a status was read
 * Cannot fail otherwise.
 */
int wsc_response_check(const char *buf, size_t len, const char *key, int *status);

/*
 * Writes one complete masked client frame (FIN set) with <opcode> and the <len> bytes of
 * <payload> into <out> (at least WS_HEADER_MAX + <len> bytes), masked with <mask>. <payload>
 * may be NULL when the payload is already in place at out + wsc_header_len(<len>): it is then
 * masked in place. Returns the frame length. Cannot fail.
 */
size_t wsc_frame(uint8_t *out, uint8_t opcode, const uint8_t *payload, size_t len,
                 const uint8_t mask[4]);

/* Length of a masked client frame header for a payload of <len> bytes. Cannot fail. */
size_t wsc_header_len(size_t len);

#endif
