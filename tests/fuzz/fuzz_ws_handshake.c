/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for ws_handshake: the request parser, the upgrade check, room names and
 * query strings.
 *
 * The first input byte picks how the rest is fed to http_request_parse(): whole, in fixed
 * steps, or in pseudo-random steps. Each call gets its prefix in a fresh allocation of exactly
 * that size, as a caller's realloc would give it, so ASan sees any read past <len> and any
 * pointer kept from an earlier buffer. The result must be the one a single call on the whole
 * input gives, with the same fields at the same offsets: that differential check is what finds
 * resume bugs. Whatever parses then goes through ws_upgrade_check(), room_name_decode() and
 * http_query_get() (checked against a naive reference for the names the query holds), and
 * every http_str must point inside the head.
 */
#include "ws_frame.h"
#include "ws_handshake.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* More calls than this per input make the copies quadratic; longer inputs take bigger steps. */
#define MAX_CALLS 256

/* Offset of <s> in <base>, or SIZE_MAX when absent; checks that it lies inside the head. */
static size_t str_off(const struct http_str *s, const char *base, size_t head_len)
{
    if (!s->p) {
        CHECK(s->len == 0);
        return SIZE_MAX;
    }
    CHECK(s->p >= base && s->p <= base + head_len);
    CHECK(s->len <= head_len - (size_t)(s->p - base));
    return (size_t)(s->p - base);
}

static void check_same(const struct http_request *a, const char *abase,
                       const struct http_request *b, const char *bbase, size_t head_len)
{
    const struct http_str *sa[] = {&a->method, &a->path,   &a->query,       &a->host,
                                   &a->origin, &a->ws_key, &a->ws_protocol, &a->authorization};
    const struct http_str *sb[] = {&b->method, &b->path,   &b->query,       &b->host,
                                   &b->origin, &b->ws_key, &b->ws_protocol, &b->authorization};

    for (size_t i = 0; i < sizeof(sa) / sizeof(sa[0]); i++) {
        CHECK(str_off(sa[i], abase, head_len) == str_off(sb[i], bbase, head_len));
        CHECK(sa[i]->len == sb[i]->len);
    }
    CHECK(a->minor_version == b->minor_version);
    CHECK(a->ws_version == b->ws_version);
    CHECK(a->upgrade_websocket == b->upgrade_websocket);
    CHECK(a->connection_upgrade == b->connection_upgrade);
    CHECK(a->content_length == b->content_length);
}

/* A decoded room name must satisfy everything room_name_decode() promises. */
static void check_room(const char *in, size_t in_len)
{
    uint8_t *out = malloc(ROOM_NAME_MAX); /* exactly the documented size */
    int n;

    CHECK(out != NULL);
    n = room_name_decode(in, in_len, (char *)out);
    CHECK(n == -EINVAL || (n >= 1 && n <= ROOM_NAME_MAX));
    if (n > 0) {
        CHECK(utf8_validate(UTF8_ACCEPT, out, (size_t)n) == UTF8_ACCEPT);
        for (int i = 0; i < n; i++) {
            CHECK(out[i] >= 0x20 && out[i] != 0x7f && out[i] != '/');
            CHECK(!(out[i] == 0xc2 && i + 1 < n && out[i + 1] < 0xa0));
        }
    }
    free(out);
}

/*
 * A naive reference for http_query_get(): split at '&', then at the first '='; the first pair
 * with the name wins. Every name the query holds (up to a few) must be found where the
 * reference finds it, and a name it does not hold must not be found.
 */
static void check_query(struct http_str q)
{
    char name[64];
    size_t nr = 0, i = 0;
    struct http_str v;

    if (q.len == 0) {
        CHECK(!http_query_get(q, "", &v) && !http_query_get(q, "echo", &v));
        return;
    }
    while (i <= q.len && nr < 8) {
        size_t end = i, eq;

        while (end < q.len && q.p[end] != '&')
            end++;
        for (eq = i; eq < end && q.p[eq] != '='; eq++)
            ;
        if (eq - i < sizeof(name) && memchr(q.p + i, '\0', eq - i) == NULL) {
            size_t first = 0;

            memcpy(name, q.p + i, eq - i);
            name[eq - i] = '\0';
            /* Only the first pair with this name counts. */
            while (first < i) {
                size_t fe = first, fq;

                while (fe < q.len && q.p[fe] != '&')
                    fe++;
                for (fq = first; fq < fe && q.p[fq] != '='; fq++)
                    ;
                if (fq - first == eq - i && memcmp(q.p + first, name, eq - i) == 0)
                    break;
                first = fe + 1;
            }
            if (first == i && (i < q.len || eq > i)) {
                CHECK(http_query_get(q, name, &v));
                CHECK(v.p == q.p + (eq < end ? eq + 1 : eq));
                CHECK(v.len == (eq < end ? end - eq - 1 : 0));
            }
            nr++;
        }
        i = end + 1;
    }
    CHECK(!http_query_get(q, "\x7f-not-in-any-query", &v) || memchr(q.p, 0x7f, q.len) != NULL);
}

static void check_parsed(const struct http_request *req, const char *buf, size_t head_len)
{
    struct http_str v;

    switch (ws_upgrade_check(req)) {
    case WS_UPGRADE_OK: {
        char resp[160];
        size_t n;

        CHECK(req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0);
        CHECK(req->ws_version == 13 && req->ws_key.len == 24 && req->host.len > 0);
        n = ws_response_101(resp, req->ws_key.p, req->ws_key.len);
        CHECK(n <= sizeof(resp));
        break;
    }
    case WS_UPGRADE_NOT_WEBSOCKET:
        CHECK(!req->upgrade_websocket);
        break;
    case WS_UPGRADE_BAD_VERSION:
        CHECK(req->ws_version != 13);
        break;
    case WS_UPGRADE_BAD_REQUEST:
        break;
    default:
        CHECK(0);
    }
    /* The path's last segment, the way the broker takes a room name from /room/<name>. */
    if (req->path.len > 0) {
        size_t off = req->path.len;

        while (off > 0 && req->path.p[off - 1] != '/')
            off--;
        check_room(req->path.p + off, req->path.len - off);
    }
    if (http_query_get(req->query, "echo", &v)) {
        CHECK(v.p >= req->query.p && v.p + v.len <= req->query.p + req->query.len);
        CHECK(v.p >= buf && v.p + v.len <= buf + head_len);
    }
    check_query(req->query);
}

/* Next prefix length for <mode>: the low 2 bits pick the pattern, the rest its step. */
static size_t next_len(uint8_t mode, size_t fed, size_t len, uint32_t *rng)
{
    size_t step = (size_t)(mode >> 2) + 1, min_step = len / MAX_CALLS + 1;

    switch (mode & 3) {
    case 0:
        return len;
    case 1:
        break;
    case 2:
        step = step * (fed / 64 + 1); /* growing, like a socket read after read */
        break;
    default:
        *rng = *rng * 1103515245u + 12345u;
        step = 1 + (*rng >> 16) % (2 * step);
        break;
    }
    if (step < min_step)
        step = min_step;
    return len - fed < step ? len : fed + step;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_request whole = {0}, part = {0};
    const char *in = (const char *)data + 1;
    size_t len, fed = 0;
    uint32_t rng;
    char *buf = NULL;
    int rc_whole, rc = -EAGAIN;

    if (size == 0)
        return 0;
    len = size - 1;
    rng = data[0];
    /* The room name decoder on its own, with arbitrary bytes. */
    check_room(in, len < 4 * ROOM_NAME_MAX ? len : 4 * ROOM_NAME_MAX);

    rc_whole = http_request_parse(in, len, &whole);
    CHECK(rc_whole > 0 || rc_whole == -EAGAIN || rc_whole == -EPROTO || rc_whole == -E2BIG);
    CHECK(rc_whole <= HTTP_HEAD_MAX && (rc_whole < 0 || (size_t)rc_whole <= len));
    CHECK(http_request_parse(in, len, &whole) == rc_whole); /* repeatable and sticky */

    while (rc == -EAGAIN && fed < len) {
        fed = next_len(data[0], fed, len, &rng);
        free(buf);
        buf = malloc(fed);
        CHECK(buf != NULL);
        memcpy(buf, in, fed);
        rc = http_request_parse(buf, fed, &part);
        if (rc > 0)
            CHECK((size_t)rc <= fed);
    }
    /* Fed in pieces or whole, the same verdict and the same fields. */
    CHECK(rc == rc_whole);
    if (rc > 0) {
        check_same(&whole, in, &part, buf, (size_t)rc);
        check_parsed(&part, buf, (size_t)rc);
    }
    free(buf);
    return 0;
}
