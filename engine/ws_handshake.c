/* SPDX-License-Identifier: MIT */
/*
 * ws_handshake: the HTTP/1.1 request head parser, the RFC 6455 §4.2 upgrade checks, room name
 * decoding and the few HTTP answers the broker writes. The contract is in ws_handshake.h.
 *
 * The parser works in two passes. While the head is incomplete, each call looks only at the
 * bytes it has not seen: it rejects control characters at once and parses every line as soon
 * as its CRLF arrives, so that garbage (a TLS ClientHello sent to the plain port, a bad request
 * line) is refused without waiting for 8 KiB or the handshake timeout. When the blank line
 * arrives, the whole head is parsed once more into a fresh struct: the caller may have moved
 * its buffer between calls, so pointers taken by earlier calls cannot be trusted. That second
 * pass is at most HTTP_HEAD_MAX bytes, once per connection.
 */
#include "ws_handshake.h"

#include "ws_frame.h"

#include <assert.h>
#include <errno.h>
#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Character classes (RFC 9110 §5.6.2, §5.5; RFC 5234 appendix B.1)
 */

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 §5.5: field-vchar is VCHAR or obs-text; SP and HTAB may sit between them. */
static bool is_field_char(unsigned char c)
{
    return (c >= 0x20 && c != 0x7f) || c == '\t';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Compares <p>/<n> with the lower-case literal <lit>, ignoring the case of <p>. */
static bool eq_nocase(const char *p, size_t n, const char *lit)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (lit[i] == '\0' || lower((unsigned char)p[i]) != (unsigned char)lit[i])
            return false;
    return lit[i] == '\0';
}

/*
 * True when the comma-separated list <p>/<n> holds the element <lit> (lower case). RFC 9110
 * §5.6.1: elements are separated by commas with optional whitespace, and empty elements must
 * be accepted ("keep-alive, , Upgrade").
 */
static bool list_has(const char *p, size_t n, const char *lit)
{
    size_t i = 0;

    while (i < n) {
        size_t start, end;

        while (i < n && (is_ows((unsigned char)p[i]) || p[i] == ','))
            i++;
        start = i;
        while (i < n && p[i] != ',')
            i++;
        end = i;
        while (end > start && is_ows((unsigned char)p[end - 1]))
            end--;
        if (end > start && eq_nocase(p + start, end - start, lit))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Request head
 */

/* Bits of http_request._seen: the headers that may appear once (RFC 9110 §5.3). */
enum {
    SEEN_HOST = 1u << 0,
    SEEN_ORIGIN = 1u << 1,
    SEEN_KEY = 1u << 2,
    SEEN_VERSION = 1u << 3,
    SEEN_PROTOCOL = 1u << 4,
    SEEN_AUTH = 1u << 5,
    SEEN_LENGTH = 1u << 6,
    /* Lists that may repeat: these bits only mark that the first line was kept. */
    SEEN_ACCEPT_ENC = 1u << 7,
    SEEN_INM = 1u << 8,
    SEEN_API_KEY = 1u << 9,
    SEEN_ACCEPT = 1u << 10,
};

static int once(struct http_request *req, unsigned bit)
{
    if (req->_seen & bit)
        return -EPROTO;
    req->_seen = (uint16_t)(req->_seen | bit);
    return 0;
}

static int set_once(struct http_request *req, unsigned bit, struct http_str *f, const char *v,
                    size_t n)
{
    if (once(req, bit) < 0)
        return -EPROTO;
    f->p = v;
    f->len = n;
    return 0;
}

/* RFC 9110 §8.6: Content-Length = 1*DIGIT. A list ("5, 5") is refused rather than compared. */
static int parse_content_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;

    if (n == 0)
        return -EPROTO;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - '0';

        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return -EPROTO;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/*
 * RFC 6455 §4.1: version = DIGIT | (NZDIGIT DIGIT) | ("1" DIGIT DIGIT) | ("2" DIGIT DIGIT),
 * i.e. 0 to 255. A number we do not speak is answered 426 by the caller; anything that is not
 * a number is malformed.
 */
static int parse_ws_version(const char *v, size_t n, int *out)
{
    int x = 0;

    if (n == 0 || n > 3 || (n > 1 && v[0] == '0'))
        return -EPROTO;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EPROTO;
        x = x * 10 + (v[i] - '0');
    }
    if (x > 255)
        return -EPROTO;
    *out = x;
    return 0;
}

static int on_header(struct http_request *req, const char *name, size_t name_len, const char *v,
                     size_t n)
{
    if (eq_nocase(name, name_len, "host"))
        return set_once(req, SEEN_HOST, &req->host, v, n);
    if (eq_nocase(name, name_len, "origin"))
        return set_once(req, SEEN_ORIGIN, &req->origin, v, n);
    if (eq_nocase(name, name_len, "authorization"))
        return set_once(req, SEEN_AUTH, &req->authorization, v, n);
    if (eq_nocase(name, name_len, "x-api-key"))
        return set_once(req, SEEN_API_KEY, &req->api_key, v, n);
    if (eq_nocase(name, name_len, "upgrade")) {
        req->upgrade_websocket = req->upgrade_websocket || list_has(v, n, "websocket");
        return 0;
    }
    if (eq_nocase(name, name_len, "connection")) {
        req->connection_upgrade = req->connection_upgrade || list_has(v, n, "upgrade");
        req->connection_close = req->connection_close || list_has(v, n, "close");
        req->connection_keep_alive = req->connection_keep_alive || list_has(v, n, "keep-alive");
        return 0;
    }
    /* RFC 6455 §11.3.1: Sec-WebSocket-Key must not appear more than once. */
    if (eq_nocase(name, name_len, "sec-websocket-key"))
        return set_once(req, SEEN_KEY, &req->ws_key, v, n);
    /* RFC 6455 §11.3.5: nor Sec-WebSocket-Version, in a request. */
    if (eq_nocase(name, name_len, "sec-websocket-version")) {
        if (once(req, SEEN_VERSION) < 0)
            return -EPROTO;
        return parse_ws_version(v, n, &req->ws_version);
    }
    /*
     * RFC 6455 §11.3.4: Sec-WebSocket-Protocol may be split over several lines. They cannot be
     * joined in place, so the first line is kept: choosing from it is still a valid choice.
     */
    if (eq_nocase(name, name_len, "sec-websocket-protocol")) {
        if (!(req->_seen & SEEN_PROTOCOL))
            return set_once(req, SEEN_PROTOCOL, &req->ws_protocol, v, n);
        return 0;
    }
    /* RFC 9110 §12.5.3, §13.1.2: both are lists; as above, the first line is kept. */
    if (eq_nocase(name, name_len, "accept-encoding")) {
        if (!(req->_seen & SEEN_ACCEPT_ENC))
            return set_once(req, SEEN_ACCEPT_ENC, &req->accept_encoding, v, n);
        return 0;
    }
    if (eq_nocase(name, name_len, "accept")) {
        if (!(req->_seen & SEEN_ACCEPT))
            return set_once(req, SEEN_ACCEPT, &req->accept, v, n);
        return 0;
    }
    if (eq_nocase(name, name_len, "if-none-match")) {
        if (!(req->_seen & SEEN_INM))
            return set_once(req, SEEN_INM, &req->if_none_match, v, n);
        return 0;
    }
    if (eq_nocase(name, name_len, "content-length")) {
        if (once(req, SEEN_LENGTH) < 0)
            return -EPROTO;
        req->has_content_length = true;
        return parse_content_length(v, n, &req->content_length);
    }
    /*
     * RFC 9112 §6.1 and §11.2: a body framed by Transfer-Encoding next to (or instead of)
     * Content-Length is the request smuggling vector. Bodies here are Content-Length only.
     */
    if (eq_nocase(name, name_len, "transfer-encoding"))
        return -EPROTO;
    return 0;
}

/*
 * RFC 9112 §3: request-line = method SP request-target SP HTTP-version, single spaces.
 * Only the origin-form (§3.2.1) is accepted: the target starts with '/', is visible ASCII (a
 * client percent-encodes the rest) and has no fragment.
 */
static int parse_request_line(struct http_request *req, const char *p, size_t n)
{
    size_t i = 0, start, query = 0;

    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return -EPROTO;
    req->method.p = p;
    req->method.len = i;
    start = ++i;
    if (i == n || p[i] != '/')
        return -EPROTO;
    for (; i < n && p[i] != ' '; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c < 0x21 || c > 0x7e || c == '#')
            return -EPROTO;
        if (c == '?' && query == 0)
            query = i;
    }
    if (i == n)
        return -EPROTO;
    req->path.p = p + start;
    req->path.len = (query ? query : i) - start;
    req->query.p = query ? p + query + 1 : NULL;
    req->query.len = query ? i - query - 1 : 0;
    i++;
    /* RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. */
    if (n - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0 || p[i + 7] < '0' || p[i + 7] > '9')
        return -EPROTO;
    req->minor_version = p[i + 7] - '0';
    return 0;
}

/*
 * RFC 9112 §5: field-line = field-name ":" OWS field-value OWS. No whitespace before the colon
 * (§5.1 requires a 400), and a line that starts with whitespace is obs-fold (§5.2), which a
 * server may refuse: both fall out of requiring a token first.
 */
static int parse_header_line(struct http_request *req, const char *p, size_t n)
{
    size_t i = 0, v, e;

    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ':')
        return -EPROTO;
    for (v = i + 1; v < n && is_ows((unsigned char)p[v]); v++)
        ;
    for (e = n; e > v && is_ows((unsigned char)p[e - 1]); e--)
        ;
    for (size_t k = v; k < e; k++)
        if (!is_field_char((unsigned char)p[k]))
            return -EPROTO;
    if (req->_nr_headers >= HTTP_HEADERS_MAX)
        return -EPROTO;
    req->_nr_headers++;
    return on_header(req, p, i, p + v, e - v);
}

/* Parses one line without its CRLF; the first line of the head is the request line. */
static int parse_line(struct http_request *req, const char *p, size_t n, bool first)
{
    return first ? parse_request_line(req, p, n) : parse_header_line(req, p, n);
}

/*
 * Second pass over a complete head of <head_len> bytes (see the top of the file). Only the
 * resume fields survive from *<req>: the rest is rebuilt from <buf> as it is now.
 */
static int parse_complete(const char *buf, size_t head_len, struct http_request *req)
{
    struct http_request fresh = {.ws_version = -1};
    size_t start = 0;

    for (;;) {
        const char *lf = memchr(buf + start, '\n', head_len - start);
        size_t n;
        int rc;

        /* The first pass has checked all this; it fails only if the caller changed bytes. */
        if (!lf || lf == buf + start || lf[-1] != '\r')
            return -EPROTO;
        n = (size_t)(lf - buf) - 1 - start;
        if (n == 0 && start > 0)
            break;
        rc = parse_line(&fresh, buf + start, n, start == 0);
        if (rc < 0)
            return rc;
        start = (size_t)(lf - buf) + 1;
    }
    if (start + 2 != head_len)
        return -EPROTO;
    fresh._scanned = req->_scanned;
    fresh._line = req->_line;
    *req = fresh;
    return (int)head_len;
}

int http_request_parse(const char *buf, size_t len, struct http_request *req)
{
    size_t limit = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
    size_t pos = req->_scanned;
    int rc = 0;

    assert(req->_line <= pos);
    for (; pos < limit; pos++) {
        unsigned char c = (unsigned char)buf[pos];

        if (c == '\n') {
            size_t n;

            /* RFC 9112 §2.2 lets a server accept a bare LF; refusing it is simpler to trust. */
            if (pos == req->_line || buf[pos - 1] != '\r') {
                rc = -EPROTO;
                break;
            }
            n = pos - 1 - req->_line;
            if (n == 0 && req->_line > 0) {
                /* Stay on this LF, so that a call after success succeeds again. */
                req->_scanned = pos;
                return parse_complete(buf, pos + 1, req);
            }
            rc = parse_line(req, buf + req->_line, n, req->_line == 0);
            if (rc < 0)
                break;
            req->_line = pos + 1;
        } else if (pos > req->_line && buf[pos - 1] == '\r') {
            /* RFC 9112 §2.2: a bare CR must be refused or replaced; we refuse. */
            rc = -EPROTO;
            break;
        } else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
            rc = -EPROTO;
            break;
        }
    }
    /* On an error <pos> stays on the bad byte, so that the next call fails the same way. */
    req->_scanned = pos;
    if (rc < 0)
        return rc;
    return len >= HTTP_HEAD_MAX ? -E2BIG : -EAGAIN;
}

/* ---------------------------------------------------------------------------------------------
 * Upgrade
 */

static bool is_base64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/*
 * RFC 6455 §4.2.1 item 5: the key is base64 (RFC 4648 §4) of 16 bytes, which is always 22
 * characters and "==". The 4 unused bits of the last character are not required to be zero
 * (RFC 4648 §3.5 leaves that to the decoder): the key is hashed as text, never decoded.
 */
static bool ws_key_valid(struct http_str key)
{
    if (key.len != 24 || key.p[22] != '=' || key.p[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_base64_char((unsigned char)key.p[i]))
            return false;
    return true;
}

enum ws_upgrade_check ws_upgrade_check(const struct http_request *req)
{
    if (!req->upgrade_websocket)
        return WS_UPGRADE_NOT_WEBSOCKET;
    /* RFC 6455 §4.2.1 items 1-4; methods are case-sensitive (RFC 9110 §9.1). */
    if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0 || req->minor_version < 1 ||
        req->host.len == 0 || !req->connection_upgrade)
        return WS_UPGRADE_BAD_REQUEST;
    /*
     * RFC 6455 §4.4: the version is checked before the key, because the key's form belongs to
     * version 13; an older client (hixie-76 sends no Sec-WebSocket-Key) then learns from the
     * 426 which version we speak instead of getting a bare 400.
     */
    if (req->ws_version != 13)
        return WS_UPGRADE_BAD_VERSION;
    if (!ws_key_valid(req->ws_key))
        return WS_UPGRADE_BAD_REQUEST;
    return WS_UPGRADE_OK;
}

/* RFC 6455 §1.3: the GUID appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    mbedtls_sha1_context sha;
    unsigned char digest[20];
    size_t olen = 0;
    int rc;

    /*
     * The streaming form of mbedtls_sha1_ret(): it avoids copying key + GUID into a buffer
     * whose size would depend on <key_len>. The software SHA-1 of mbedtls 2.28 returns an
     * error only for a NULL context; the _ret names go away in 3.x, hence the one place.
     */
    mbedtls_sha1_init(&sha);
    rc = mbedtls_sha1_starts_ret(&sha);
    rc |= mbedtls_sha1_update_ret(&sha, (const unsigned char *)key, key_len);
    rc |= mbedtls_sha1_update_ret(&sha, (const unsigned char *)ws_guid, sizeof(ws_guid) - 1);
    rc |= mbedtls_sha1_finish_ret(&sha, digest);
    mbedtls_sha1_free(&sha);
    assert(rc == 0);
    /* base64 of 20 bytes is 28 characters; mbedtls also wants room for the NUL it writes. */
    rc = mbedtls_base64_encode((unsigned char *)out, WS_ACCEPT_LEN + 1, &olen, digest,
                               sizeof(digest));
    assert(rc == 0 && olen == WS_ACCEPT_LEN);
    (void)rc;
    out[WS_ACCEPT_LEN] = '\0';
}

size_t ws_response_101(char *out, const char *key, size_t key_len)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: ";
    static const char tail[] = "\r\n\r\n";
    char accept[WS_ACCEPT_LEN + 1];
    size_t n = 0;

    /* The header promises that 160 bytes are enough. */
    _Static_assert(sizeof(head) - 1 + WS_ACCEPT_LEN + sizeof(tail) - 1 <= 160,
                   "101 answer outgrew its documented size");
    ws_accept_key(key, key_len, accept);
    memcpy(out, head, sizeof(head) - 1);
    n += sizeof(head) - 1;
    memcpy(out + n, accept, WS_ACCEPT_LEN);
    n += WS_ACCEPT_LEN;
    memcpy(out + n, tail, sizeof(tail) - 1);
    return n + sizeof(tail) - 1;
}

/* ---------------------------------------------------------------------------------------------
 * Room names and query strings
 */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int room_name_decode(const char *in, size_t in_len, char *out)
{
    const unsigned char *u = (const unsigned char *)in;
    unsigned char *o = (unsigned char *)out;
    size_t n = 0;

    /* RFC 3986 §2.1: "%" HEXDIG HEXDIG, either case. '+' means '+' in a path (§3.3). */
    for (size_t i = 0; i < in_len; i++) {
        int c = u[i];

        if (c == '%') {
            int hi, lo;

            if (in_len - i < 3)
                return -EINVAL;
            hi = hex_value(u[i + 1]);
            lo = hex_value(u[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = hi << 4 | lo;
            i += 2;
        }
        if (n == ROOM_NAME_MAX)
            return -EINVAL;
        o[n++] = (unsigned char)c;
    }
    /*
     * RFC 3629 §4, through ws_frame's validator: no overlongs, surrogates or code points past
     * U+10FFFF, and no truncated sequence, since the name must end in UTF8_ACCEPT.
     */
    if (n == 0 || utf8_validate(UTF8_ACCEPT, o, n) != UTF8_ACCEPT)
        return -EINVAL;
    /*
     * ARCHITECTURE.md, room names: no '/', C0, DEL or C1. In valid UTF-8 every byte below 0x80
     * is a character of its own, and C1 (U+0080..U+009F) is exactly C2 80..C2 9F.
     */
    for (size_t i = 0; i < n; i++) {
        if (o[i] < 0x20 || o[i] == 0x7f || o[i] == '/')
            return -EINVAL;
        if (o[i] == 0xc2 && o[i + 1] <= 0x9f)
            return -EINVAL;
    }
    return (int)n;
}

bool http_query_get(struct http_str query, const char *name, struct http_str *val)
{
    size_t name_len = strlen(name), i = 0;

    while (i < query.len) {
        const char *p = query.p + i;
        size_t end = i, key_end;

        while (end < query.len && query.p[end] != '&')
            end++;
        for (key_end = i; key_end < end && query.p[key_end] != '='; key_end++)
            ;
        if (key_end - i == name_len && memcmp(p, name, name_len) == 0) {
            val->p = query.p + (key_end < end ? key_end + 1 : key_end);
            val->len = key_end < end ? end - key_end - 1 : 0;
            return true;
        }
        i = end + 1;
    }
    return false;
}

/* RFC 9110 §12.4.2: qvalue = ("0" ["." 0*3DIGIT]) / ("1" ["." 0*3("0")]). True for a q of 0. */
static bool weight_is_zero(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t start, end;

        while (i < n && (is_ows((unsigned char)p[i]) || p[i] == ';'))
            i++;
        start = i;
        while (i < n && p[i] != ';')
            i++;
        end = i;
        while (end > start && is_ows((unsigned char)p[end - 1]))
            end--;
        if (end - start < 2 || lower((unsigned char)p[start]) != 'q' || p[start + 1] != '=')
            continue;
        start += 2;
        if (start == end || p[start] != '0')
            return false;
        for (size_t k = start + 1; k < end; k++)
            if (p[k] != '0' && !(k == start + 1 && p[k] == '.'))
                return false;
        return true;
    }
    return false;
}

bool http_accepts_coding(struct http_str list, const char *coding)
{
    bool gzip = strcmp(coding, "gzip") == 0, star = false;
    size_t i = 0;

    while (i < list.len) {
        const char *p = list.p;
        size_t start, name_end, end;

        while (i < list.len && (is_ows((unsigned char)p[i]) || p[i] == ','))
            i++;
        start = i;
        while (i < list.len && p[i] != ',')
            i++;
        end = i;
        for (name_end = start; name_end < end && is_tchar((unsigned char)p[name_end]); name_end++)
            ;
        if (name_end == start)
            continue;
        bool zero = weight_is_zero(p + name_end, end - name_end);
        if (eq_nocase(p + start, name_end - start, coding) ||
            (gzip && eq_nocase(p + start, name_end - start, "x-gzip")))
            return !zero;
        if (name_end - start == 1 && p[start] == '*')
            star = !zero;
    }
    return star;
}

bool http_accepts_type(struct http_str list, const char *type)
{
    size_t i = 0;

    while (i < list.len) {
        const char *p = list.p;
        size_t start, name_end, end;

        while (i < list.len && (is_ows((unsigned char)p[i]) || p[i] == ','))
            i++;
        start = i;
        while (i < list.len && p[i] != ',')
            i++;
        end = i;
        /* media-range = type "/" subtype, then parameters after ';' (q among them). */
        for (name_end = start;
             name_end < end && (is_tchar((unsigned char)p[name_end]) || p[name_end] == '/');
             name_end++)
            ;
        if (eq_nocase(p + start, name_end - start, type))
            return !weight_is_zero(p + name_end, end - name_end);
    }
    return false;
}

/* Skips "W/" (RFC 9110 §8.8.3: weak = %s"W/", case-sensitive). */
static size_t weak_prefix(const char *p, size_t n)
{
    return n >= 2 && p[0] == 'W' && p[1] == '/' ? 2 : 0;
}

bool http_etag_match(struct http_str list, const char *etag)
{
    size_t want_len = strlen(etag), skip = weak_prefix(etag, want_len), i = 0;
    const char *want = etag + skip;

    want_len -= skip;
    /*
     * RFC 9110 §8.8.3: entity-tag = [ weak ] DQUOTE *etagc DQUOTE, and etagc includes ',', so
     * the list is walked tag by tag rather than split on commas.
     */
    while (i < list.len) {
        const char *p = list.p;

        while (i < list.len && (is_ows((unsigned char)p[i]) || p[i] == ','))
            i++;
        if (i == list.len)
            break;
        if (p[i] == '*')
            return true;
        i += weak_prefix(p + i, list.len - i);
        if (i == list.len || p[i] != '"')
            return false;
        const char *close = memchr(p + i + 1, '"', list.len - i - 1);
        if (!close)
            return false;
        size_t tag_len = (size_t)(close - (p + i)) + 1;
        if (tag_len == want_len && memcmp(p + i, want, want_len) == 0)
            return true;
        i += tag_len;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Responses
 */

/* RFC 9110 §15, RFC 6585 (429, 431). 413 is "Content Too Large" since RFC 9110 §15.5.14. */
static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {426, "Upgrade Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *http_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

/* Appends to a bounded buffer, counting what did not fit so that the caller learns the size. */
struct out_buf {
    char *p;
    size_t cap, len;
};

static void put(struct out_buf *o, const char *s, size_t n)
{
    if (n > 0 && o->len <= o->cap && n <= o->cap - o->len)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_str(struct out_buf *o, const char *s)
{
    put(o, s, strlen(s));
}

size_t http_response_write(char *out, size_t cap, int status, const char *extra_headers,
                           const char *content_type, const char *body, size_t body_len, bool close,
                           bool head_only)
{
    struct out_buf o = {.p = out, .cap = cap};
    char num[32];
    int n;

    assert(status >= 100 && status <= 599);
    if (status < 100 || status > 599)
        status = 500;
    n = snprintf(num, sizeof(num), "HTTP/1.1 %d ", status);
    put(&o, num, (size_t)n);
    put_str(&o, http_reason(status));
    put_str(&o, "\r\nContent-Type: ");
    put_str(&o, content_type ? content_type : "text/plain; charset=utf-8");
    n = snprintf(num, sizeof(num), "\r\nContent-Length: %zu\r\n", body_len);
    put(&o, num, (size_t)n);
    if (close)
        put_str(&o, "Connection: close\r\n");
    if (extra_headers)
        put_str(&o, extra_headers);
    put_str(&o, "\r\n");
    if (!head_only)
        put(&o, body, body_len);
    return o.len;
}

size_t http_response(char *out, size_t cap, int status, const char *extra_headers,
                     const char *content_type, const char *body, size_t body_len)
{
    return http_response_write(out, cap, status, extra_headers, content_type, body, body_len, true,
                               false);
}
