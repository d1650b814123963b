/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for engine/api_req: the server API's request decoder and the glob of its
 * `channels` method.
 *
 * Input layout: byte 0 picks the method (its value modulo 10, plus 1); the rest is the request
 * body, copied to an exact-size heap buffer so that ASan catches a read past it.
 *
 * Invariants checked on every input: the result is 0, -EPROTO, -ENOMEM, 102 or 107; after an
 * error nothing is held; after success every field the method requires is there and not empty,
 * decoded strings hold no NUL and have the lengths they claim, `data` lies inside the body and
 * is JSON that jansson accepts, a broadcast's per-channel errors are 0, 102 or 107 (107 exactly
 * for the empty ones), a disconnect's code is in 3000..4999 with a reason of at most
 * API_REASON_MAX bytes. The body is then split in two as a glob pattern and a name: the match
 * must end, a pattern of its own literal bytes (no `*`, `?` or `\`) must match itself, `*`
 * must match anything, and a pattern followed by `*` must match whatever the pattern matched.
 */
#include "api_req.h"
#include "fuzz_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(struct proto_str s, bool required)
{
    CHECK(!required || s.len > 0);
    CHECK(s.p || s.len == 0);
    if (s.len)
        CHECK(memchr(s.p, '\0', s.len) == NULL);
}

static void check_data(struct proto_str d, const char *body, size_t len)
{
    CHECK(d.len > 0 && d.p >= body && d.p + d.len <= body + len);
    json_t *j =
        json_loadb(d.p, d.len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
    CHECK(j != NULL);
    json_decref(j);
}

static void check_req(const struct api_req *r, const char *body, size_t len)
{
    switch (r->method) {
    case API_PUBLISH:
        check_str(r->channel, true);
        check_data(r->data, body, len);
        break;
    case API_BROADCAST:
        CHECK(r->nr_channels > 0);
        for (uint32_t i = 0; i < r->nr_channels; i++) {
            uint32_t e = r->channel_errors[i];
            CHECK(e == 0 || e == 102 || e == 107);
            CHECK((e == 107) == (r->channels[i].len == 0));
        }
        check_data(r->data, body, len);
        break;
    case API_SEND:
        check_str(r->user, true);
        check_data(r->data, body, len);
        break;
    case API_UNSUBSCRIBE:
        check_str(r->user, true);
        check_str(r->channel, false);
        break;
    case API_DISCONNECT:
        check_str(r->user, true);
        check_str(r->reason, false);
        CHECK(r->code >= 3000 && r->code <= 4999);
        CHECK(r->reason.len <= API_REASON_MAX);
        break;
    case API_PRESENCE:
    case API_PRESENCE_STATS:
        check_str(r->channel, true);
        break;
    case API_HISTORY:
        check_str(r->channel, true);
        check_str(r->since_epoch, false);
        CHECK(r->has_since || (r->since_offset == 0 && r->since_epoch.len == 0));
        break;
    case API_CHANNELS:
        check_str(r->pattern, false);
        break;
    case API_INFO:
        break;
    }
}

static bool has_meta(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '*' || p[i] == '?' || p[i] == '\\')
            return true;
    return false;
}

static void check_glob(const char *p, size_t len)
{
    size_t half = len / 2;
    const char *pat = p, *s = p + half;
    size_t plen = half, slen = len - half;
    bool m = api_glob_match(pat, plen, s, slen);
    CHECK(api_glob_match("*", 1, s, slen));
    if (!has_meta(pat, plen))
        CHECK(api_glob_match(pat, plen, pat, plen));
    if (m && plen < 64) {
        char star[65];
        memcpy(star, pat, plen);
        star[plen] = '*';
        /* "x\" + "*" turns the trailing backslash into an escape: only without it. */
        if (!plen || pat[plen - 1] != '\\')
            CHECK(api_glob_match(star, plen + 1, s, slen));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum api_method m = (enum api_method)(data[0] % 10 + 1);
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    if (!body)
        return 0;
    memcpy(body, data + 1, len);
    struct api_req r;
    int e = api_req_decode(m, body, len, &r);
    CHECK(e == 0 || e == -EPROTO || e == -ENOMEM || e == 102 || e == 107);
    CHECK(r.method == m);
    if (e == 0)
        check_req(&r, body, len);
    else
        CHECK(r._root == NULL && r.channels == NULL && r.channel_errors == NULL);
    api_req_fini(&r);
    check_glob(body, len);
    free(body);
    return 0;
}
