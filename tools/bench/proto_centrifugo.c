/* SPDX-License-Identifier: MIT */
/*
 * proto_centrifugo: the Centrifugo client protocol v2 in its JSON form (PROTOCOL-CENTRIFUGO.md;
 * section numbers (§) are its own), as a plain WebSocket client speaks it, no SDK involved. It
 * drives ringcast's protocol mode (WS /connection/websocket) and Centrifugo itself
 * (bench/peers/centrifugo/) with the same bytes.
 *
 * Path: the URL's path and query, unchanged. Channels are named the way raw mode names its
 * rooms under a path ending in '/': "chat-3", "hold-0", or the scenario's name alone when
 * there is one room ("fanout"); in echo every client has its own ("echo-<client>"). With
 * --personal each client is also subscribed to "personal-<client>", where nothing is published:
 * Centrifugo's million-connection test's shape, two subscriptions per connection.
 *
 *   client                                          server
 *   {"connect":{"name":"bench"},"id":1}             (one frame: connect and the subscribes,
 *   {"subscribe":{"channel":"chat-3"},"id":2}        as the SDKs send them, §2)
 *   {"subscribe":{"channel":"personal-7"},"id":3}
 *                                                   {"id":1,"connect":{"client":"..."}}
 *                                                   {"id":2,"subscribe":{}}   one JOINED each
 *                                                   {"id":2,"error":{...}}    a refusal: BAD
 *   {"publish":{"channel":"chat-3","data":{...}},"id":4}
 *                                                   {"id":4,"publish":{}}     ignored
 *                                                   {"push":{"channel":"chat-3","pub":
 *                                                     {"data":{...},"info":{...},"offset":5}}}
 *                                                                             a delivery
 *                                                   {}                        the ping (§7)
 *   {}                                              (its pong)
 *
 * The server may put replies and pushes in one frame, separated by '\n', in any order (§2):
 * split() cuts them apart, and rx() classifies each by the members it holds, in whatever order
 * they come, skipping the ones it does not need (a pub's info, offset, tags). Every publish
 * carries the same id: replies are told apart by their method, not their id, so the adapter
 * keeps no state.
 *
 * The publisher is a subscriber of its channel, so the server delivers its publish back to it
 * too (§5): that copy counts as a delivery (self_delivery).
 *
 * Payload: the publish command is --payload bytes in all, its data raw mode's object
 * (proto_raw.c) padded with its "p" member to fill the rest. Both servers pass data through
 * as the JSON text it was, so subscribers get the same object, and a receiver decodes the
 * bench fields from its first 41 bytes.
 */
#include "proto.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PUB_OPEN  "{\"publish\":{\"channel\":\""
#define PUB_DATA  "\",\"data\":"
#define PUB_CLOSE "},\"id\":4}"
/* The publish command's bytes besides its channel name and data. */
#define PUB_OVERHEAD (sizeof(PUB_OPEN) - 1 + sizeof(PUB_DATA) - 1 + sizeof(PUB_CLOSE) - 1)
/* With the shortest channel names ("chat", "hold"): what min_payload can promise. */
#define CF_MIN_LEN (PUB_OVERHEAD + 4 + PROTO_RAW_JSON_MIN)
/* Longest channel name written here: a scenario name, '-' and a 32-bit number. */
#define CHANNEL_CAP 32

/* ---------------------------------------------------------------------------------------------
 * Channels and what the client sends
 * -------------------------------------------------------------------------------------------*/

/* The channel client <g> publishes to and is subscribed to first. Returns its length. */
static size_t channel(const struct bench_opts *o, uint32_t g, char out[CHANNEL_CAP])
{
    const char *sc = plan_scenario_name(o->scenario);
    int n;
    if (o->scenario == SC_ECHO)
        n = snprintf(out, CHANNEL_CAP, "%s-%u", sc, g);
    else if (plan_nr_rooms(o) > 1)
        n = snprintf(out, CHANNEL_CAP, "%s-%u", sc, plan_room_of(o, g));
    else
        n = snprintf(out, CHANNEL_CAP, "%s", sc);
    return n > 0 && n < CHANNEL_CAP ? (size_t)n : 0;
}

size_t proto__centrifugo_min_payload(const struct bench_opts *o)
{
    /* The last client has the highest room (or client) number: the longest name. */
    char ch[CHANNEL_CAP];
    return PUB_OVERHEAD + channel(o, o->connections ? o->connections - 1 : 0, ch) +
           PROTO_RAW_JSON_MIN;
}

static int cf_path(const struct bench_opts *o, uint32_t g, char *out, size_t cap)
{
    (void)g;
    size_t pl = strlen(o->path), ql = strlen(o->query), len = pl + (ql ? 1 + ql : 0);
    if (len >= cap)
        return -ENOSPC;
    memcpy(out, o->path, pl);
    if (ql) {
        out[pl] = '?';
        memcpy(out + pl + 1, o->query, ql);
    }
    out[len] = '\0';
    return (int)len;
}

static size_t cf_hello(const struct bench_opts *o, uint32_t g, uint8_t *out, size_t cap,
                       uint32_t *joins)
{
    char ch[CHANNEL_CAP];
    channel(o, g, ch);
    /* §3: anonymous unless a token is given (plan.c let only JWT characters through). */
    int n = snprintf((char *)out, cap,
                     "{\"connect\":{\"name\":\"bench\"%s%s%s},\"id\":1}\n"
                     "{\"subscribe\":{\"channel\":\"%s\"},\"id\":2}",
                     o->token[0] ? ",\"token\":\"" : "", o->token, o->token[0] ? "\"" : "", ch);
    if (n > 0 && (size_t)n < cap && o->personal)
        n += snprintf((char *)out + n, cap - (size_t)n,
                      "\n{\"subscribe\":{\"channel\":\"personal-%u\"},\"id\":3}", g);
    *joins = o->personal ? 2 : 1;
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static size_t cf_publish(const struct bench_opts *o, const struct bench_msg *m, uint8_t *out,
                         size_t cap)
{
    char ch[CHANNEL_CAP];
    size_t cl = channel(o, m->pub, ch);
    size_t min = PUB_OVERHEAD + cl + PROTO_RAW_JSON_MIN;
    size_t len = o->payload < min ? min : o->payload;
    if (len > cap)
        return 0; /* plan.c keeps --payload at least proto__centrifugo_min_payload() */
    uint8_t *p = out;
    memcpy(p, PUB_OPEN, sizeof(PUB_OPEN) - 1);
    p += sizeof(PUB_OPEN) - 1;
    memcpy(p, ch, cl);
    p += cl;
    memcpy(p, PUB_DATA, sizeof(PUB_DATA) - 1);
    p += sizeof(PUB_DATA) - 1;
    p += proto__raw_encode(m, p, len - PUB_OVERHEAD - cl);
    memcpy(p, PUB_CLOSE, sizeof(PUB_CLOSE) - 1);
    return len;
}

/* ---------------------------------------------------------------------------------------------
 * JSON, only as far as classifying a message needs (RFC 8259): an object's members found by
 * key, every other value skipped without being decoded. Nothing reads at or past <end>.
 * -------------------------------------------------------------------------------------------*/

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Past the string whose opening quote is at <p>, or NULL when it does not end. */
static const uint8_t *skip_string(const uint8_t *p, const uint8_t *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (++p == end)
                return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/*
 * Past the value at <p>, or NULL when it does not end before <end>. Objects and arrays are
 * matched bracket by bracket with the strings inside them skipped; any other token (number,
 * true, false, null) runs to the next delimiter.
 */
static const uint8_t *skip_value(const uint8_t *p, const uint8_t *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                if (!p)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    const uint8_t *start = p;
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p > start ? p : NULL;
}

/*
 * Past the object whose '{' is at <p> when its own members are well formed (a string key,
 * ':', a value), else NULL. The values are only skipped.
 */
static const uint8_t *skip_object(const uint8_t *p, const uint8_t *end)
{
    if (p >= end || *p != '{')
        return NULL;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        if (p >= end || *p != '"' || !(p = skip_string(p, end)))
            return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ':' || !(p = skip_value(skip_ws(p + 1, end), end)))
            return NULL;
        p = skip_ws(p, end);
        if (p < end && *p == '}')
            return p + 1;
        if (p >= end || *p != ',')
            return NULL;
        p = skip_ws(p + 1, end);
    }
}

/*
 * The value of member <key> of the object whose '{' is at <p>, or NULL: no such member, or
 * not an object as far as it was read. Keys are compared as written (ours need no escapes).
 */
static const uint8_t *member(const uint8_t *p, const uint8_t *end, const char *key)
{
    size_t key_len = strlen(key);
    if (p >= end || *p != '{')
        return NULL;
    p = skip_ws(p + 1, end);
    while (p < end && *p == '"') {
        const uint8_t *k = p + 1, *after = skip_string(p, end);
        if (!after)
            return NULL;
        p = skip_ws(after, end);
        if (p >= end || *p != ':')
            return NULL;
        p = skip_ws(p + 1, end);
        if ((size_t)(after - 1 - k) == key_len && memcmp(k, key, key_len) == 0)
            return p < end ? p : NULL;
        p = skip_value(p, end);
        if (!p)
            return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ',')
            return NULL;
        p = skip_ws(p + 1, end);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * What the client receives
 * -------------------------------------------------------------------------------------------*/

static size_t cf_split(const uint8_t *p, size_t len)
{
    const uint8_t *nl = memchr(p, '\n', len);
    return nl ? (size_t)(nl - p) : len;
}

/* §6: a push (no id). */
static enum proto_rx cf_push(const uint8_t *v, const uint8_t *end, struct bench_msg *m)
{
    const uint8_t *pub = member(v, end, "pub");
    if (pub) {
        const uint8_t *data = member(pub, end, "data");
        size_t n = data ? (size_t)(end - data) : 0;
        return data && proto__raw_decode(data, n, n, m) ? PROTO_RX_DELIVERY : PROTO_RX_BAD;
    }
    /* Join and leave we never ask for; a message could come from the server API. */
    if (member(v, end, "join") || member(v, end, "leave") || member(v, end, "message"))
        return PROTO_RX_IGNORE;
    /* An unsubscribe or disconnect push: the client lost what it subscribed to. */
    return PROTO_RX_BAD;
}

static enum proto_rx cf_rx(const struct bench_opts *o, const uint8_t *p, size_t have, size_t total,
                           struct bench_msg *m)
{
    (void)o;
    const uint8_t *end = p + have, *obj = skip_ws(p, end);
    /* One whole object and nothing after it but blanks. */
    const uint8_t *after = have == total ? skip_object(obj, end) : NULL;
    if (!after || skip_ws(after, end) != end)
        return PROTO_RX_BAD;
    const uint8_t *v = member(obj, end, "push");
    if (v)
        return cf_push(v, end, m);
    v = member(obj, end, "id");
    if (v && *v != '0') {
        /* §2: a reply, matched by its method rather than its id. */
        if (member(obj, end, "error"))
            return PROTO_RX_BAD;
        return member(obj, end, "subscribe") ? PROTO_RX_JOINED : PROTO_RX_IGNORE;
    }
    /* §2: neither a reply nor a push is the server's ping, as the SDKs read it ({}). */
    return PROTO_RX_REPLY;
}

static size_t cf_reply(const struct bench_opts *o, const uint8_t *p, size_t have, size_t total,
                       uint8_t *out, size_t cap)
{
    (void)o, (void)p, (void)have, (void)total;
    /* §7: every ping is answered with its own frame {}. */
    if (cap < 2)
        return 0;
    memcpy(out, "{}", 2);
    return 2;
}

const struct proto_ops proto_centrifugo = {
    .name = "centrifugo",
    .rx_need = SIZE_MAX,
    .min_payload = CF_MIN_LEN,
    .self_delivery = true,
    .path = cf_path,
    .hello = cf_hello,
    .publish = cf_publish,
    .split = cf_split,
    .rx = cf_rx,
    .reply = cf_reply,
};
