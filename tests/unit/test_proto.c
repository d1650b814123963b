/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/proto.c, through the public header only.
 *
 * Decoding is table-driven: one row per case and per error class, each frame given with the
 * commands it must yield (method, id, error code) and how the frame ends. Every client frame
 * of PROTOCOL-CENTRIFUGO.md is a row (tokens shortened as the doc shortens them), and the
 * fields of each are checked below. Encoding compares byte for byte with every server frame
 * the doc gives exactly; where the doc elides a part with "…", the test fills it in and says so.
 * Each frame is decoded from an exact-size heap copy, so ASan catches a read past its end.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "proto.h"
#include "ws_frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH "chat:check-f45141"

static struct proto_str S(const char *s) {
    return (struct proto_str){.p = s, .len = s ? strlen(s) : 0};
}

static void
assert_str(struct proto_str got, const char *want)
{
    if (!want) {
        assert_null(got.p);
        return;
    }
    assert_non_null(got.p);
    if (got.len != strlen(want) || memcmp(got.p, want, got.len) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)got.len, got.p, want);
}

/* A frame copied to an exact-size heap buffer; free with free(). */
static char *frame_copy(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, s, len);
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding table
 * -------------------------------------------------------------------------------------------*/

struct want_cmd {
    enum proto_method method;
    uint32_t id, error;
};

struct decode_row {
    const char *what;
    const char *frame;
    uint32_t max_cmds;
    struct want_cmd cmds[4];
    int nr;
    int end; /* 0: the frame ends cleanly; else the error proto_read returns after the cmds */
};

/* 255 bytes */
#define LONG_CH                                                                                    \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"        \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"        \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct decode_row decode_rows[] = {
    /* The client frames of the doc, §3 to §9. */
    {"§3 connect + subscribe in one frame",
     "{\"connect\":{\"token\":\"eyJ…\",\"name\":\"js\"},\"id\":1}\n"
     "{\"subscribe\":{\"channel\":\"" CH "\",\"positioned\":true,\"recoverable\":true,"
     "\"join_leave\":true,\"flag\":1},\"id\":2}",
     0,
     {{PROTO_CONNECT, 1, 0}, {PROTO_SUBSCRIBE, 2, 0}},
     2,
     0},
    {"§4 unsubscribe",
     "{\"unsubscribe\":{\"channel\":\"" CH "\"},\"id\":9}",
     0,
     {{PROTO_UNSUBSCRIBE, 9, 0}},
     1,
     0},
    {"§5 publish",
     "{\"publish\":{\"channel\":\"" CH "\",\"data\":{\"text\":\"hello\",\"n\":1}},\"id\":3}",
     0,
     {{PROTO_PUBLISH, 3, 0}},
     1,
     0},
    {"§5 presence",
     "{\"presence\":{\"channel\":\"" CH "\"},\"id\":4}",
     0,
     {{PROTO_PRESENCE, 4, 0}},
     1,
     0},
    {"§5 presence_stats",
     "{\"presence_stats\":{\"channel\":\"" CH "\"},\"id\":5}",
     0,
     {{PROTO_PRESENCE_STATS, 5, 0}},
     1,
     0},
    {"§5 history",
     "{\"history\":{\"channel\":\"" CH "\"},\"id\":6}",
     0,
     {{PROTO_HISTORY, 6, 0}},
     1,
     0},
    {"§5 history reverse",
     "{\"history\":{\"channel\":\"" CH "\",\"limit\":2,\"reverse\":true},\"id\":8}",
     0,
     {{PROTO_HISTORY, 8, 0}},
     1,
     0},
    {"§5 history since",
     "{\"history\":{\"channel\":\"" CH "\",\"since\":{\"offset\":2,\"epoch\":\"a55de5c3\"},"
     "\"limit\":10},\"id\":9}",
     0,
     {{PROTO_HISTORY, 9, 0}},
     1,
     0},
    {"§5 history since, another epoch",
     "{\"history\":{\"channel\":\"" CH "\",\"since\":{\"offset\":1,\"epoch\":\"not-the-epoch\"},"
     "\"limit\":10},\"id\":10}",
     0,
     {{PROTO_HISTORY, 10, 0}},
     1,
     0},
    {"§8 reconnect with recovery",
     "{\"connect\":{\"token\":\"eyJ…\",\"name\":\"js\"},\"id\":11}\n"
     "{\"subscribe\":{\"channel\":\"" CH "\",\"positioned\":true,\"recoverable\":true,"
     "\"join_leave\":true,\"flag\":1,\"recover\":true,\"offset\":4,\"epoch\":\"a55de5c3\"},"
     "\"id\":12}",
     0,
     {{PROTO_CONNECT, 11, 0}, {PROTO_SUBSCRIBE, 12, 0}},
     2,
     0},
    {"§9 refresh", "{\"refresh\":{\"token\":\"eyJ…\"},\"id\":2}", 0, {{PROTO_REFRESH, 2, 0}}, 1, 0},
    {"§9 sub_refresh",
     "{\"sub_refresh\":{\"channel\":\"$check-subref-f45141\",\"token\":\"eyJ…\"},\"id\":13}",
     0,
     {{PROTO_SUB_REFRESH, 13, 0}},
     1,
     0},
    {"§2 send without id", "{\"send\":{\"data\":{\"x\":1}}}", 0, {{PROTO_SEND, 0, 0}}, 1, 0},
    {"§7 pong", "{}", 0, {{PROTO_PONG, 0, 0}}, 1, 0},
    {"rpc", "{\"rpc\":{\"method\":\"m\",\"data\":[1]},\"id\":7}", 0, {{PROTO_RPC, 7, 0}}, 1, 0},
    /* Framing (§2). */
    {"one trailing newline", "{}\n", 0, {{PROTO_PONG, 0, 0}}, 1, 0},
    {"two trailing newlines", "{}\n\n", 0, {{PROTO_PONG, 0, 0}}, 1, -EPROTO},
    {"empty line between", "{}\n\n{}", 0, {{PROTO_PONG, 0, 0}}, 1, -EPROTO},
    {"leading newline", "\n{}", 0, {{0}}, 0, -EPROTO},
    {"empty frame", "", 0, {{0}}, 0, -EPROTO},
    {"newline alone", "\n", 0, {{0}}, 0, -EPROTO},
    {"CRLF separators", "{}\r\n{}\r\n", 0, {{PROTO_PONG, 0, 0}, {PROTO_PONG, 0, 0}}, 2, 0},
    {"spaces around",
     "  {\"id\" : 5 , \"presence\" : { \"channel\" : \"c\" } }  ",
     0,
     {{PROTO_PRESENCE, 5, 0}},
     1,
     0},
    {"two objects on one line", "{}{}", 0, {{0}}, 0, -EPROTO},
    {"not JSON", "{\"id\":", 0, {{0}}, 0, -EPROTO},
    {"an array", "[{\"id\":1}]", 0, {{0}}, 0, -EPROTO},
    {"a string", "\"connect\"", 0, {{0}}, 0, -EPROTO},
    {"bad line after good ones stops the frame",
     "{\"presence\":{\"channel\":\"c\"},\"id\":1}\n{\"nope\":{},\"id\":2}\n"
     "{\"presence\":{\"channel\":\"c\"},\"id\":3}",
     0,
     {{PROTO_PRESENCE, 1, 0}},
     1,
     -EPROTO},
    {"limit on commands", "{}\n{}\n{}", 2, {{PROTO_PONG, 0, 0}, {PROTO_PONG, 0, 0}}, 2, -E2BIG},
    {"commands at the limit", "{}\n{}", 2, {{PROTO_PONG, 0, 0}, {PROTO_PONG, 0, 0}}, 2, 0},
    /* ids and methods (§2). */
    {"id without method", "{\"id\":1}", 0, {{0}}, 0, -EPROTO},
    {"unknown method", "{\"foo\":{},\"id\":1}", 0, {{0}}, 0, -EPROTO},
    {"unknown key without id is a pong", "{\"foo\":{}}", 0, {{PROTO_PONG, 0, 0}}, 1, 0},
    {"id 0 is none", "{\"id\":0}", 0, {{PROTO_PONG, 0, 0}}, 1, 0},
    {"method without id", "{\"publish\":{\"channel\":\"c\",\"data\":1}}", 0, {{0}}, 0, -EPROTO},
    {"connect without id", "{\"connect\":{}}", 0, {{0}}, 0, -EPROTO},
    {"send with id", "{\"send\":{\"data\":1},\"id\":4}", 0, {{PROTO_SEND, 4, 0}}, 1, 0},
    {"id max",
     "{\"presence\":{\"channel\":\"c\"},\"id\":4294967295}",
     0,
     {{PROTO_PRESENCE, 4294967295u, 0}},
     1,
     0},
    {"id over uint32",
     "{\"presence\":{\"channel\":\"c\"},\"id\":4294967296}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"id negative", "{\"presence\":{\"channel\":\"c\"},\"id\":-1}", 0, {{0}}, 0, -EPROTO},
    {"id a real", "{\"presence\":{\"channel\":\"c\"},\"id\":1.0}", 0, {{0}}, 0, -EPROTO},
    {"id a string", "{\"presence\":{\"channel\":\"c\"},\"id\":\"1\"}", 0, {{0}}, 0, -EPROTO},
    {"two methods",
     "{\"connect\":{},\"presence\":{\"channel\":\"c\"},\"id\":1}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"method not an object", "{\"connect\":[],\"id\":1}", 0, {{0}}, 0, -EPROTO},
    {"method null", "{\"connect\":null,\"id\":1}", 0, {{0}}, 0, -EPROTO},
    {"escaped method key",
     "{\"pub\\u006cish\":{\"channel\":\"c\",\"data\":1},\"id\":1}",
     0,
     {{PROTO_PUBLISH, 1, 0}},
     1,
     0},
    {"duplicate key", "{\"id\":1,\"id\":2,\"presence\":{\"channel\":\"c\"}}", 0, {{0}}, 0, -EPROTO},
    {"ping method", "{\"ping\":{},\"id\":3}", 0, {{PROTO_PING, 3, 108}}, 1, 0},
    /* Fields. */
    {"empty channel", "{\"subscribe\":{\"channel\":\"\"},\"id\":1}", 0, {{0}}, 0, -EPROTO},
    {"missing channel", "{\"history\":{},\"id\":1}", 0, {{0}}, 0, -EPROTO},
    {"channel a number", "{\"subscribe\":{\"channel\":1},\"id\":1}", 0, {{0}}, 0, -EPROTO},
    {"channel with NUL",
     "{\"subscribe\":{\"channel\":\"a\\u0000b\"},\"id\":1}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"channel at the limit",
     "{\"subscribe\":{\"channel\":\"" LONG_CH "\"},\"id\":1}",
     0,
     {{PROTO_SUBSCRIBE, 1, 0}},
     1,
     0},
    {"channel too long",
     "{\"subscribe\":{\"channel\":\"" LONG_CH "b\"},\"id\":1}",
     0,
     {{PROTO_SUBSCRIBE, 1, 106}},
     1,
     0},
    {"publish without data",
     "{\"publish\":{\"channel\":\"c\"},\"id\":1}",
     0,
     {{PROTO_PUBLISH, 1, 107}},
     1,
     0},
    {"publish null data",
     "{\"publish\":{\"channel\":\"c\",\"data\":null},\"id\":1}",
     0,
     {{PROTO_PUBLISH, 1, 0}},
     1,
     0},
    {"bool a string",
     "{\"subscribe\":{\"channel\":\"c\",\"recover\":\"yes\"},\"id\":1}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"null reads as absent",
     "{\"subscribe\":{\"channel\":\"c\",\"recover\":null,\"epoch\":null},"
     "\"id\":1}",
     0,
     {{PROTO_SUBSCRIBE, 1, 0}},
     1,
     0},
    {"offset negative",
     "{\"subscribe\":{\"channel\":\"c\",\"offset\":-1},\"id\":1}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"offset a real",
     "{\"subscribe\":{\"channel\":\"c\",\"offset\":1.5},\"id\":1}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"offset uint64 max",
     "{\"subscribe\":{\"channel\":\"c\",\"offset\":18446744073709551615},\"id\":1}",
     0,
     {{PROTO_SUBSCRIBE, 1, 0}},
     1,
     0},
    {"offset over uint64",
     "{\"subscribe\":{\"channel\":\"c\",\"offset\":18446744073709551616},\"id\":1}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"limit over int32",
     "{\"history\":{\"channel\":\"c\",\"limit\":2147483648},\"id\":1}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"since not an object",
     "{\"history\":{\"channel\":\"c\",\"since\":4},\"id\":1}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"refresh without token", "{\"refresh\":{},\"id\":1}", 0, {{0}}, 0, -EPROTO},
    {"sub_refresh empty token",
     "{\"sub_refresh\":{\"channel\":\"c\",\"token\":\"\"},\"id\":1}",
     0,
     {{0}},
     0,
     -EPROTO},
    {"connect subs not a map", "{\"connect\":{\"subs\":[]},\"id\":1}", 0, {{0}}, 0, -EPROTO},
    {"unknown fields ignored",
     "{\"subscribe\":{\"channel\":\"c\",\"delta\":\"fossil\",\"tf\":{\"x\":[1]},\"flag\":3},"
     "\"id\":1,\"extra\":true}",
     0,
     {{PROTO_SUBSCRIBE, 1, 0}},
     1,
     0},
    {"NUL inside data is fine",
     "{\"publish\":{\"channel\":\"c\",\"data\":\"a\\u0000b\"},\"id\":1}",
     0,
     {{PROTO_PUBLISH, 1, 0}},
     1,
     0},
};

static void decode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(decode_rows) / sizeof(decode_rows[0]); i++) {
        const struct decode_row *row = &decode_rows[i];
        size_t len = strlen(row->frame);
        char *f = frame_copy(row->frame, len);
        struct proto_reader r;
        struct proto_cmd c;
        proto_reader_init(&r, f, len, row->max_cmds);
        int k = 0, rc;
        while ((rc = proto_read(&r, &c)) == 1) {
            if (k >= row->nr)
                fail_msg("%s: command %d is one too many", row->what, k);
            const struct want_cmd *w = &row->cmds[k];
            if (c.method != w->method || c.id != w->id || c.error != w->error)
                fail_msg("%s: command %d is method %d id %u error %u", row->what, k, c.method, c.id,
                         c.error);
            proto_cmd_fini(&c);
            k++;
        }
        if (k != row->nr || rc != row->end)
            fail_msg("%s: %d commands then %d, want %d then %d", row->what, k, rc, row->nr,
                     row->end);
        /* Errors are sticky, and the end stays the end. */
        assert_int_equal(proto_read(&r, &c), row->end);
        assert_int_equal(c.method, 0);
        free(f);
    }
}

/* Decodes the single command of <frame> into *<c> (release with proto_cmd_fini). */
static char *decode_one(const char *frame, struct proto_cmd *c)
{
    char *f = frame_copy(frame, strlen(frame));
    struct proto_reader r;
    proto_reader_init(&r, f, strlen(frame), 0);
    assert_int_equal(proto_read(&r, c), 1);
    return f;
}

/* ---------------------------------------------------------------------------------------------
 * Decoded fields
 * -------------------------------------------------------------------------------------------*/

static void fields_connect_and_subscribe(void **state)
{
    (void)state;
    const char *frame = decode_rows[9].frame; /* §8 reconnect with recovery */
    size_t len = strlen(frame);
    char *f = frame_copy(frame, len);
    struct proto_reader r;
    struct proto_cmd c;
    proto_reader_init(&r, f, len, 0);
    assert_int_equal(proto_read(&r, &c), 1);
    assert_str(c.token, "eyJ…");
    assert_str(c.name, "js");
    assert_str(c.version, NULL);
    assert_str(c.data, NULL);
    assert_int_equal(c.nr_subs, 0);
    proto_cmd_fini(&c);
    assert_int_equal(proto_read(&r, &c), 1);
    assert_str(c.channel, CH);
    assert_true(c.positioned && c.recoverable && c.join_leave && c.recover);
    assert_int_equal(c.flag, 1);
    assert_int_equal(c.offset, 4);
    assert_str(c.epoch, "a55de5c3");
    assert_str(c.token, NULL);
    proto_cmd_fini(&c);
    assert_int_equal(proto_read(&r, &c), 0);
    free(f);
}

static void fields_publish_data_verbatim(void **state)
{
    (void)state;
    struct proto_cmd c;
    /* Bytes kept as sent: spacing, escapes, a real, and an integer past uint64. */
    char *f = decode_one("{\"publish\":{\"data\": { \"t\" : \"h\\u00e9\\/\" , \"r\":0.1,"
                         "\"n\":123456789012345678901234567890 } ,\"channel\":\"c\"},\"id\":7}",
                         &c);
    assert_int_equal(c.id, 7);
    assert_int_equal(c.method, PROTO_PUBLISH);
    assert_str(c.channel, "c");
    assert_str(c.data,
               "{ \"t\" : \"h\\u00e9\\/\" , \"r\":0.1,\"n\":123456789012345678901234567890 }");
    /* The data borrows the frame. */
    assert_true(c.data.p > f && c.data.p < f + 100);
    proto_cmd_fini(&c);
    free(f);

    f = decode_one("{\"send\":{\"data\":\"text\"}}", &c);
    assert_str(c.data, "\"text\"");
    proto_cmd_fini(&c);
    free(f);
    f = decode_one("{\"publish\":{\"channel\":\"c\",\"data\":null},\"id\":1}", &c);
    assert_str(c.data, "null");
    proto_cmd_fini(&c);
    free(f);
}

static void fields_history(void **state)
{
    (void)state;
    struct proto_cmd c;
    char *f = decode_one(decode_rows[7].frame, &c); /* §5 history since */
    assert_true(c.has_since);
    assert_int_equal(c.since_offset, 2);
    assert_str(c.since_epoch, "a55de5c3");
    assert_int_equal(c.limit, 10);
    assert_false(c.reverse);
    proto_cmd_fini(&c);
    free(f);
    f = decode_one(decode_rows[6].frame, &c); /* §5 history reverse */
    assert_false(c.has_since);
    assert_int_equal(c.limit, 2);
    assert_true(c.reverse);
    proto_cmd_fini(&c);
    free(f);
    f = decode_one("{\"history\":{\"channel\":\"c\",\"limit\":-1,\"since\":{}},\"id\":2}", &c);
    assert_int_equal(c.limit, -1);
    assert_true(c.has_since);
    assert_int_equal(c.since_offset, 0);
    assert_str(c.since_epoch, NULL);
    proto_cmd_fini(&c);
    free(f);
    /* A uint64 offset beyond int64 is read exactly, and the id beside it too. */
    f = decode_one("{\"history\":{\"channel\":\"c\",\"since\":{\"offset\":18446744073709551615,"
                   "\"epoch\":\"e\"}},\"id\":3}",
                   &c);
    assert_int_equal(c.id, 3);
    assert_true(c.since_offset == UINT64_MAX);
    proto_cmd_fini(&c);
    free(f);
}

static void fields_connect_subs_and_rpc(void **state)
{
    (void)state;
    struct proto_cmd c;
    char *f = decode_one("{\"connect\":{\"token\":\"t\",\"data\":{\"a\":[1]},\"version\":\"1.0\","
                         "\"subs\":{\"news\":{\"recover\":true,\"offset\":9,\"epoch\":\"ep\"},"
                         "\"x\":{}},\"headers\":{\"h\":\"v\"}},\"id\":1}",
                         &c);
    assert_str(c.data, "{\"a\":[1]}");
    assert_str(c.version, "1.0");
    assert_int_equal(c.nr_subs, 2);
    assert_str(c.subs[0].channel, "news");
    assert_true(c.subs[0].recover);
    assert_int_equal(c.subs[0].offset, 9);
    assert_str(c.subs[0].epoch, "ep");
    assert_str(c.subs[1].channel, "x");
    assert_false(c.subs[1].recover);
    proto_cmd_fini(&c);
    free(f);
    f = decode_one("{\"rpc\":{\"method\":\"getUser\",\"data\":{\"id\":1}},\"id\":5}", &c);
    assert_str(c.rpc_method, "getUser");
    assert_str(c.data, "{\"id\":1}");
    proto_cmd_fini(&c);
    free(f);
    f = decode_one(decode_rows[11].frame, &c); /* §9 sub_refresh */
    assert_str(c.channel, "$check-subref-f45141");
    assert_str(c.token, "eyJ…");
    proto_cmd_fini(&c);
    free(f);
}

static void close_codes(void **state)
{
    (void)state;
    assert_int_equal(proto_close_code(-EPROTO), 3501);
    assert_int_equal(proto_close_code(-E2BIG), 3501);
    assert_int_equal(proto_close_code(-ENOMEM), 3004);
    assert_string_equal(proto_close_reason(3501), "bad request");
    assert_string_equal(proto_close_reason(3500), "invalid token");
    assert_string_equal(proto_close_reason(3012), "no pong");
    assert_string_equal(proto_close_reason(1000), "");
    assert_string_equal(proto_error_message(112), "unrecoverable position");
    assert_string_equal(proto_error_message(100), "internal server error");
    assert_string_equal(proto_error_message(113), "concurrent pagination");
    assert_string_equal(proto_error_message(99), "unknown error");
    assert_string_equal(proto_error_message(114), "unknown error");
}

/* ---------------------------------------------------------------------------------------------
 * Encoding, byte for byte
 * -------------------------------------------------------------------------------------------*/

static void assert_buf(struct proto_buf *b, const char *want)
{
    assert_false(b->oom);
    if (b->len != strlen(want) || memcmp(b->p, want, b->len) != 0)
        fail_msg("got  %.*s\nwant %s", (int)b->len, b->p, want);
    proto_buf_fini(b);
}

static const struct proto_client_info alice = {
    .user = {"u1-f45141", 9},
    .client = {"694afad6-…", 12},
    .conn_info = {"{\"name\":\"Alice\"}", 16},
};
static const struct proto_client_info bob = {
    .user = {"u2-f45141", 9},
    .client = {"f70787a6-…", 12},
    .conn_info = {"{\"name\":\"Bob\"}", 14},
};

static void encode_connect(void **state)
{
    (void)state;
    struct proto_buf b = {0};
    struct proto_connect_result r = {
        .client = S("694afad6-da2e-428a-b8f7-bbbc0a6484a5"),
        .version = S("fake-0.0.0"),
        .expires = true,
        .ttl = 3600,
        .ping = 2,
        .pong = true,
    };
    assert_int_equal(proto_encode_connect(&b, 1, &r, NULL, 0), 0);
    assert_buf(&b, "{\"id\":1,\"connect\":{\"client\":\"694afad6-da2e-428a-b8f7-bbbc0a6484a5\","
                   "\"version\":\"fake-0.0.0\",\"expires\":true,\"ttl\":3600,\"ping\":2,"
                   "\"pong\":true}}");
    /* §8, the reconnect (client id as the doc shortens it). */
    r.client = S("3f09f840-…");
    r.ttl = 3595;
    proto_encode_connect(&b, 11, &r, NULL, 0);
    assert_buf(&b, "{\"id\":11,\"connect\":{\"client\":\"3f09f840-…\",\"version\":\"fake-0.0.0\","
                   "\"expires\":true,\"ttl\":3595,\"ping\":2,\"pong\":true}}");
    /* Only the client when nothing else is set; data and server-side subs in their place. */
    struct proto_connect_result min = {.client = S("c")};
    proto_encode_connect(&b, 4, &min, NULL, 0);
    assert_buf(&b, "{\"id\":4,\"connect\":{\"client\":\"c\"}}");
    struct proto_subscribe_result empty = {0}, pos = {.positioned = true, .epoch = S("e")};
    struct proto_server_sub subs[] = {{S("news"), &empty}, {S("feed"), &pos}};
    min.data = S("{\"k\":1}");
    min.ping = 25;
    proto_encode_connect(&b, 4, &min, subs, 2);
    assert_buf(&b,
               "{\"id\":4,\"connect\":{\"client\":\"c\",\"data\":{\"k\":1},\"subs\":{\"news\":{},"
               "\"feed\":{\"epoch\":\"e\",\"positioned\":true}},\"ping\":25}}");
    /* §9 refresh (client and version as the doc shortens them). */
    struct proto_connect_result ref = {
        .client = S("…"), .version = S("…"), .expires = true, .ttl = 600};
    proto_encode_refresh(&b, 2, &ref);
    assert_buf(&b, "{\"id\":2,\"refresh\":{\"client\":\"…\",\"version\":\"…\",\"expires\":true,"
                   "\"ttl\":600}}");
}

static void encode_subscribe(void **state)
{
    (void)state;
    struct proto_buf b = {0};
    struct proto_subscribe_result r = {
        .recoverable = true, .epoch = S("a55de5c3"), .positioned = true};
    proto_encode_subscribe(&b, 2, &r);
    assert_buf(&b, "{\"id\":2,\"subscribe\":{\"recoverable\":true,\"epoch\":\"a55de5c3\","
                   "\"positioned\":true}}");
    struct proto_subscribe_result none = {0};
    proto_encode_subscribe(&b, 2, &none);
    assert_buf(&b, "{\"id\":2,\"subscribe\":{}}");

    /* §8 recovered subscribe; the doc elides the info and the later publications' fields. */
    struct proto_buf pb[3] = {{0}};
    struct proto_str pubs[3];
    const char *texts[3] = {"\"missed\",\"n\":5", "\"missed\",\"n\":6", "\"missed\",\"n\":7"};
    for (int i = 0; i < 3; i++) {
        char data[64];
        snprintf(data, sizeof(data), "{\"text\":%s}", texts[i]);
        struct proto_pub p = {.data = S(data), .info = &alice, .offset = 5 + (uint64_t)i};
        assert_int_equal(proto_encode_pub(&pb[i], &p), 0);
        pubs[i] = (struct proto_str){pb[i].p, pb[i].len};
    }
    r.offset = 4;
    r.was_recovering = true;
    r.recovered = true;
    r.pubs = pubs;
    r.nr_pubs = 3;
    proto_encode_subscribe(&b, 12, &r);
    assert_buf(&b, "{\"id\":12,\"subscribe\":{\"recoverable\":true,\"epoch\":\"a55de5c3\","
                   "\"offset\":4,\"positioned\":true,\"was_recovering\":true,\"recovered\":true,"
                   "\"publications\":["
                   "{\"data\":{\"text\":\"missed\",\"n\":5},\"info\":{\"user\":\"u1-f45141\","
                   "\"client\":\"694afad6-…\",\"conn_info\":{\"name\":\"Alice\"}},\"offset\":5},"
                   "{\"data\":{\"text\":\"missed\",\"n\":6},\"info\":{\"user\":\"u1-f45141\","
                   "\"client\":\"694afad6-…\",\"conn_info\":{\"name\":\"Alice\"}},\"offset\":6},"
                   "{\"data\":{\"text\":\"missed\",\"n\":7},\"info\":{\"user\":\"u1-f45141\","
                   "\"client\":\"694afad6-…\",\"conn_info\":{\"name\":\"Alice\"}},\"offset\":7}"
                   "]}}");
    for (int i = 0; i < 3; i++)
        proto_buf_fini(&pb[i]);
    /* Expiring subscription token and data. */
    struct proto_subscribe_result t = {.expires = true, .ttl = 60, .data = S("[1]")};
    proto_encode_subscribe(&b, 3, &t);
    assert_buf(&b, "{\"id\":3,\"subscribe\":{\"expires\":true,\"ttl\":60,\"data\":[1]}}");
    proto_encode_sub_refresh(&b, 13, true, 2);
    assert_buf(&b, "{\"id\":13,\"sub_refresh\":{\"expires\":true,\"ttl\":2}}");
}

static void encode_small_replies(void **state)
{
    (void)state;
    struct proto_buf b = {0};
    proto_encode_empty(&b, 3, PROTO_PUBLISH);
    assert_buf(&b, "{\"id\":3,\"publish\":{}}");
    proto_encode_empty(&b, 9, PROTO_UNSUBSCRIBE);
    assert_buf(&b, "{\"id\":9,\"unsubscribe\":{}}");
    proto_encode_empty(&b, 7, PROTO_RPC);
    assert_buf(&b, "{\"id\":7,\"rpc\":{}}");
    proto_encode_presence_stats(&b, 5, 2, 2);
    assert_buf(&b, "{\"id\":5,\"presence_stats\":{\"num_clients\":2,\"num_users\":2}}");
    proto_encode_presence_stats(&b, 5, 0, 0);
    assert_buf(&b, "{\"id\":5,\"presence_stats\":{\"num_clients\":0,\"num_users\":0}}");
    proto_encode_error(&b, 10, 112, NULL);
    assert_buf(&b, "{\"id\":10,\"error\":{\"code\":112,\"message\":\"unrecoverable position\"}}");
    proto_encode_error(&b, 1, 109, NULL);
    assert_buf(&b, "{\"id\":1,\"error\":{\"code\":109,\"message\":\"token expired\"}}");
    proto_encode_error(&b, 2, 100, NULL);
    assert_buf(&b, "{\"id\":2,\"error\":{\"code\":100,\"message\":\"internal server error\","
                   "\"temporary\":true}}");
    proto_encode_error(&b, 2, 111, "slow \"down\"");
    assert_buf(&b, "{\"id\":2,\"error\":{\"code\":111,\"message\":\"slow \\\"down\\\"\","
                   "\"temporary\":true}}");
    proto_encode_rpc(&b, 7, S(NULL));
    assert_buf(&b, "{\"id\":7,\"rpc\":{}}");
    proto_encode_rpc(&b, 7, S("{\"r\":1}"));
    assert_buf(&b, "{\"id\":7,\"rpc\":{\"data\":{\"r\":1}}}");
}

static void encode_presence_and_history(void **state)
{
    (void)state;
    struct proto_buf b = {0};
    proto_encode_presence_begin(&b, 4);
    proto_encode_presence_add(&b, &alice);
    proto_encode_presence_add(&b, &bob);
    proto_encode_presence_end(&b);
    assert_buf(&b, "{\"id\":4,\"presence\":{\"presence\":{"
                   "\"694afad6-…\":{\"user\":\"u1-f45141\",\"client\":\"694afad6-…\","
                   "\"conn_info\":{\"name\":\"Alice\"}},"
                   "\"f70787a6-…\":{\"user\":\"u2-f45141\",\"client\":\"f70787a6-…\","
                   "\"conn_info\":{\"name\":\"Bob\"}}}}}");
    proto_encode_presence_begin(&b, 4);
    proto_encode_presence_end(&b);
    assert_buf(&b, "{\"id\":4,\"presence\":{\"presence\":{}}}");
    /* Anonymous: user "" still written; chan_info after conn_info. */
    struct proto_client_info anon = {.client = S("c1"), .chan_info = S("7")};
    proto_encode_presence_begin(&b, 1);
    proto_encode_presence_add(&b, &anon);
    proto_encode_presence_end(&b);
    assert_buf(&b, "{\"id\":1,\"presence\":{\"presence\":{\"c1\":{\"user\":\"\",\"client\":\"c1\","
                   "\"chan_info\":7}}}}");

    proto_encode_history(&b, 6, NULL, 0, S("a55de5c3"), 4);
    assert_buf(&b,
               "{\"id\":6,\"history\":{\"publications\":[],\"epoch\":\"a55de5c3\",\"offset\":4}}");
    /* §5 history reverse, the elided publications filled with data only. */
    struct proto_str pubs[] = {S("{\"data\":4,\"offset\":4}"), S("{\"data\":3,\"offset\":3}")};
    proto_encode_history(&b, 8, pubs, 2, S("a55de5c3"), 4);
    assert_buf(&b, "{\"id\":8,\"history\":{\"publications\":[{\"data\":4,\"offset\":4},"
                   "{\"data\":3,\"offset\":3}],\"epoch\":\"a55de5c3\",\"offset\":4}}");
    /* An empty stream still writes epoch and offset. */
    proto_encode_history(&b, 1, NULL, 0, S(""), 0);
    assert_buf(&b, "{\"id\":1,\"history\":{\"publications\":[],\"epoch\":\"\",\"offset\":0}}");
}

static void encode_pushes(void **state)
{
    (void)state;
    struct proto_buf b = {0};
    struct proto_str at;
    struct proto_pub p = {.data = S("{\"text\":\"hello\",\"n\":1}"), .info = &alice, .offset = 1};
    assert_int_equal(proto_encode_pub_push(&b, S(CH), &p, &at), 0);
    const char *want_pub =
        "{\"data\":{\"text\":\"hello\",\"n\":1},\"info\":{\"user\":\"u1-f45141\","
        "\"client\":\"694afad6-…\",\"conn_info\":{\"name\":\"Alice\"}},"
        "\"offset\":1}";
    /* The span names the Publication inside the push, for history. */
    assert_str(at, want_pub);
    char want[512];
    snprintf(want, sizeof(want), "{\"push\":{\"channel\":\"" CH "\",\"pub\":%s}}", want_pub);
    assert_buf(&b, want);

    struct proto_pub api = {.data = S("{\"text\":\"from api\"}"), .offset = 8};
    proto_encode_pub_push(&b, S(CH), &api, NULL);
    assert_buf(&b, "{\"push\":{\"channel\":\"" CH "\",\"pub\":{\"data\":{\"text\":\"from api\"},"
                   "\"offset\":8}}}");
    /* A channel without history: no offset. */
    struct proto_pub plain = {.data = S("\"raw text\"")};
    proto_encode_pub_push(&b, S("lobby"), &plain, NULL);
    assert_buf(&b, "{\"push\":{\"channel\":\"lobby\",\"pub\":{\"data\":\"raw text\"}}}");

    proto_encode_join_leave(&b, S(CH), true, &bob);
    assert_buf(&b, "{\"push\":{\"channel\":\"" CH "\",\"join\":{\"info\":{\"user\":\"u2-f45141\","
                   "\"client\":\"f70787a6-…\",\"conn_info\":{\"name\":\"Bob\"}}}}}");
    proto_encode_join_leave(&b, S(CH), false, &bob);
    assert_buf(&b, "{\"push\":{\"channel\":\"" CH "\",\"leave\":{\"info\":{\"user\":\"u2-f45141\","
                   "\"client\":\"f70787a6-…\",\"conn_info\":{\"name\":\"Bob\"}}}}}");
    proto_encode_message_push(&b, S("{\"hi\":1}"));
    assert_buf(&b, "{\"push\":{\"message\":{\"data\":{\"hi\":1}}}}");
    proto_encode_unsubscribe_push(&b, S("$check-priv-f45141"), 2000, "server unsubscribe");
    assert_buf(&b, "{\"push\":{\"channel\":\"$check-priv-f45141\",\"unsubscribe\":{\"code\":2000,"
                   "\"reason\":\"server unsubscribe\"}}}");
    proto_encode_disconnect_push(&b, 3001, "shutdown", true);
    assert_buf(&b, "{\"push\":{\"disconnect\":{\"code\":3001,\"reason\":\"shutdown\","
                   "\"reconnect\":true}}}");
    proto_encode_disconnect_push(&b, 4500, "bye", false);
    assert_buf(&b, "{\"push\":{\"disconnect\":{\"code\":4500,\"reason\":\"bye\"}}}");
}

static void encode_pub_span_after_growth(void **state)
{
    (void)state;
    /* Whatever the buffer held before, and wherever it has to grow, the span names the
     * Publication in the final buffer (the closing braces may move it). */
    struct proto_pub p = {
        .data = S("{\"k\":\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\"}"), .offset = 42};
    struct proto_buf want = {0};
    proto_encode_pub(&want, &p);
    for (size_t pad = 0; pad < 1200; pad++) {
        struct proto_buf b = {0};
        struct proto_str at;
        for (size_t i = 0; i < pad; i++)
            proto_buf_put(&b, " ", 1);
        assert_int_equal(proto_encode_pub_push(&b, S("c"), &p, &at), 0);
        assert_true(at.p >= b.p && at.p + at.len <= b.p + b.len);
        assert_int_equal(at.len, want.len);
        assert_memory_equal(at.p, want.p, want.len);
        proto_buf_fini(&b);
    }
    proto_buf_fini(&want);
}

static void encode_newlines_in_raw_json(void **state)
{
    (void)state;
    /* Pretty-printed JSON (a server API body, token claims) must not cut the message (§2). */
    struct proto_buf b = {0};
    struct proto_client_info ci = {
        .user = S("u"), .client = S("c"), .conn_info = S("{\n \"n\": 1\n}")};
    struct proto_pub p = {.data = S("{\r\n  \"text\": \"a\\nb\"\n}"), .info = &ci, .offset = 2};
    proto_encode_pub_push(&b, S("c"), &p, NULL);
    assert_buf(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":{\r   \"text\": \"a\\nb\" },"
                   "\"info\":{\"user\":\"u\",\"client\":\"c\",\"conn_info\":{  \"n\": 1 }},"
                   "\"offset\":2}}}");
    struct proto_str pubs[] = {S("{\"data\":\n1}")};
    proto_encode_history(&b, 1, pubs, 1, S("e"), 1);
    assert_buf(&b, "{\"id\":1,\"history\":{\"publications\":[{\"data\": 1}],\"epoch\":\"e\","
                   "\"offset\":1}}");
}

static void raw_room_data(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        bool text;
        const char *want;
    } rows[] = {
        {"{\"a\":1}", 7, true, "{\"a\":1}"},
        {" 12 ", 4, true, "12"},
        {"\"quoted\"", 8, true, "\"quoted\""},
        {"[1,\n2]\n", 7, true, "[1, 2]"},
        {"hello", 5, true, "\"hello\""},
        {"[1,2", 4, true, "\"[1,2\""},
        {"", 0, true, "\"\""},
        {"{\"n\":123456789012345678901234567890}", 36, true,
         "{\"n\":123456789012345678901234567890}"},
        {"{\"a\":1}", 7, false, "\"{\\\"a\\\":1}\""}, /* binary: always a string */
        {"\xff\x00", 2, false, "\"\\ufffd\\u0000\""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct proto_buf b = {0};
        char *in = frame_copy(rows[i].in, rows[i].len);
        assert_int_equal(proto_buf_raw_data(&b, in, rows[i].len, rows[i].text), 0);
        free(in);
        assert_buf(&b, rows[i].want);
    }
}

static void encode_batch(void **state)
{
    (void)state;
    /* §2: a reply and two pushes in one frame, '\n' between, none after. */
    struct proto_buf b = {0};
    assert_int_equal(proto_buf_sep(&b), 0);
    proto_encode_empty(&b, 3, PROTO_PUBLISH);
    proto_buf_sep(&b);
    proto_encode_message_push(&b, S("1"));
    proto_buf_sep(&b);
    proto_encode_message_push(&b, S("2"));
    assert_buf(&b, "{\"id\":3,\"publish\":{}}\n{\"push\":{\"message\":{\"data\":1}}}\n"
                   "{\"push\":{\"message\":{\"data\":2}}}");
}

static void encode_strings(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } rows[] = {
        {"plain", 5, "\"plain\""},
        {"q\"b\\s/", 6, "\"q\\\"b\\\\s/\""},
        {"\n\r\t\b\f\x01\x1f\x7f", 8, "\"\\n\\r\\t\\u0008\\u000c\\u0001\\u001f\x7f\""},
        {"a\0b", 3, "\"a\\u0000b\""},
        {"é€😀", 9, "\"é€😀\""},
        {"\xff", 1, "\"\\ufffd\""},
        {"\xc3", 1, "\"\\ufffd\""},                                  /* truncated */
        {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},                       /* overlong */
        {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""},            /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* > U+10FFFF */
        {"a\xe2\x82z", 4, "\"a\\ufffd\\ufffdz\""},
        {"", 0, "\"\""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct proto_buf b = {0};
        assert_int_equal(proto_buf_jstr(&b, rows[i].in, rows[i].len), 0);
        /* Whatever the input, jansson reads the output back as one string. */
        json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        assert_non_null(j);
        assert_true(json_is_string(j));
        json_decref(j);
        assert_buf(&b, rows[i].want);
    }
    /* No string at all is the empty string (clang's UBSan flags NULL + 0). */
    struct proto_buf e = {0};
    assert_int_equal(proto_buf_jstr(&e, NULL, 0), 0);
    assert_buf(&e, "\"\"");
    /* Channel names are escaped in pushes too. */
    struct proto_buf b = {0};
    proto_encode_message_push(&b, S(NULL));
    assert_buf(&b, "{\"push\":{\"message\":{}}}");
    struct proto_pub p = {.data = S("1")};
    proto_encode_pub_push(&b, S("a\"b"), &p, NULL);
    assert_buf(&b, "{\"push\":{\"channel\":\"a\\\"b\",\"pub\":{\"data\":1}}}");
}

static void encode_round_trip(void **state)
{
    (void)state;
    /* A publish decoded and its data pushed gives the data's bytes unchanged (§5). */
    struct proto_cmd c;
    char *f = decode_one(decode_rows[2].frame, &c); /* §5 publish */
    struct proto_buf b = {0};
    struct proto_pub p = {.data = c.data, .info = &alice, .offset = 1};
    proto_encode_pub_push(&b, c.channel, &p, NULL);
    assert_buf(&b, "{\"push\":{\"channel\":\"" CH "\",\"pub\":{\"data\":{\"text\":\"hello\","
                   "\"n\":1},\"info\":{\"user\":\"u1-f45141\",\"client\":\"694afad6-…\","
                   "\"conn_info\":{\"name\":\"Alice\"}},\"offset\":1}}}");
    proto_cmd_fini(&c);
    free(f);
}

/* ---------------------------------------------------------------------------------------------
 * proto_pub_frame: a raw room message as a protocol subscriber's pub push (ARCHITECTURE.md: JSON
 * text passes as JSON, trimmed; any other message as a JSON string)
 */

struct pub_frame_row {
    const char *what;
    uint8_t opcode;
    const char *payload;
    size_t len; /* 0: strlen */
    const char *want;
};

static const struct pub_frame_row pub_frame_rows[] = {
    {"JSON object", WS_OP_TEXT, "{\"a\":1}", 0,
     "{\"push\":{\"channel\":\"lobby\",\"pub\":{\"data\":{\"a\":1}}}}"},
    {"JSON, trimmed", WS_OP_TEXT, "  [1, 2]\n", 0,
     "{\"push\":{\"channel\":\"lobby\",\"pub\":{\"data\":[1, 2]}}}"},
    {"JSON number", WS_OP_TEXT, "42", 0,
     "{\"push\":{\"channel\":\"lobby\",\"pub\":{\"data\":42}}}"},
    {"plain text", WS_OP_TEXT, "hi \"you\"", 0,
     "{\"push\":{\"channel\":\"lobby\",\"pub\":{\"data\":\"hi \\\"you\\\"\"}}}"},
    {"empty text", WS_OP_TEXT, "", 0, "{\"push\":{\"channel\":\"lobby\",\"pub\":{\"data\":\"\"}}}"},
    {"binary JSON stays a string", WS_OP_BINARY, "{}", 0,
     "{\"push\":{\"channel\":\"lobby\",\"pub\":{\"data\":\"{}\"}}}"},
};

static void pub_frame_from_raw(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pub_frame_rows) / sizeof(pub_frame_rows[0]); i++) {
        const struct pub_frame_row *row = &pub_frame_rows[i];
        size_t len = row->len ? row->len : strlen(row->payload);
        print_message("row: %s\n", row->what);
        struct msg *m = msg_frame(row->opcode, (const uint8_t *)row->payload, len, "lobby", 5);
        assert_non_null(m);
        struct msg *pm = proto_pub_frame(m, NULL, NULL);
        assert_non_null(pm);
        assert_int_equal(pm->opcode, WS_OP_TEXT);
        size_t plen;
        const uint8_t *p = msg_payload(pm, &plen);
        assert_int_equal(plen, strlen(row->want));
        assert_memory_equal(p, row->want, plen);
        /* The shared message is left as it was. */
        size_t olen;
        assert_memory_equal(msg_payload(m, &olen), row->payload, len);
        assert_int_equal(olen, len);
        msg_unref(pm);
        msg_unref(m);
    }
}

/* With the publisher's info and an offset: the push, the span of its Publication, and the same
 * Publication from proto_encode_msg_pub (what the history gives for a kept raw message). */
static void pub_frame_info_offset(void **state)
{
    (void)state;
    const char *info = "{\"user\":\"u1\",\"client\":\"c1\"}";
    struct msg *m =
        msg_frame_info(WS_OP_TEXT, (const uint8_t *)"{\"a\":1}", 7, "lobby", 5, info, strlen(info));
    assert_non_null(m);
    assert_memory_equal(msg_room_name(m), "lobby", 5);
    assert_memory_equal(msg_info(m), info, strlen(info));
    m->offset = 7;
    uint32_t off = 0, len = 0;
    struct msg *pm = proto_pub_frame(m, &off, &len);
    assert_non_null(pm);
    size_t plen;
    const char *p = (const char *)msg_payload(pm, &plen);
    const char *want = "{\"push\":{\"channel\":\"lobby\",\"pub\":{\"data\":{\"a\":1},\"info\":"
                       "{\"user\":\"u1\",\"client\":\"c1\"},\"offset\":7}}}";
    assert_int_equal(plen, strlen(want));
    assert_memory_equal(p, want, plen);
    const char *pub = "{\"data\":{\"a\":1},\"info\":{\"user\":\"u1\",\"client\":\"c1\"},"
                      "\"offset\":7}";
    assert_int_equal(len, strlen(pub));
    assert_memory_equal(pm->data + off, pub, len);
    struct proto_buf b = {0};
    assert_int_equal(proto_encode_msg_pub(&b, m, 7), 0);
    assert_int_equal(b.len, strlen(pub));
    assert_memory_equal(b.p, pub, b.len);
    proto_buf_fini(&b);
    msg_unref(pm);
    msg_unref(m);
}

/* A payload long enough for a 16-bit frame length on both sides. */
static void pub_frame_long(void **state)
{
    (void)state;
    char *big = malloc(70000);
    assert_non_null(big);
    memset(big, 'x', 70000);
    struct msg *m = msg_frame(WS_OP_TEXT, (const uint8_t *)big, 70000, "r", 1);
    assert_non_null(m);
    struct msg *pm = proto_pub_frame(m, NULL, NULL);
    assert_non_null(pm);
    size_t plen;
    const char *p = (const char *)msg_payload(pm, &plen);
    const char *head = "{\"push\":{\"channel\":\"r\",\"pub\":{\"data\":\"";
    assert_int_equal(plen, strlen(head) + 70000 + 4);
    assert_memory_equal(p, head, strlen(head));
    assert_memory_equal(p + plen - 4, "\"}}}", 4);
    msg_unref(pm);
    msg_unref(m);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_table),
        cmocka_unit_test(fields_connect_and_subscribe),
        cmocka_unit_test(fields_publish_data_verbatim),
        cmocka_unit_test(fields_history),
        cmocka_unit_test(fields_connect_subs_and_rpc),
        cmocka_unit_test(close_codes),
        cmocka_unit_test(encode_connect),
        cmocka_unit_test(encode_subscribe),
        cmocka_unit_test(encode_small_replies),
        cmocka_unit_test(encode_presence_and_history),
        cmocka_unit_test(encode_pushes),
        cmocka_unit_test(encode_pub_span_after_growth),
        cmocka_unit_test(encode_newlines_in_raw_json),
        cmocka_unit_test(raw_room_data),
        cmocka_unit_test(encode_batch),
        cmocka_unit_test(encode_strings),
        cmocka_unit_test(encode_round_trip),
        cmocka_unit_test(pub_frame_from_raw),
        cmocka_unit_test(pub_frame_long),
        cmocka_unit_test(pub_frame_info_offset),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
