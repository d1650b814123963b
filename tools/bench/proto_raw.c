/* SPDX-License-Identifier: MIT */
/*
 * proto_raw: ringcast's raw room mode (ARCHITECTURE.md: WS /room/<name> forwards each message
 * to every other member verbatim; ?echo=1 includes the sender).
 *
 * Payload: a JSON object whose first member carries the bench fields as fixed-width hex, so a
 * receiver decodes them from the first 41 bytes without parsing JSON, and a protocol-mode
 * subscriber in the same room would still see valid JSON:
 *
 *   {"rcb":"PPPPPPPPSSSSSSSSTTTTTTTTTTTTTTTT","p":"abcdefgh..."}
 *          publisher seq     timestamp (ns)      padding up to --payload bytes
 *
 * Payloads of 42 to 48 bytes pad with spaces before the closing brace instead of a "p" member.
 *
 * Other adapters carry the same object inside their own framing (proto__raw_encode() and
 * proto__raw_decode()), and proto_find(), the list of adapters, lives here too.
 */
#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PREFIX     "{\"rcb\":\""
#define PREFIX_LEN 8
#define HEX_LEN    32
#define HEAD_LEN   (PREFIX_LEN + HEX_LEN + 1) /* through the closing quote */
#define MIN_LEN    (HEAD_LEN + 1)             /* plus the closing brace */
#define PAD_OPEN   ",\"p\":\""

_Static_assert(HEAD_LEN == PROTO_RAW_HEAD_LEN && MIN_LEN == PROTO_RAW_MIN_LEN, "proto.h");
_Static_assert(PROTO_RAW_JSON_MIN == HEAD_LEN + sizeof(PAD_OPEN) - 1 + 2, "proto.h");

static int raw_path(const struct bench_opts *o, uint32_t g, char *out, size_t cap)
{
    char suffix[64];
    int n = plan_room_suffix(o, g, suffix, sizeof(suffix));
    if (n < 0)
        return n;
    /* The fanout publisher hears its own messages: that is how it counts what is in flight. */
    bool echo = o->scenario == SC_FANOUT && g == 0;
    const char *sep = o->query[0] ? "?" : "";
    const char *amp = echo ? (o->query[0] ? "&echo=1" : "?echo=1") : "";
    int len = snprintf(out, cap, "%s%s%s%s%s", o->path, suffix, sep, o->query, amp);
    if (len < 0 || (size_t)len >= cap)
        return -ENOSPC;
    return len;
}

static size_t raw_hello(const struct bench_opts *o, uint32_t g, uint8_t *out, size_t cap,
                        uint32_t *joins)
{
    (void)o, (void)g, (void)out, (void)cap;
    *joins = 0;
    return 0;
}

static void put_hex(uint8_t *out, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = (uint8_t)hex[v & 15];
        v >>= 4;
    }
}

size_t proto__raw_encode(const struct bench_msg *m, uint8_t *out, size_t len)
{
    memcpy(out, PREFIX, PREFIX_LEN);
    put_hex(out + PREFIX_LEN, m->pub, 8);
    put_hex(out + PREFIX_LEN + 8, m->seq, 8);
    put_hex(out + PREFIX_LEN + 16, m->ts_ns, 16);
    out[HEAD_LEN - 1] = '"';
    size_t at = HEAD_LEN;
    size_t pad_min = sizeof(PAD_OPEN) - 1 + 1; /* ,"p":" and the closing quote */
    if (len >= at + pad_min + 1) {
        memcpy(out + at, PAD_OPEN, sizeof(PAD_OPEN) - 1);
        at += sizeof(PAD_OPEN) - 1;
        size_t pad = len - at - 2;
        for (size_t i = 0; i < pad; i++)
            out[at + i] = (uint8_t)('a' + i % 26);
        at += pad;
        out[at++] = '"';
    } else {
        while (at < len - 1)
            out[at++] = ' ';
    }
    out[at++] = '}';
    return at;
}

static size_t raw_publish(const struct bench_opts *o, const struct bench_msg *m, uint8_t *out,
                          size_t cap)
{
    size_t len = o->payload < MIN_LEN ? MIN_LEN : o->payload;
    if (len > cap)
        len = cap;
    return proto__raw_encode(m, out, len);
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool get_hex(const uint8_t *p, int digits, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < digits; i++) {
        int d = hexval(p[i]);
        if (d < 0)
            return false;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return true;
}

bool proto__raw_decode(const uint8_t *p, size_t have, size_t total, struct bench_msg *m)
{
    uint64_t pub, seq, ts;
    if (total < MIN_LEN || have < HEAD_LEN || memcmp(p, PREFIX, PREFIX_LEN) != 0 ||
        p[HEAD_LEN - 1] != '"')
        return false;
    if (!get_hex(p + PREFIX_LEN, 8, &pub) || !get_hex(p + PREFIX_LEN + 8, 8, &seq) ||
        !get_hex(p + PREFIX_LEN + 16, 16, &ts))
        return false;
    m->pub = (uint32_t)pub;
    m->seq = (uint32_t)seq;
    m->ts_ns = ts;
    return true;
}

static enum proto_rx raw_rx(const struct bench_opts *o, const uint8_t *p, size_t have, size_t total,
                            struct bench_msg *m)
{
    (void)o;
    return proto__raw_decode(p, have, total, m) ? PROTO_RX_DELIVERY : PROTO_RX_BAD;
}

const struct proto_ops proto_raw = {
    .name = "raw",
    .rx_need = HEAD_LEN,
    .min_payload = MIN_LEN,
    .self_delivery = false,
    .path = raw_path,
    .hello = raw_hello,
    .publish = raw_publish,
    .split = NULL,
    .rx = raw_rx,
    .reply = NULL,
};

const struct proto_ops *proto_find(const char *name)
{
    static const struct proto_ops *const all[] = {&proto_raw, &proto_socketio, &proto_centrifugo};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(name, all[i]->name) == 0)
            return all[i];
    return NULL;
}
