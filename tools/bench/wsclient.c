/* SPDX-License-Identifier: MIT */
/*
 * wsclient: RFC 6455 client side for ringcast-bench. See wsclient.h for the contract.
 */
#include "wsclient.h"

#include "ws_frame.h"
#include "ws_handshake.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void wsc_random_bytes(struct wsc_random *r, void *out, size_t n)
{
    uint8_t *o = out;

    if (!r->fresh) {
        r->off = sizeof(r->buf);
        r->fresh = 1;
    }
    while (n > 0) {
        if (r->off == sizeof(r->buf)) {
            size_t got = 0;
            while (got < sizeof(r->buf)) {
                ssize_t k = getrandom(r->buf + got, sizeof(r->buf) - got, 0);
                if (k < 0 && errno != EINTR) {
                    perror("ringcast-bench: getrandom");
                    exit(1);
                }
                if (k > 0)
                    got += (size_t)k;
            }
            r->off = 0;
        }
        size_t take = sizeof(r->buf) - r->off;
        if (take > n)
            take = n;
        memcpy(o, r->buf + r->off, take);
        r->off += take;
        o += take;
        n -= take;
    }
}

size_t wsc_base64(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;

    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

void wsc_make_key(struct wsc_random *r, char out[WSC_KEY_LEN + 1])
{
    uint8_t raw[16];

    wsc_random_bytes(r, raw, sizeof(raw));
    wsc_base64(raw, sizeof(raw), out);
}

int wsc_request(char *out, size_t cap, const char *host, const char *path, const char *key,
                const char *extra)
{
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s\r\n",
                     path, host, key, extra ? extra : "");
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Response check
 * -------------------------------------------------------------------------------------------*/

static bool eq_nocase(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = p[i], b = lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

/* RFC 7230 §7: a comma-separated list of tokens, with optional whitespace; <lit> lower case. */
static bool list_has(const char *p, size_t n, const char *lit)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
            i++;
        size_t s = i;
        while (i < n && p[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (e > s && eq_nocase(p + s, e - s, lit))
            return true;
    }
    return false;
}

struct resp_seen {
    bool upgrade, connection, accept_ok, accept_seen, unasked;
};

static void on_header(const char *name, size_t nlen, const char *v, size_t vlen,
                      const char *want_accept, struct resp_seen *s)
{
    if (eq_nocase(name, nlen, "upgrade")) {
        s->upgrade = list_has(v, vlen, "websocket");
    } else if (eq_nocase(name, nlen, "connection")) {
        s->connection = s->connection || list_has(v, vlen, "upgrade");
    } else if (eq_nocase(name, nlen, "sec-websocket-accept")) {
        /* RFC 6455 §4.1 item 4: the value must be exactly the expected one; a second copy
         * would be ambiguous, so it fails the check too. */
        s->accept_ok =
            !s->accept_seen && vlen == WS_ACCEPT_LEN && memcmp(v, want_accept, WS_ACCEPT_LEN) == 0;
        s->accept_seen = true;
    } else if (eq_nocase(name, nlen, "sec-websocket-extensions") ||
               eq_nocase(name, nlen, "sec-websocket-protocol")) {
        /* RFC 6455 §4.1 items 5 and 6: nothing was offered, so any value is a failure. */
        s->unasked = true;
    }
}

static int parse_status_line(const char *p, size_t n, int *status)
{
    /* "HTTP/1.x SP 3DIGIT SP reason" (RFC 7230 §3.1.2); the reason may be empty. */
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ')
        return -EPROTO;
    for (int i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            return -EPROTO;
    if (n > 12 && p[12] != ' ')
        return -EPROTO;
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    return 0;
}

static int parse_header_line(const char *p, size_t n, const char *want, struct resp_seen *s)
{
    const char *colon = memchr(p, ':', n);
    if (!colon || colon == p)
        return -EPROTO;
    size_t nlen = (size_t)(colon - p);
    for (size_t i = 0; i < nlen; i++)
        if (p[i] == ' ' || p[i] == '\t') /* RFC 7230 §3.2.4: no space before the colon */
            return -EPROTO;
    const char *v = colon + 1, *e = p + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    on_header(p, nlen, v, (size_t)(e - v), want, s);
    return 0;
}

int wsc_response_check(const char *buf, size_t len, const char *key, int *status)
{
    const char *end = NULL;
    size_t scan = len < WSC_RESPONSE_MAX ? len : WSC_RESPONSE_MAX;

    *status = 0;
    for (size_t i = 3; i < scan; i++) {
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            end = buf + i + 1;
            break;
        }
    }
    if (!end)
        return len >= WSC_RESPONSE_MAX ? -EPROTO : -EAGAIN;

    char want[WS_ACCEPT_LEN + 1];
    ws_accept_key(key, strlen(key), want);

    struct resp_seen seen = {0};
    const char *line = buf;
    bool first = true;
    while (line < end - 2) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl || nl == line || nl[-1] != '\r')
            return -EPROTO;
        size_t n = (size_t)(nl - 1 - line);
        if (memchr(line, '\r', n)) /* a bare CR inside a line */
            return -EPROTO;
        int r =
            first ? parse_status_line(line, n, status) : parse_header_line(line, n, want, &seen);
        if (r < 0)
            return r;
        first = false;
        line = nl + 1;
    }
    if (*status != 101)
        return -ECONNREFUSED;
    if (!seen.upgrade || !seen.connection || !seen.accept_ok || seen.unasked)
        return -EPROTO;
    return (int)(end - buf);
}

/* ---------------------------------------------------------------------------------------------
 * Frames
 * -------------------------------------------------------------------------------------------*/

size_t wsc_header_len(size_t len)
{
    return (len < 126 ? 2 : len <= 0xffff ? 4 : 10) + 4;
}

size_t wsc_frame(uint8_t *out, uint8_t opcode, const uint8_t *payload, size_t len,
                 const uint8_t mask[4])
{
    size_t h = ws_frame_header(out, opcode, true, len, mask);
    if (payload)
        memcpy(out + h, payload, len);
    ws_mask(out + h, len, mask, 0);
    return h + len;
}
