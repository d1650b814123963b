/* SPDX-License-Identifier: MIT */
/*
 * api_req: decoding the server API's requests (contract in api_req.h). The field names, types
 * and checks follow Centrifugo's server API (its api.proto and internal/api executor): a
 * required string that is empty is error 107, as Centrifugo's `ch == ""` checks are.
 */
#include "api_req.h"

#include "channel.h"
#include "json_raw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Centrifugo's error codes (PROTOCOL-CENTRIFUGO.md §8). */
enum { E_UNKNOWN_CHANNEL = 102, E_BAD_REQUEST = 107 };

static const struct {
    const char *name;
    enum api_method method;
} methods[] = {
    {"publish", API_PUBLISH},
    {"broadcast", API_BROADCAST},
    {"send", API_SEND},
    {"unsubscribe", API_UNSUBSCRIBE},
    {"disconnect", API_DISCONNECT},
    {"presence", API_PRESENCE},
    {"presence_stats", API_PRESENCE_STATS},
    {"history", API_HISTORY},
    {"channels", API_CHANNELS},
    {"info", API_INFO},
};

enum api_method api_method_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, name, len) == 0)
            return methods[i].method;
    return 0;
}

/* ---- fields ------------------------------------------------------------------------------- */

/* A string field (proto.h's reader); absent reads as {NULL, 0}. Returns 0 or E_BAD_REQUEST.
 * Strings with NUL are refused: no user id, channel or reason has one. */
static int get_str(json_t *o, const char *name, struct proto_str *out)
{
    return proto_json_str(o, name, out) ? E_BAD_REQUEST : 0;
}

static int get_bool(json_t *o, const char *name, bool *out)
{
    return proto_json_bool(o, name, out) ? E_BAD_REQUEST : 0;
}

/*
 * An integer field within [<min>, <max>] into *<out> (as a uint64 bit pattern for uint64
 * fields). A body with an integer beyond int64 anywhere was parsed with every number as a real
 * (json_raw_load); such a real is read back from its text in <txt>, the object's JSON, and
 * taken only when written as plain digits, as Go's decoder wants for integer fields.
 */
static int get_int(json_t *o, struct json_raw txt, const char *name, int64_t min, uint64_t max,
                   uint64_t *out)
{
    json_t *v = proto_json_field(o, name);
    *out = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < min || (n > 0 && (uint64_t)n > max))
            return E_BAD_REQUEST;
        *out = (uint64_t)n;
        return 0;
    }
    struct json_raw r;
    if (!json_is_real(v) || !json_raw_member(txt.p, txt.len, name, strlen(name), &r) || !r.len)
        return E_BAD_REQUEST;
    uint64_t n = 0;
    for (size_t i = 0; i < r.len; i++) {
        unsigned d = (unsigned)(r.p[i] - '0');
        if (d > 9 || n > (UINT64_MAX - d) / 10)
            return E_BAD_REQUEST;
        n = n * 10 + d;
    }
    if (n > max)
        return E_BAD_REQUEST;
    *out = n;
    return 0;
}

/* A required, non-empty string. */
static int need_str(json_t *o, const char *name, struct proto_str *out)
{
    int e = get_str(o, name, out);
    return e ? e : out->len ? 0 : E_BAD_REQUEST;
}

/* A required channel: 107 when missing or empty, 102 when it can never be a channel. */
static int need_channel(json_t *o, struct proto_str *out)
{
    int e = need_str(o, "channel", out);
    if (e)
        return e;
    return channel_name_valid(out->p, out->len) ? 0 : E_UNKNOWN_CHANNEL;
}

/* The raw JSON of `data`, required (a publication without data is a bad request, as in the
 * client protocol). */
static int need_data(json_t *o, struct json_raw body, struct proto_str *out)
{
    struct json_raw r;
    *out = (struct proto_str){0};
    if (!proto_json_field(o, "data") || !json_raw_member(body.p, body.len, "data", 4, &r) || !r.len)
        return E_BAD_REQUEST;
    *out = (struct proto_str){.p = r.p, .len = r.len};
    return 0;
}

/* ---- methods ------------------------------------------------------------------------------ */

static int decode_broadcast(json_t *o, struct json_raw body, struct api_req *r)
{
    json_t *chans = proto_json_field(o, "channels");
    if (!json_is_array(chans) || json_array_size(chans) == 0)
        return E_BAD_REQUEST;
    int e = need_data(o, body, &r->data);
    if (e)
        return e;
    size_t n = json_array_size(chans);
    r->channels = calloc(n, sizeof(*r->channels));
    r->channel_errors = calloc(n, sizeof(*r->channel_errors));
    if (!r->channels || !r->channel_errors)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(chans, i);
        if (!json_is_string(v))
            return E_BAD_REQUEST;
        struct proto_str *ch = &r->channels[i];
        *ch = (struct proto_str){.p = json_string_value(v), .len = json_string_length(v)};
        if (ch->len == 0)
            r->channel_errors[i] = E_BAD_REQUEST;
        else if (!channel_name_valid(ch->p, ch->len))
            r->channel_errors[i] = E_UNKNOWN_CHANNEL;
    }
    r->nr_channels = (uint32_t)n;
    return 0;
}

static int decode_disconnect(json_t *o, struct json_raw body, struct api_req *r)
{
    int e = need_str(o, "user", &r->user);
    if (e)
        return e;
    r->code = API_DISCONNECT_CODE;
    r->reason = (struct proto_str){API_DISCONNECT_REASON, strlen(API_DISCONNECT_REASON)};
    json_t *d = proto_json_field(o, "disconnect");
    struct json_raw txt;
    if (!d)
        return 0;
    if (!json_is_object(d) || !json_raw_member(body.p, body.len, "disconnect", 10, &txt))
        return E_BAD_REQUEST;
    uint64_t code;
    struct proto_str reason;
    /* Application close codes are 3000..4999 (RFC 6455 §7.4.2); Centrifugo's own are there too
     * (PROTOCOL-CENTRIFUGO.md §7), and below 3000 a code would mean a transport event. */
    if ((e = get_int(d, txt, "code", 0, 4999, &code)) || (e = get_str(d, "reason", &reason)))
        return e;
    if (code < 3000 || reason.len > API_REASON_MAX)
        return E_BAD_REQUEST;
    r->code = (uint16_t)code;
    r->reason = reason;
    return 0;
}

static int decode_history(json_t *o, struct json_raw body, struct api_req *r)
{
    uint64_t limit;
    int e = need_channel(o, &r->channel);
    if (e || (e = get_int(o, body, "limit", INT32_MIN, INT32_MAX, &limit)) ||
        (e = get_bool(o, "reverse", &r->reverse)))
        return e;
    r->limit = (int32_t)(int64_t)limit;
    json_t *since = proto_json_field(o, "since");
    struct json_raw txt;
    if (!since)
        return 0;
    if (!json_is_object(since) || !json_raw_member(body.p, body.len, "since", 5, &txt))
        return E_BAD_REQUEST;
    r->has_since = true;
    if ((e = get_int(since, txt, "offset", 0, UINT64_MAX, &r->since_offset)))
        return e;
    return get_str(since, "epoch", &r->since_epoch);
}

static int decode_fields(json_t *o, struct json_raw body, struct api_req *r)
{
    int e;
    switch (r->method) {
    case API_PUBLISH:
        if ((e = need_channel(o, &r->channel)))
            return e;
        return need_data(o, body, &r->data);
    case API_BROADCAST:
        return decode_broadcast(o, body, r);
    case API_SEND:
        if ((e = need_str(o, "user", &r->user)))
            return e;
        return need_data(o, body, &r->data);
    case API_UNSUBSCRIBE:
        if ((e = need_str(o, "user", &r->user)) || (e = get_str(o, "channel", &r->channel)))
            return e;
        return !r->channel.len || channel_name_valid(r->channel.p, r->channel.len)
                   ? 0
                   : E_UNKNOWN_CHANNEL;
    case API_DISCONNECT:
        return decode_disconnect(o, body, r);
    case API_PRESENCE:
    case API_PRESENCE_STATS:
        return need_channel(o, &r->channel);
    case API_HISTORY:
        return decode_history(o, body, r);
    case API_CHANNELS:
        return get_str(o, "pattern", &r->pattern);
    case API_INFO:
        return 0;
    }
    return E_BAD_REQUEST;
}

int api_req_decode(enum api_method method, const char *body, size_t len, struct api_req *r)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    json_t *root = json_raw_load(body, len, JSON_ALLOW_NUL);
    if (!root)
        return -EPROTO; /* not JSON, or no memory: either way nothing to answer but 400 */
    if (!json_is_object(root)) {
        json_decref(root);
        return -EPROTO;
    }
    r->_root = root;
    int e = decode_fields(root, json_raw_trim(body, len), r);
    if (e) {
        api_req_fini(r);
        r->method = method;
    }
    return e;
}

void api_req_fini(struct api_req *r)
{
    json_decref(r->_root);
    free(r->channels);
    free(r->channel_errors);
    memset(r, 0, sizeof(*r));
}

/* ---- glob --------------------------------------------------------------------------------- */

/* The byte at <pat>[*<i>] as a literal to compare (the one after a '\', which is skipped). */
static unsigned char lit_at(const char *pat, size_t plen, size_t *i)
{
    if (pat[*i] == '\\' && *i + 1 < plen)
        (*i)++;
    return (unsigned char)pat[*i];
}

bool api_glob_match(const char *pat, size_t plen, const char *s, size_t slen)
{
    /*
     * The classic greedy match with one backtrack point: on a mismatch, the last '*' takes one
     * more byte. Only the last star matters (an earlier one can never need to give back what
     * a later one took), so this is O(plen * slen) with no recursion.
     */
    size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0;
    while (i < slen) {
        if (p < plen && pat[p] == '*') {
            star_p = ++p;
            star_i = i;
            continue;
        }
        if (p < plen) {
            size_t q = p;
            bool any = pat[q] == '?';
            unsigned char want = any ? 0 : lit_at(pat, plen, &q);
            if (any || want == (unsigned char)s[i]) {
                p = q + 1;
                i++;
                continue;
            }
        }
        if (star_p == SIZE_MAX)
            return false;
        p = star_p;
        i = ++star_i;
    }
    while (p < plen && pat[p] == '*')
        p++;
    return p == plen;
}
