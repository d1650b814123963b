/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/json_raw.c through its header: one row per kind of value and per
 * trap for a locator (strings holding brackets, quotes and backslashes, nesting, escaped keys,
 * a key that appears as a value or deeper down), and json_raw_load's retry for big integers.
 * Every input is first checked to be JSON that jansson accepts, as the contract requires.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "json_raw.h"

#include <stdlib.h>
#include <string.h>

struct row {
    const char *obj, *key;
    const char *want; /* NULL: absent */
};

static const struct row rows[] = {
    {"{\"data\":1}", "data", "1"},
    {"{\"data\":-1.5e+10}", "data", "-1.5e+10"},
    {"{\"data\":true,\"x\":0}", "data", "true"},
    {"{\"x\":0,\"data\":null}", "data", "null"},
    {" { \"data\" :\t\"s\" \n} ", "data", "\"s\""},
    {"{\"data\":\"a}b]c,d\\\"e\\\\\"}", "data", "\"a}b]c,d\\\"e\\\\\""},
    {"{\"a\":{\"data\":1},\"data\":[{\"data\":2},[3]]}", "data", "[{\"data\":2},[3]]"},
    {"{\"a\":\"data\",\"data\":{}}", "data", "{}"},
    {"{\"a\":[\"}\",\"{\"],\"data\":[]}", "data", "[]"},
    {"{\"d\\u0061ta\":7}", "data", "7"},
    {"{\"dat\\\"a\":1,\"data\":2}", "data", "2"},
    {"{\"data\":12345678901234567890123}", "data", "12345678901234567890123"},
    {"{\"x\":{\"y\":[1,{\"z\":\"]\"}]},\"data\":\"\\u00e9\"}", "data", "\"\\u00e9\""},
    {"{}", "data", NULL},
    {"{\"dat\":1,\"datas\":2}", "data", NULL},
    {"[1,2]", "data", NULL},
    {"\"data\"", "data", NULL},
    {"{\"\":5}", "", "5"},
};

static void members(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        size_t len = strlen(r->obj);
        json_t *j = json_raw_load(r->obj, len, JSON_DECODE_ANY);
        if (!j)
            fail_msg("row %zu is not JSON: %s", i, r->obj);
        json_decref(j);
        /* An exact-size copy, so that ASan sees a read past the span. */
        char *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, r->obj, len);
        struct json_raw out;
        bool found = json_raw_member(copy, len, r->key, strlen(r->key), &out);
        if (!r->want) {
            assert_false(found);
            assert_null(out.p);
        } else {
            if (!found)
                fail_msg("row %zu: %s not found", i, r->key);
            assert_int_equal(out.len, strlen(r->want));
            assert_memory_equal(out.p, r->want, out.len);
        }
        free(copy);
    }
}

static void load(void **state)
{
    (void)state;
    const char *big = "{\"n\":123456789012345678901234567890}";
    json_t *j = json_raw_load(big, strlen(big), 0);
    assert_non_null(j);
    assert_true(json_is_real(json_object_get(j, "n")));
    json_decref(j);
    /* Duplicates are refused; so are invalid texts. */
    assert_null(json_raw_load("{\"a\":1,\"a\":2}", 13, 0));
    assert_null(json_raw_load("{\"a\":}", 6, 0));
    j = json_raw_load("{\"n\":9223372036854775807}", 25, 0);
    assert_true(json_is_integer(json_object_get(j, "n")));
    json_decref(j);
}

static void trim(void **state)
{
    (void)state;
    struct json_raw t = json_raw_trim(" \r\n\t[1] \n", 9);
    assert_int_equal(t.len, 3);
    assert_memory_equal(t.p, "[1]", 3);
    t = json_raw_trim("   ", 3);
    assert_int_equal(t.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(members),
        cmocka_unit_test(load),
        cmocka_unit_test(trim),
    };
    return cmocka_run_group_tests_name("json_raw", tests, NULL, NULL);
}
