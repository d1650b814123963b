/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/channel.c through its header: one row per name rule and per `$`/`#`
 * case, each name given in an exact-size heap copy so that ASan sees a read past its end.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "channel.h"

#include <stdlib.h>
#include <string.h>

static char *copy(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, s, len);
    return p;
}

static void names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t len;
        bool valid;
    } rows[] = {
        {"lobby", 5, true},
        {"chat:check-f45141", 17, true},
        {"$private", 8, true},
        {"dialog#alice,bob", 16, true},
        {"caf\xc3\xa9 \xe2\x82\xac", 9, true},
        {"a b%20c?d", 9, true},
        {"", 0, false},
        {"a/b", 3, false},
        {"a\nb", 3, false},
        {"a\x7f", 2, false},
        {"a\xc2\x85", 3, false}, /* C1 NEL */
        {"a\xc2\xa0", 3, true},  /* NBSP is not a control character */
        {"a\0b", 3, false},
        {"\xff", 1, false},
        {"\xc3", 1, false}, /* truncated */
        {"\xed\xa0\x80", 3, false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *n = copy(rows[i].name, rows[i].len);
        if (channel_name_valid(n, rows[i].len) != rows[i].valid)
            fail_msg("row %zu: %s", i, rows[i].valid ? "refused" : "accepted");
        free(n);
    }
    char big[CHANNEL_NAME_MAX + 1];
    memset(big, 'x', sizeof(big));
    assert_true(channel_name_valid(big, CHANNEL_NAME_MAX));
    assert_false(channel_name_valid(big, CHANNEL_NAME_MAX + 1));
}

static void users(void **state)
{
    (void)state;
    static const struct {
        const char *name, *user;
        bool allowed;
    } rows[] = {
        {"lobby", "", true},
        {"lobby", "alice", true},
        {"dialog#alice,bob", "alice", true},
        {"dialog#alice,bob", "bob", true},
        {"dialog#alice,bob", "carol", false},
        {"dialog#alice,bob", "ali", false},
        {"dialog#alice,bob", "alice,bob", false},
        {"dialog#alice,bob", "", false},
        {"dialog#", "", false}, /* anonymous never matches an empty entry */
        {"dialog#", "alice", false},
        {"a#,b", "", false},
        {"a#,b", "b", true},
        {"x#y#alice", "alice", true}, /* the last '#' */
        {"x#alice#y", "alice", false},
        {"#alice", "alice", true},
        {"$dm#alice", "alice", true},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t len = strlen(rows[i].name);
        char *n = copy(rows[i].name, len);
        if (channel_user_allowed(n, len, rows[i].user, strlen(rows[i].user)) != rows[i].allowed)
            fail_msg("row %zu: %s for %s", i, rows[i].name, rows[i].user);
        free(n);
    }
}

static void decisions(void **state)
{
    (void)state;
    static const struct {
        const char *name, *user;
        bool token_or_subscribed;
        uint32_t subscribe, use;
    } rows[] = {
        {"lobby", "", false, 0, 0},
        {"$secret", "u", false, 103, 103},
        {"$secret", "u", true, 0, 0},
        {"dialog#alice,bob", "alice", false, 0, 0},
        {"dialog#alice,bob", "carol", false, 103, 103},
        {"dialog#alice,bob", "carol", true, 103, 103}, /* a token does not add a user */
        {"$dm#alice", "bob", true, 103, 103},
        {"a/b", "u", true, 102, 102},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t len = strlen(rows[i].name), ul = strlen(rows[i].user);
        char *n = copy(rows[i].name, len);
        assert_int_equal(
            channel_can_subscribe(n, len, rows[i].user, ul, rows[i].token_or_subscribed),
            rows[i].subscribe);
        assert_int_equal(channel_can_use(n, len, rows[i].user, ul, rows[i].token_or_subscribed),
                         rows[i].use);
        free(n);
    }
    assert_true(channel_is_private("$", 1));
    assert_false(channel_is_private("a$", 2));
    assert_false(channel_is_private("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(users),
        cmocka_unit_test(decisions),
    };
    return cmocka_run_group_tests_name("channel", tests, NULL, NULL);
}
