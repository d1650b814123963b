/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/api_req.c through its header: the method names, one row per request
 * shape that decodes and one per error class (400 for a body that is not an object, 107 and 102
 * as Centrifugo answers them), the fields each method gives (raw `data` bytes, broadcast's
 * per-channel errors, disconnect's defaults and limits, history's since), and the glob of
 * `channels`. Every body is decoded from an exact-size heap copy so that ASan sees a read past
 * its end.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "api_req.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool str_is(struct proto_str s, const char *want)
{
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.p, want, s.len) == 0);
}

/* Decodes <body> from an exact-size copy; the copy is given back to free after api_req_fini. */
static int decode(enum api_method m, const char *body, struct api_req *r, char **copy)
{
    size_t len = strlen(body);
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    memcpy(*copy, body, len);
    return api_req_decode(m, *copy, len, r);
}

static void methods(void **state)
{
    (void)state;
    assert_int_equal(api_method_find("publish", 7), API_PUBLISH);
    assert_int_equal(api_method_find("broadcast", 9), API_BROADCAST);
    assert_int_equal(api_method_find("send", 4), API_SEND);
    assert_int_equal(api_method_find("unsubscribe", 11), API_UNSUBSCRIBE);
    assert_int_equal(api_method_find("disconnect", 10), API_DISCONNECT);
    assert_int_equal(api_method_find("presence", 8), API_PRESENCE);
    assert_int_equal(api_method_find("presence_stats", 14), API_PRESENCE_STATS);
    assert_int_equal(api_method_find("history", 7), API_HISTORY);
    assert_int_equal(api_method_find("channels", 8), API_CHANNELS);
    assert_int_equal(api_method_find("info", 4), API_INFO);
    assert_int_equal(api_method_find("", 0), 0);
    assert_int_equal(api_method_find("publis", 6), 0);
    assert_int_equal(api_method_find("publish/", 8), 0);
    assert_int_equal(api_method_find("Publish", 7), 0);
    assert_int_equal(api_method_find("info\0", 5), 0);
}

/* One row per outcome class. */
static void outcomes(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum api_method m;
        const char *body;
        int want;
    } rows[] = {
        {"publish", API_PUBLISH, "{\"channel\":\"a\",\"data\":{\"x\":1}}", 0},
        {"publish, string data", API_PUBLISH, "{\"channel\":\"a\",\"data\":\"hi\"}", 0},
        {"unknown fields ignored", API_PUBLISH, "{\"channel\":\"a\",\"data\":1,\"tags\":{}}", 0},
        {"empty body", API_INFO, "", -EPROTO},
        {"not JSON", API_INFO, "{", -EPROTO},
        {"an array", API_INFO, "[]", -EPROTO},
        {"a string", API_INFO, "\"x\"", -EPROTO},
        {"two objects", API_INFO, "{} {}", -EPROTO},
        {"duplicate keys", API_PUBLISH, "{\"channel\":\"a\",\"channel\":\"b\",\"data\":1}",
         -EPROTO},
        {"info", API_INFO, "{}", 0},
        {"info ignores fields", API_INFO, " {\"x\":[1,2]} ", 0},
        {"publish without channel", API_PUBLISH, "{\"data\":1}", 107},
        {"publish, empty channel", API_PUBLISH, "{\"channel\":\"\",\"data\":1}", 107},
        {"publish, channel null", API_PUBLISH, "{\"channel\":null,\"data\":1}", 107},
        {"publish, channel a number", API_PUBLISH, "{\"channel\":1,\"data\":1}", 107},
        {"publish, channel with NUL", API_PUBLISH, "{\"channel\":\"a\\u0000\",\"data\":1}", 107},
        {"publish, channel with '/'", API_PUBLISH, "{\"channel\":\"a/b\",\"data\":1}", 102},
        {"publish, control character", API_PUBLISH, "{\"channel\":\"a\\nb\",\"data\":1}", 102},
        {"publish without data", API_PUBLISH, "{\"channel\":\"a\"}", 107},
        {"publish, data null", API_PUBLISH, "{\"channel\":\"a\",\"data\":null}", 107},
        {"broadcast", API_BROADCAST, "{\"channels\":[\"a\",\"b\"],\"data\":[]}", 0},
        {"broadcast, no channels", API_BROADCAST, "{\"data\":1}", 107},
        {"broadcast, empty list", API_BROADCAST, "{\"channels\":[],\"data\":1}", 107},
        {"broadcast, not a list", API_BROADCAST, "{\"channels\":\"a\",\"data\":1}", 107},
        {"broadcast, a number in it", API_BROADCAST, "{\"channels\":[\"a\",1],\"data\":1}", 107},
        {"broadcast without data", API_BROADCAST, "{\"channels\":[\"a\"]}", 107},
        {"send", API_SEND, "{\"user\":\"u\",\"data\":{}}", 0},
        {"send without user", API_SEND, "{\"data\":{}}", 107},
        {"send, empty user", API_SEND, "{\"user\":\"\",\"data\":{}}", 107},
        {"send without data", API_SEND, "{\"user\":\"u\"}", 107},
        {"unsubscribe", API_UNSUBSCRIBE, "{\"user\":\"u\",\"channel\":\"c\"}", 0},
        {"unsubscribe from all", API_UNSUBSCRIBE, "{\"user\":\"u\"}", 0},
        {"unsubscribe, bad channel", API_UNSUBSCRIBE, "{\"user\":\"u\",\"channel\":\"a/b\"}", 102},
        {"unsubscribe without user", API_UNSUBSCRIBE, "{\"channel\":\"c\"}", 107},
        {"disconnect", API_DISCONNECT, "{\"user\":\"u\"}", 0},
        {"disconnect, code and reason", API_DISCONNECT,
         "{\"user\":\"u\",\"disconnect\":{\"code\":4000,\"reason\":\"bye\"}}", 0},
        {"disconnect, code 2999", API_DISCONNECT, "{\"user\":\"u\",\"disconnect\":{\"code\":2999}}",
         107},
        {"disconnect, code 5000", API_DISCONNECT, "{\"user\":\"u\",\"disconnect\":{\"code\":5000}}",
         107},
        {"disconnect, code -1", API_DISCONNECT, "{\"user\":\"u\",\"disconnect\":{\"code\":-1}}",
         107},
        {"disconnect, code 3.5", API_DISCONNECT, "{\"user\":\"u\",\"disconnect\":{\"code\":3.5}}",
         107},
        {"disconnect, not an object", API_DISCONNECT, "{\"user\":\"u\",\"disconnect\":3000}", 107},
        {"disconnect, reason a number", API_DISCONNECT,
         "{\"user\":\"u\",\"disconnect\":{\"code\":4000,\"reason\":1}}", 107},
        {"presence", API_PRESENCE, "{\"channel\":\"c\"}", 0},
        {"presence without channel", API_PRESENCE, "{}", 107},
        {"presence_stats, bad channel", API_PRESENCE_STATS, "{\"channel\":\"\\u0001\"}", 102},
        {"history", API_HISTORY, "{\"channel\":\"c\",\"limit\":-1,\"reverse\":true}", 0},
        {"history, limit too big", API_HISTORY, "{\"channel\":\"c\",\"limit\":2147483648}", 107},
        {"history, limit a string", API_HISTORY, "{\"channel\":\"c\",\"limit\":\"1\"}", 107},
        {"history, reverse a number", API_HISTORY, "{\"channel\":\"c\",\"reverse\":1}", 107},
        {"history, since not an object", API_HISTORY, "{\"channel\":\"c\",\"since\":1}", 107},
        {"history, since offset negative", API_HISTORY,
         "{\"channel\":\"c\",\"since\":{\"offset\":-1}}", 107},
        {"history, since offset 2^64", API_HISTORY,
         "{\"channel\":\"c\",\"since\":{\"offset\":18446744073709551616}}", 107},
        {"channels", API_CHANNELS, "{\"pattern\":\"chat:*\"}", 0},
        {"channels, pattern a list", API_CHANNELS, "{\"pattern\":[]}", 107},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct api_req r;
        char *copy;
        int got = decode(rows[i].m, rows[i].body, &r, &copy);
        if (got != rows[i].want)
            fail_msg("row %zu (%s): got %d, expected %d", i, rows[i].name, got, rows[i].want);
        if (got != 0)
            assert_null(r._root); /* nothing to release after an error */
        api_req_fini(&r);
        free(copy);
    }
}

static void fields(void **state)
{
    (void)state;
    struct api_req r;
    char *copy;
    /* `data` is the exact bytes sent, without the whitespace around it. */
    assert_int_equal(decode(API_PUBLISH,
                            "{\"data\":  {\"n\": 1.50, \"s\":\"\\u00e9\"} ,\"channel\":\"c\"}", &r,
                            &copy),
                     0);
    assert_true(str_is(r.channel, "c"));
    assert_true(str_is(r.data, "{\"n\": 1.50, \"s\":\"\\u00e9\"}"));
    api_req_fini(&r);
    free(copy);

    assert_int_equal(
        decode(API_BROADCAST,
               "{\"channels\":[\"a\",\"\",\"b/c\",\"d\"],\"data\":18446744073709551616}", &r,
               &copy),
        0);
    assert_int_equal(r.nr_channels, 4);
    assert_true(str_is(r.channels[0], "a"));
    assert_true(str_is(r.channels[3], "d"));
    assert_int_equal(r.channel_errors[0], 0);
    assert_int_equal(r.channel_errors[1], 107);
    assert_int_equal(r.channel_errors[2], 102);
    assert_int_equal(r.channel_errors[3], 0);
    assert_true(str_is(r.data, "18446744073709551616"));
    api_req_fini(&r);
    free(copy);

    assert_int_equal(decode(API_DISCONNECT, "{\"user\":\"u1\"}", &r, &copy), 0);
    assert_true(str_is(r.user, "u1"));
    assert_int_equal(r.code, API_DISCONNECT_CODE);
    assert_true(str_is(r.reason, API_DISCONNECT_REASON));
    api_req_fini(&r);
    free(copy);

    assert_int_equal(decode(API_DISCONNECT,
                            "{\"user\":\"u1\",\"disconnect\":{\"code\":4501,\"reason\":\"\"}}", &r,
                            &copy),
                     0);
    assert_int_equal(r.code, 4501);
    assert_int_equal(r.reason.len, 0);
    api_req_fini(&r);
    free(copy);

    /* The longest reason a close frame holds, and one more. */
    char body[256];
    char reason[API_REASON_MAX + 2];
    memset(reason, 'r', sizeof(reason));
    reason[API_REASON_MAX] = '\0';
    snprintf(body, sizeof(body),
             "{\"user\":\"u\",\"disconnect\":{\"code\":4000,\"reason\":\"%s\"}}", reason);
    assert_int_equal(decode(API_DISCONNECT, body, &r, &copy), 0);
    assert_int_equal(r.reason.len, API_REASON_MAX);
    api_req_fini(&r);
    free(copy);
    reason[API_REASON_MAX] = 'r';
    reason[API_REASON_MAX + 1] = '\0';
    snprintf(body, sizeof(body),
             "{\"user\":\"u\",\"disconnect\":{\"code\":4000,\"reason\":\"%s\"}}", reason);
    assert_int_equal(decode(API_DISCONNECT, body, &r, &copy), 107);
    api_req_fini(&r);
    free(copy);

    assert_int_equal(decode(API_HISTORY,
                            "{\"channel\":\"c\",\"limit\":10,\"since\":{\"offset\":"
                            "18446744073709551615,\"epoch\":\"ab12\"},\"reverse\":false}",
                            &r, &copy),
                     0);
    assert_int_equal(r.limit, 10);
    assert_true(r.has_since);
    assert_true(r.since_offset == UINT64_MAX);
    assert_true(str_is(r.since_epoch, "ab12"));
    assert_false(r.reverse);
    api_req_fini(&r);
    free(copy);

    assert_int_equal(decode(API_HISTORY, "{\"channel\":\"c\",\"limit\":-2147483648}", &r, &copy),
                     0);
    assert_int_equal(r.limit, INT32_MIN);
    assert_false(r.has_since);
    api_req_fini(&r);
    free(copy);

    assert_int_equal(decode(API_UNSUBSCRIBE, "{\"user\":\"u\",\"channel\":null}", &r, &copy), 0);
    assert_int_equal(r.channel.len, 0);
    api_req_fini(&r);
    free(copy);
}

static bool glob(const char *pat, const char *s)
{
    return api_glob_match(pat, strlen(pat), s, strlen(s));
}

static void globs(void **state)
{
    (void)state;
    assert_true(glob("", ""));
    assert_false(glob("", "a"));
    assert_true(glob("*", ""));
    assert_true(glob("*", "anything"));
    assert_true(glob("chat:*", "chat:"));
    assert_true(glob("chat:*", "chat:lobby"));
    assert_false(glob("chat:*", "news:lobby"));
    assert_true(glob("*:lobby", "chat:lobby"));
    assert_false(glob("*:lobby", "chat:lobby2"));
    assert_true(glob("a*b*c", "aXbYbZc"));
    assert_false(glob("a*b*c", "aXbYbZ"));
    assert_true(glob("a?c", "abc"));
    assert_false(glob("a?c", "ac"));
    assert_true(glob("**", "x"));
    assert_true(glob("\\*", "*"));
    assert_false(glob("\\*", "x"));
    assert_true(glob("a\\?", "a?"));
    assert_false(glob("a\\?", "ab"));
    assert_true(glob("[ab]", "[ab]"));
    assert_true(glob("x\\", "x\\")); /* a trailing backslash is itself */
    assert_true(glob("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"));
    assert_false(glob("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    /* Bytes, not characters: a '?' matches one byte of a UTF-8 sequence. */
    assert_true(glob("caf??", "caf\xc3\xa9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(methods),
        cmocka_unit_test(outcomes),
        cmocka_unit_test(fields),
        cmocka_unit_test(globs),
    };
    return cmocka_run_group_tests_name("api_req", tests, NULL, NULL);
}
