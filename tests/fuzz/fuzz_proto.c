/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for engine/proto (and engine/json_raw beneath it).
 *
 * Input layout: byte 0 picks the command limit (bits 0-1: PROTO_MAX_CMDS, 1, 2, 3); the rest
 * is one text frame, copied to an exact-size heap buffer so ASan catches a read past it.
 *
 * Invariants checked on every input: proto_read ends (one call per line at most, plus one);
 * each result is 1, 0, -EPROTO or -E2BIG and an error is sticky; every command has a method in
 * range, an id only where allowed, a non-empty channel where one is required and an error
 * code the contract lists; its `data` lies inside the frame and is JSON that jansson accepts,
 * and its strings have the lengths they claim. Each command is then encoded back: a publish
 * command built with proto_buf_jstr and the raw data must decode to the same channel and data
 * bytes, and replies and pushes made from the decoded strings must be JSON that jansson
 * accepts, with the Publication span of a push being the Publication. proto_buf_jstr is also
 * run on the raw input: its output must be one JSON string, equal to the input when the input
 * is valid UTF-8; and proto_buf_raw_data on it must give one line of JSON. No single message
 * encoded may hold a '\n', which separates the messages of a frame.
 */
#include "proto.h"
#include "ws_frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort() rather than assert(): the check must hold in release builds of the target too. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static bool is_json(const char *p, size_t len)
{
    json_t *j =
        json_loadb(p, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
    json_decref(j);
    return j != NULL;
}

static struct proto_str str(const char *s)
{
    return (struct proto_str){.p = s, .len = strlen(s)};
}

static void check_str(struct proto_str s)
{
    REQUIRE(!s.p == !s.len || s.p);
    if (s.p)
        REQUIRE(memchr(s.p, '\0', s.len) == NULL);
}

/* Encodes a publish of <c>'s channel and data, decodes it, and compares. */
static void round_trip(const struct proto_cmd *c)
{
    if (!c->channel.len || !c->data.len)
        return;
    struct proto_buf b = {0};
    char id[16];
    snprintf(id, sizeof(id), "%u", c->id ? c->id : 1);
    REQUIRE(proto_buf_put(&b, "{\"publish\":{\"channel\":", 22) == 0);
    REQUIRE(proto_buf_jstr(&b, c->channel.p, c->channel.len) == 0);
    REQUIRE(proto_buf_put(&b, ",\"data\":", 8) == 0);
    REQUIRE(proto_buf_put(&b, c->data.p, c->data.len) == 0);
    REQUIRE(proto_buf_put(&b, "},\"id\":", 7) == 0);
    REQUIRE(proto_buf_put(&b, id, strlen(id)) == 0);
    REQUIRE(proto_buf_put(&b, "}", 1) == 0);
    struct proto_reader r;
    struct proto_cmd d;
    proto_reader_init(&r, b.p, b.len, 0);
    REQUIRE(proto_read(&r, &d) == 1);
    REQUIRE(d.method == PROTO_PUBLISH);
    REQUIRE(d.channel.len == c->channel.len);
    REQUIRE(memcmp(d.channel.p, c->channel.p, c->channel.len) == 0);
    REQUIRE(d.data.len == c->data.len);
    REQUIRE(memcmp(d.data.p, c->data.p, c->data.len) == 0);
    proto_cmd_fini(&d);
    REQUIRE(proto_read(&r, &d) == 0);
    proto_buf_fini(&b);
}

/* Replies and pushes from the decoded fields must be valid JSON. */
static void encode_from(const struct proto_cmd *c)
{
    struct proto_buf b = {0};
    struct proto_str data = c->data.len ? c->data : str("null");
    struct proto_client_info ci = {
        .user = c->name, .client = c->token, .conn_info = c->data, .chan_info = c->data};
    struct proto_pub pub = {.data = data, .info = &ci, .offset = c->offset};
    struct proto_str at;
    REQUIRE(proto_encode_pub_push(&b, c->channel, &pub, &at) == 0);
    REQUIRE(is_json(b.p, b.len));
    REQUIRE(!memchr(b.p, '\n', b.len)); /* one message: no separator inside (§2) */
    REQUIRE(at.p >= b.p && at.p + at.len <= b.p + b.len && at.len >= 2);
    REQUIRE(at.p[0] == '{' && at.p[at.len - 1] == '}' && is_json(at.p, at.len));
    struct proto_str pubs[2] = {at, at};
    struct proto_buf h = {0};
    REQUIRE(proto_encode_history(&h, c->id, pubs, 2, c->epoch, c->since_offset) == 0);
    REQUIRE(is_json(h.p, h.len));
    proto_buf_fini(&h);
    /* The span borrows <b> until its next write, so the replies embedding it go elsewhere. */
    struct proto_subscribe_result sr = {
        .epoch = c->epoch,
        .offset = c->offset,
        .recovered = c->recover,
        .recoverable = c->recoverable,
        .pubs = pubs,
        .nr_pubs = c->recover ? 1 : 0,
        .data = c->data,
    };
    struct proto_buf s = {0};
    REQUIRE(proto_encode_subscribe(&s, c->id, &sr) == 0);
    REQUIRE(is_json(s.p, s.len));
    REQUIRE(!memchr(s.p, '\n', s.len));
    struct proto_connect_result cr = {.client = c->token, .version = c->version, .data = c->data};
    struct proto_server_sub ss = {.channel = c->channel, .res = &sr};
    size_t start = s.len;
    REQUIRE(proto_buf_sep(&s) == 0);
    REQUIRE(proto_encode_connect(&s, c->id, &cr, &ss, 1) == 0);
    REQUIRE(is_json(s.p + start + 1, s.len - start - 1));
    proto_buf_fini(&s);
    REQUIRE(proto_buf_sep(&b) == 0);
    start = b.len;
    REQUIRE(proto_encode_join_leave(&b, c->channel, c->join_leave, &ci) == 0);
    REQUIRE(is_json(b.p + start, b.len - start));
    start = b.len;
    REQUIRE(proto_encode_presence_begin(&b, c->id) == 0);
    REQUIRE(proto_encode_presence_add(&b, &ci) == 0);
    REQUIRE(proto_encode_presence_add(&b, &ci) == 0);
    REQUIRE(proto_encode_presence_end(&b) == 0);
    REQUIRE(is_json(b.p + start, b.len - start));
    start = b.len;
    REQUIRE(proto_encode_error(&b, c->id, c->error ? c->error : 107, NULL) == 0);
    REQUIRE(is_json(b.p + start, b.len - start));
    proto_buf_fini(&b);
}

static void check_cmd(const struct proto_cmd *c, const char *f, size_t len)
{
    REQUIRE(c->method >= PROTO_PONG && c->method <= PROTO_SUB_REFRESH);
    REQUIRE(c->id != 0 || c->method == PROTO_PONG || c->method == PROTO_SEND);
    REQUIRE(c->error == 0 || c->error == 106 || c->error == 107 || c->error == 108);
    REQUIRE(c->error != 108 || c->method == PROTO_PING);
    bool chan = c->method == PROTO_SUBSCRIBE || c->method == PROTO_UNSUBSCRIBE ||
                c->method == PROTO_PUBLISH || c->method == PROTO_PRESENCE ||
                c->method == PROTO_PRESENCE_STATS || c->method == PROTO_HISTORY ||
                c->method == PROTO_SUB_REFRESH;
    REQUIRE(!chan || c->channel.len > 0);
    REQUIRE((c->channel.len > PROTO_CHANNEL_MAX) == (c->error == 106));
    REQUIRE(c->method != PROTO_PUBLISH || c->data.p || c->error);
    check_str(c->channel);
    check_str(c->token);
    check_str(c->epoch);
    check_str(c->since_epoch);
    check_str(c->name);
    check_str(c->version);
    check_str(c->rpc_method);
    if (c->data.p) {
        REQUIRE(c->data.p >= f && c->data.p + c->data.len <= f + len && c->data.len > 0);
        REQUIRE(is_json(c->data.p, c->data.len));
    }
    for (uint32_t i = 0; i < c->nr_subs; i++) {
        check_str(c->subs[i].channel);
        check_str(c->subs[i].epoch);
        REQUIRE(c->subs[i].channel.len > 0);
    }
    round_trip(c);
    encode_from(c);
}

/* The data of a raw room message: JSON, one line, the message itself when it is JSON. */
static void check_raw_data(const uint8_t *s, size_t len)
{
    for (int text = 0; text < 2; text++) {
        struct proto_buf b = {0};
        REQUIRE(proto_buf_raw_data(&b, (const char *)s, len, text) == 0);
        REQUIRE(b.len > 0 && is_json(b.p, b.len));
        REQUIRE(!memchr(b.p, '\n', b.len));
        REQUIRE(text || b.p[0] == '"');
        proto_buf_fini(&b);
    }
}

static void check_jstr(const uint8_t *s, size_t len)
{
    struct proto_buf b = {0};
    REQUIRE(proto_buf_jstr(&b, (const char *)s, len) == 0);
    json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    REQUIRE(j && json_is_string(j));
    if (utf8_validate(UTF8_ACCEPT, s, len) == UTF8_ACCEPT)
        REQUIRE(json_string_length(j) == len && memcmp(json_string_value(j), s, len) == 0);
    json_decref(j);
    proto_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t limits[4] = {0, 1, 2, 3};
    if (size < 1)
        return 0;
    size_t len = size - 1;
    char *f = malloc(len ? len : 1);
    REQUIRE(f);
    memcpy(f, data + 1, len);
    check_jstr((const uint8_t *)f, len);
    check_raw_data((const uint8_t *)f, len);

    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += f[i] == '\n';
    struct proto_reader r;
    struct proto_cmd c;
    proto_reader_init(&r, f, len, limits[data[0] & 3]);
    int rc;
    size_t calls = 0;
    while ((rc = proto_read(&r, &c)) == 1) {
        REQUIRE(++calls <= lines);
        check_cmd(&c, f, len);
        proto_cmd_fini(&c);
    }
    REQUIRE(rc == 0 || rc == -EPROTO || rc == -E2BIG);
    REQUIRE(proto_read(&r, &c) == rc);
    REQUIRE(c.method == PROTO_PONG && c._root == NULL);
    if (rc < 0)
        REQUIRE(proto_close_code(rc) == 3501);
    free(f);
    return 0;
}
