/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/users.c through its header: adding and removing connections of one and
 * of many users, the counts, the walks (removal of the link being visited included, as a
 * disconnect does), growth of the table past its first size, and user ids that are not C
 * strings.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_del(void **state)
{
    (void)state;
    struct users u;
    assert_int_equal(users_init(&u, 42), 0);
    struct users_link a = {0}, b = {0}, c = {0};
    assert_int_equal(users_add(&u, &a, "alice", 5), 0);
    assert_int_equal(users_add(&u, &b, "alice", 5), 0);
    assert_int_equal(users_add(&u, &c, "bob", 3), 0);
    assert_int_equal(u.nr_users, 2);
    assert_int_equal(u.nr_links, 3);
    assert_int_equal(users_count(&u, "alice", 5), 2);
    assert_int_equal(users_count(&u, "bob", 3), 1);
    assert_int_equal(users_count(&u, "alic", 4), 0);
    assert_int_equal(users_count(&u, "carol", 5), 0);
    users_del(&u, &a);
    users_del(&u, &a); /* a no-op the second time */
    assert_int_equal(users_count(&u, "alice", 5), 1);
    assert_int_equal(u.nr_users, 2);
    users_del(&u, &b);
    assert_int_equal(users_count(&u, "alice", 5), 0);
    assert_int_equal(u.nr_users, 1);
    /* A user can come back after its entry went. */
    assert_int_equal(users_add(&u, &a, "alice", 5), 0);
    assert_int_equal(users_count(&u, "alice", 5), 1);
    users_del(&u, &a);
    users_del(&u, &c);
    assert_int_equal(u.nr_users, 0);
    assert_int_equal(u.nr_links, 0);
    users_fini(&u);
    users_fini(&u); /* zeroed: fine */
}

/* Ids with NUL and high bytes are bytes, compared by length too. */
static void binary_ids(void **state)
{
    (void)state;
    struct users u;
    assert_int_equal(users_init(&u, 7), 0);
    struct users_link a = {0}, b = {0};
    assert_int_equal(users_add(&u, &a, "x\0y", 3), 0);
    assert_int_equal(users_add(&u, &b, "x", 1), 0);
    assert_int_equal(users_count(&u, "x\0y", 3), 1);
    assert_int_equal(users_count(&u, "x\0z", 3), 0);
    assert_int_equal(users_count(&u, "x", 1), 1);
    users_del(&u, &a);
    users_del(&u, &b);
    users_fini(&u);
}

struct walk {
    struct users *u;
    struct users_link *seen[8];
    unsigned n;
    bool remove;
};

static void visit(void *arg, struct users_link *l)
{
    struct walk *w = arg;
    assert_true(w->n < 8);
    w->seen[w->n++] = l;
    if (w->remove)
        users_del(w->u, l);
}

static void walks(void **state)
{
    (void)state;
    struct users u;
    assert_int_equal(users_init(&u, 1), 0);
    struct users_link l[4] = {0};
    struct users_link other = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(users_add(&u, &l[i], "u1", 2), 0);
    assert_int_equal(users_add(&u, &other, "u2", 2), 0);
    struct walk w = {.u = &u};
    assert_int_equal(users_each_link(&u, "u1", 2, visit, &w), 4);
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(w.seen[i], &l[i]); /* in the order added */
    assert_int_equal(users_each_link(&u, "nobody", 6, visit, &w), 0);
    /* Each visit removes its own link, the last one freeing the entry. */
    w = (struct walk){.u = &u, .remove = true};
    assert_int_equal(users_each_link(&u, "u1", 2, visit, &w), 4);
    assert_int_equal(users_count(&u, "u1", 2), 0);
    assert_int_equal(u.nr_users, 1);
    assert_int_equal(u.nr_links, 1);
    for (int i = 0; i < 4; i++)
        assert_null(l[i].entry);
    users_del(&u, &other);
    users_fini(&u);
}

struct tally {
    uint32_t users, links;
};

static void count_user(void *arg, const char *user, size_t len, uint32_t nr)
{
    struct tally *t = arg;
    assert_true(len > 0);
    assert_non_null(user);
    t->users++;
    t->links += nr;
}

/* Many users: the table grows past its first size and every one stays findable. */
static void many(void **state)
{
    (void)state;
    enum { N = 3000 };
    struct users u;
    assert_int_equal(users_init(&u, 99), 0);
    struct users_link *l = calloc(2 * N, sizeof(*l));
    assert_non_null(l);
    char name[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof(name), "user-%d", i);
        assert_int_equal(users_add(&u, &l[2 * i], name, (size_t)n), 0);
        assert_int_equal(users_add(&u, &l[2 * i + 1], name, (size_t)n), 0);
    }
    assert_true(u.mask + 1 >= N);
    assert_int_equal(u.nr_users, N);
    struct tally t = {0};
    users_each_user(&u, count_user, &t);
    assert_int_equal(t.users, N);
    assert_int_equal(t.links, 2 * N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof(name), "user-%d", i);
        assert_int_equal(users_count(&u, name, (size_t)n), 2);
    }
    for (int i = 0; i < 2 * N; i++)
        users_del(&u, &l[i]);
    assert_int_equal(u.nr_users, 0);
    t = (struct tally){0};
    users_each_user(&u, count_user, &t);
    assert_int_equal(t.users, 0);
    users_fini(&u);
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(add_del),
        cmocka_unit_test(binary_ids),
        cmocka_unit_test(walks),
        cmocka_unit_test(many),
    };
    return cmocka_run_group_tests_name("users", tests, NULL, NULL);
}
