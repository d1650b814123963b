/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/history.c, through the public header only. Publications are built the
 * way the broker builds them: the push encoded once with proto_encode_pub_push, framed with
 * msg_frame, and kept by reference with the span of its Publication object. The tests cover
 * the ring's wrap-around, `since` at every edge in both directions, TTL expiry (publications
 * go, position stays), epoch changes, the recovery decision, and the doc's history and
 * recovery examples (PROTOCOL-CENTRIFUGO.md §5, §8) down to the reply bytes. Every msg's
 * reference count is checked at the end, and ASan's leak check sees the rest.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "history.h"
#include "proto.h"
#include "ws_frame.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CH "chat:check-f45141"

static unsigned refs_of(struct msg *m)
{
    return atomic_load_explicit(&m->refs, memory_order_relaxed);
}

/* The msgs a test made, released at its end. */
struct pubs {
    struct msg *m[32];
    unsigned nr;
};

/* Publishes {"n":<offset>} on <h> at <now>, as the broker would; the test keeps a reference. */
static void publish(struct history *h, struct pubs *ps, int64_t now)
{
    uint64_t off = history_next_offset(h);
    char data[32];
    snprintf(data, sizeof(data), "{\"n\":%llu}", (unsigned long long)off);
    struct proto_buf b = {0};
    struct proto_str at;
    struct proto_pub pub = {.data = {data, strlen(data)}, .offset = off};
    assert_int_equal(proto_encode_pub_push(&b, (struct proto_str){CH, strlen(CH)}, &pub, &at), 0);
    struct msg *m = msg_frame(WS_OP_TEXT, (const uint8_t *)b.p, b.len, CH, strlen(CH));
    assert_non_null(m);
    uint32_t pub_off = (uint32_t)(m->len - b.len + (size_t)(at.p - b.p));
    assert_int_equal(history_append(h, off, m, pub_off, (uint32_t)at.len, now), 0);
    assert_true(ps->nr < 32);
    ps->m[ps->nr++] = m;
    proto_buf_fini(&b);
}

static void release(struct pubs *ps)
{
    for (unsigned i = 0; i < ps->nr; i++) {
        assert_int_equal(refs_of(ps->m[i]), 1);
        msg_unref(ps->m[i]);
    }
}

/* The offsets a view yields, as "5,6,7" ("" when empty), checked against each item's bytes. */
static const char *offsets(const struct history_view *v)
{
    static char out[256];
    size_t n = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < v->nr; i++) {
        const struct history_item *it = history_view_at(v, i);
        char want[64];
        snprintf(want, sizeof(want), "{\"data\":{\"n\":%llu},\"offset\":%llu}",
                 (unsigned long long)it->offset, (unsigned long long)it->offset);
        assert_int_equal(it->pub_len, strlen(want));
        assert_memory_equal(it->m->data + it->pub_off, want, it->pub_len);
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%llu", i ? "," : "",
                              (unsigned long long)it->offset);
    }
    return out;
}

static const char *query(struct history *h, int32_t limit, bool reverse, bool has_since,
                         uint64_t since, const char *epoch, int64_t now, int *rc)
{
    struct history_query q = {
        .limit = limit,
        .reverse = reverse,
        .has_since = has_since,
        .since_offset = since,
        .since_epoch = epoch,
        .since_epoch_len = epoch ? strlen(epoch) : 0,
    };
    struct history_view v;
    *rc = history_query(h, &q, now, 0, &v);
    return offsets(&v);
}

/* ---------------------------------------------------------------------------------------------
 * Basics
 * -------------------------------------------------------------------------------------------*/

static void init_and_epochs(void **state)
{
    (void)state;
    struct history a, b;
    assert_int_equal(history_init(&a, 10, 0, NULL), 0);
    assert_int_equal(history_init(&b, 10, 0, NULL), 0);
    assert_int_equal(a.epoch_len, 8);
    assert_int_equal(strspn(a.epoch, "0123456789abcdef"), 8);
    /* Random per stream (a 2^-32 chance of failing). */
    assert_string_not_equal(a.epoch, b.epoch);
    assert_int_equal(a.top, 0);
    assert_int_equal(history_next_offset(&a), 1);
    assert_null(a._ring); /* nothing allocated before the first publication */
    history_fini(&a);
    history_fini(&b);
    assert_int_equal(history_init(&a, 1, 0, "a55de5c3"), 0);
    assert_string_equal(a.epoch, "a55de5c3");
    history_fini(&a);
    assert_int_equal(history_init(&a, 1, 0, "0123456789abcdef0123456789abcdef0"), -EINVAL);
}

static void append_rules(void **state)
{
    (void)state;
    struct history h;
    struct pubs ps = {0};
    history_init(&h, 4, 0, "e");
    publish(&h, &ps, 100);
    struct msg *m = ps.m[0];
    /* Offsets must follow the top; the span must lie in the msg. */
    assert_int_equal(history_append(&h, 1, m, 0, 1, 100), -EINVAL);
    assert_int_equal(history_append(&h, 3, m, 0, 1, 100), -EINVAL);
    assert_int_equal(history_append(&h, 2, m, m->len, 1, 100), -EINVAL);
    assert_int_equal(history_append(&h, 2, m, 1, m->len, 100), -EINVAL);
    assert_int_equal(h.top, 1);
    assert_int_equal(h.nr, 1);
    assert_int_equal(refs_of(m), 2);
    history_fini(&h);
    release(&ps);
}

static void wrap_around(void **state)
{
    (void)state;
    struct history h;
    struct pubs ps = {0};
    int rc;
    history_init(&h, 3, 0, "e");
    for (int i = 0; i < 7; i++)
        publish(&h, &ps, 100);
    assert_int_equal(h.top, 7);
    assert_int_equal(h.nr, 3);
    /* Evicted publications were released; kept ones hold a reference. */
    for (int i = 0; i < 7; i++)
        assert_int_equal(refs_of(ps.m[i]), i < 4 ? 1 : 2);
    assert_string_equal(query(&h, -1, false, false, 0, NULL, 100, &rc), "5,6,7");
    assert_string_equal(query(&h, -1, true, false, 0, NULL, 100, &rc), "7,6,5");
    assert_string_equal(query(&h, 2, false, false, 0, NULL, 100, &rc), "5,6");
    assert_string_equal(query(&h, 2, true, false, 0, NULL, 100, &rc), "7,6");
    assert_string_equal(query(&h, 0, false, false, 0, NULL, 100, &rc), "");
    assert_string_equal(query(&h, 100, false, false, 0, NULL, 100, &rc), "5,6,7");
    /* max_pubs caps "all". */
    struct history_query q = {.limit = -1};
    struct history_view v;
    assert_int_equal(history_query(&h, &q, 100, 2, &v), 0);
    assert_string_equal(offsets(&v), "5,6");
    history_fini(&h);
    release(&ps);
}

/* The ring starts small and doubles up to the size: 8, 16, then 20; the publications stay in
 * order through every growth and through the wrap after it. */
static void ring_grows(void **state)
{
    (void)state;
    struct history h;
    struct pubs ps = {0};
    int rc;
    history_init(&h, 20, 0, "e");
    publish(&h, &ps, 100);
    assert_int_equal(h._cap, 8);
    for (int i = 1; i < 9; i++)
        publish(&h, &ps, 100);
    assert_int_equal(h._cap, 16);
    assert_string_equal(query(&h, -1, false, false, 0, NULL, 100, &rc), "1,2,3,4,5,6,7,8,9");
    for (int i = 9; i < 30; i++)
        publish(&h, &ps, 100);
    assert_int_equal(h._cap, 20);
    assert_int_equal(h.nr, 20);
    assert_string_equal(query(&h, 3, true, false, 0, NULL, 100, &rc), "30,29,28");
    assert_string_equal(query(&h, 3, false, false, 0, NULL, 100, &rc), "11,12,13");
    for (int i = 0; i < 30; i++)
        assert_int_equal(refs_of(ps.m[i]), i < 10 ? 1 : 2);
    history_fini(&h);
    release(&ps);
}

/* ---------------------------------------------------------------------------------------------
 * since at the edges: held 5..7 of a stream whose top is 7
 * -------------------------------------------------------------------------------------------*/

static void since_edges(void **state)
{
    (void)state;
    static const struct {
        bool reverse;
        uint64_t since;
        int32_t limit;
        const char *want;
        int rc;
    } rows[] = {
        {false, 0, -1, "5,6,7", 0},
        {false, 3, -1, "5,6,7", 0}, /* before what is held: what is held */
        {false, 4, -1, "5,6,7", 0},
        {false, 5, -1, "6,7", 0},
        {false, 6, 1, "7", 0},
        {false, 7, -1, "", 0},
        {false, 8, -1, "", 0},
        {false, UINT64_MAX, -1, "", 0},
        {true, 0, -1, "", -EINVAL},
        {true, 1, -1, "", 0},
        {true, 5, -1, "", 0},
        {true, 6, -1, "5", 0},
        {true, 7, -1, "6,5", 0},
        {true, 8, -1, "7,6,5", 0},
        {true, 9, 2, "7,6", 0},
        {true, UINT64_MAX, -1, "7,6,5", 0},
    };
    struct history h;
    struct pubs ps = {0};
    history_init(&h, 3, 0, "e");
    for (int i = 0; i < 7; i++)
        publish(&h, &ps, 100);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int rc;
        const char *got =
            query(&h, rows[i].limit, rows[i].reverse, true, rows[i].since, "e", 100, &rc);
        if (rc != rows[i].rc || strcmp(got, rows[i].want) != 0)
            fail_msg("row %zu: got \"%s\" rc %d, want \"%s\" rc %d", i, got, rc, rows[i].want,
                     rows[i].rc);
    }
    int rc;
    /* §5: another epoch is 112; an empty one matches any. */
    query(&h, -1, false, true, 5, "other", 100, &rc);
    assert_int_equal(rc, -ESTALE);
    assert_string_equal(query(&h, -1, false, true, 5, "", 100, &rc), "6,7");
    assert_int_equal(rc, 0);
    assert_string_equal(query(&h, -1, false, true, 5, NULL, 100, &rc), "6,7");
    history_fini(&h);
    release(&ps);
}

/* ---------------------------------------------------------------------------------------------
 * TTL
 * -------------------------------------------------------------------------------------------*/

static void ttl_expiry(void **state)
{
    (void)state;
    struct history h;
    struct pubs ps = {0};
    struct history_view v;
    int rc;
    history_init(&h, 10, 10, "e");
    publish(&h, &ps, 100);
    publish(&h, &ps, 105); /* the TTL runs from the last publication */
    assert_string_equal(query(&h, -1, false, false, 0, NULL, 114, &rc), "1,2");
    /* At last + ttl they are gone; the position and epoch stay. */
    assert_string_equal(query(&h, -1, false, false, 0, NULL, 115, &rc), "");
    assert_int_equal(h.nr, 0);
    assert_null(h._ring);
    assert_int_equal(h.top, 2);
    assert_string_equal(h.epoch, "e");
    assert_int_equal(refs_of(ps.m[0]), 1);
    /* Nothing missed still recovers; something missed is a gap. */
    assert_int_equal(history_recover(&h, 2, "e", 1, 115, 0, &v), HISTORY_RECOVERED);
    assert_int_equal(v.nr, 0);
    assert_int_equal(history_recover(&h, 1, "e", 1, 115, 0, &v), HISTORY_GAP);
    /* A later publication starts a new ring, at the next offset. */
    publish(&h, &ps, 200);
    assert_int_equal(h.top, 3);
    assert_int_equal(history_recover(&h, 2, "e", 1, 200, 0, &v), HISTORY_RECOVERED);
    assert_string_equal(offsets(&v), "3");
    assert_int_equal(history_recover(&h, 1, "e", 1, 200, 0, &v), HISTORY_GAP);
    /* Expiry through history_expire and through append alike. */
    history_expire(&h, 209);
    assert_int_equal(h.nr, 1);
    publish(&h, &ps, 210);
    assert_int_equal(h.nr, 1);
    assert_string_equal(query(&h, -1, false, false, 0, NULL, 210, &rc), "4");
    history_fini(&h);
    release(&ps);

    /* ttl 0: kept until evicted. */
    ps = (struct pubs){0};
    history_init(&h, 2, 0, "e");
    publish(&h, &ps, 0);
    assert_string_equal(query(&h, -1, false, false, 0, NULL, INT64_MAX, &rc), "1");
    history_fini(&h);
    release(&ps);
}

/* ---------------------------------------------------------------------------------------------
 * Recovery
 * -------------------------------------------------------------------------------------------*/

static void recovery_decisions(void **state)
{
    (void)state;
    static const struct {
        uint64_t offset;
        const char *epoch;
        uint32_t max;
        enum history_recovery want;
        const char *pubs;
    } rows[] = {
        {4, "e", 0, HISTORY_RECOVERED, "5,6,7"},
        {5, "e", 0, HISTORY_RECOVERED, "6,7"},
        {6, "", 0, HISTORY_RECOVERED, "7"}, /* empty epoch matches */
        {7, "e", 0, HISTORY_RECOVERED, ""}, /* at the top: nothing missed */
        {3, "e", 0, HISTORY_GAP, ""},       /* 4 was evicted */
        {0, "e", 0, HISTORY_GAP, ""},
        {8, "e", 0, HISTORY_AHEAD, ""},
        {UINT64_MAX, "e", 0, HISTORY_AHEAD, ""},
        {4, "f", 0, HISTORY_EPOCH_CHANGED, ""},
        {7, "ee", 0, HISTORY_EPOCH_CHANGED, ""},
        {4, "e", 2, HISTORY_TOO_MANY, ""},
        {4, "e", 3, HISTORY_RECOVERED, "5,6,7"},
    };
    struct history h;
    struct pubs ps = {0};
    history_init(&h, 3, 60, "e");
    for (int i = 0; i < 7; i++)
        publish(&h, &ps, 100);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct history_view v;
        enum history_recovery r = history_recover(&h, rows[i].offset, rows[i].epoch,
                                                  strlen(rows[i].epoch), 100, rows[i].max, &v);
        const char *got = offsets(&v);
        if (r != rows[i].want || strcmp(got, rows[i].pubs) != 0)
            fail_msg("row %zu: got %s \"%s\", want %s \"%s\"", i, history_recovery_str(r), got,
                     history_recovery_str(rows[i].want), rows[i].pubs);
    }
    /* An empty stream: offset 0 recovers, anything else is ahead. */
    struct history e;
    struct history_view v;
    history_init(&e, 3, 60, "e");
    assert_int_equal(history_recover(&e, 0, "", 0, 100, 0, &v), HISTORY_RECOVERED);
    assert_int_equal(history_recover(&e, 1, "e", 1, 100, 0, &v), HISTORY_AHEAD);
    history_fini(&e);
    history_fini(&h);
    release(&ps);
}

static void epoch_change(void **state)
{
    (void)state;
    struct history h;
    struct pubs ps = {0};
    struct history_view v;
    int rc;
    history_init(&h, 5, 0, "old");
    publish(&h, &ps, 100);
    publish(&h, &ps, 100);
    assert_int_equal(history_reset(&h, NULL), 0);
    assert_string_not_equal(h.epoch, "old");
    assert_int_equal(h.top, 0);
    assert_int_equal(h.nr, 0);
    assert_int_equal(refs_of(ps.m[0]), 1);
    /* A client's position in the old stream is not taken for one in the new. */
    assert_int_equal(history_recover(&h, 2, "old", 3, 100, 0, &v), HISTORY_EPOCH_CHANGED);
    query(&h, -1, false, true, 1, "old", 100, &rc);
    assert_int_equal(rc, -ESTALE);
    publish(&h, &ps, 100);
    assert_int_equal(h.top, 1);
    assert_int_equal(history_recover(&h, 0, h.epoch, h.epoch_len, 100, 0, &v), HISTORY_RECOVERED);
    assert_string_equal(offsets(&v), "1");
    assert_int_equal(history_reset(&h, "0123456789abcdef0123456789abcdef0"), -EINVAL);
    assert_int_equal(h.top, 1); /* a failed reset changes nothing */
    history_fini(&h);
    release(&ps);
}

static void size_zero(void **state)
{
    (void)state;
    struct history h;
    struct pubs ps = {0};
    struct history_view v;
    int rc;
    history_init(&h, 0, 0, "e");
    publish(&h, &ps, 100);
    publish(&h, &ps, 100);
    assert_int_equal(h.top, 2);
    assert_int_equal(h.nr, 0);
    assert_int_equal(refs_of(ps.m[0]), 1);
    assert_string_equal(query(&h, -1, false, false, 0, NULL, 100, &rc), "");
    assert_int_equal(history_recover(&h, 1, "e", 1, 100, 0, &v), HISTORY_GAP);
    assert_int_equal(history_recover(&h, 2, "e", 1, 100, 0, &v), HISTORY_RECOVERED);
    history_fini(&h);
    release(&ps);
}

/* ---------------------------------------------------------------------------------------------
 * The doc's examples, down to the reply bytes
 * -------------------------------------------------------------------------------------------*/

/* The view's publications as proto_str spans for the encoders. */
static uint32_t spans(const struct history_view *v, struct proto_str *out)
{
    for (uint32_t i = 0; i < v->nr; i++) {
        const struct history_item *it = history_view_at(v, i);
        out[i] = (struct proto_str){(const char *)it->m->data + it->pub_off, it->pub_len};
    }
    return v->nr;
}

static void assert_reply(struct proto_buf *b, const char *want)
{
    if (b->len != strlen(want) || memcmp(b->p, want, b->len) != 0)
        fail_msg("got  %.*s\nwant %s", (int)b->len, b->p, want);
    proto_buf_fini(b);
}

static void doc_examples(void **state)
{
    (void)state;
    struct history h;
    struct pubs ps = {0};
    struct history_view v;
    struct proto_str sp[8];
    struct proto_buf b = {0};
    const struct proto_str epoch = {"a55de5c3", 8};
    history_init(&h, 100, 300, "a55de5c3");
    for (int i = 0; i < 4; i++)
        publish(&h, &ps, 1000);

    /* §5 history with no limit: the position only. */
    struct history_query q = {0};
    assert_int_equal(history_query(&h, &q, 1000, 300, &v), 0);
    proto_encode_history(&b, 6, sp, spans(&v, sp), epoch, h.top);
    assert_reply(
        &b, "{\"id\":6,\"history\":{\"publications\":[],\"epoch\":\"a55de5c3\",\"offset\":4}}");
    /* limit 2, reverse: 4, 3. */
    q = (struct history_query){.limit = 2, .reverse = true};
    assert_int_equal(history_query(&h, &q, 1000, 300, &v), 0);
    proto_encode_history(&b, 8, sp, spans(&v, sp), epoch, h.top);
    assert_reply(&b, "{\"id\":8,\"history\":{\"publications\":[{\"data\":{\"n\":4},\"offset\":4},"
                     "{\"data\":{\"n\":3},\"offset\":3}],\"epoch\":\"a55de5c3\",\"offset\":4}}");
    /* since 2, limit 10: 3, 4. */
    q = (struct history_query){.limit = 10,
                               .has_since = true,
                               .since_offset = 2,
                               .since_epoch = "a55de5c3",
                               .since_epoch_len = 8};
    assert_int_equal(history_query(&h, &q, 1000, 300, &v), 0);
    proto_encode_history(&b, 9, sp, spans(&v, sp), epoch, h.top);
    assert_reply(&b, "{\"id\":9,\"history\":{\"publications\":[{\"data\":{\"n\":3},\"offset\":3},"
                     "{\"data\":{\"n\":4},\"offset\":4}],\"epoch\":\"a55de5c3\",\"offset\":4}}");
    /* since with another epoch: 112. */
    q.since_offset = 1;
    q.since_epoch = "not-the-epoch";
    q.since_epoch_len = 13;
    assert_int_equal(history_query(&h, &q, 1000, 300, &v), -ESTALE);
    proto_encode_error(&b, 10, 112, NULL);
    assert_reply(&b, "{\"id\":10,\"error\":{\"code\":112,\"message\":\"unrecoverable position\"}}");

    /* §8: 3 publications missed while offline, recovered from offset 4. */
    for (int i = 0; i < 3; i++)
        publish(&h, &ps, 1010);
    assert_int_equal(history_recover(&h, 4, "a55de5c3", 8, 1010, 300, &v), HISTORY_RECOVERED);
    struct proto_subscribe_result r = {
        .recoverable = true,
        .epoch = epoch,
        .offset = 4, /* the requested offset */
        .positioned = true,
        .was_recovering = true,
        .recovered = true,
        .pubs = sp,
        .nr_pubs = spans(&v, sp),
    };
    proto_encode_subscribe(&b, 12, &r);
    assert_reply(&b, "{\"id\":12,\"subscribe\":{\"recoverable\":true,\"epoch\":\"a55de5c3\","
                     "\"offset\":4,\"positioned\":true,\"was_recovering\":true,\"recovered\":true,"
                     "\"publications\":[{\"data\":{\"n\":5},\"offset\":5},{\"data\":{\"n\":6},"
                     "\"offset\":6},{\"data\":{\"n\":7},\"offset\":7}]}}");
    history_fini(&h);
    release(&ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_and_epochs), cmocka_unit_test(append_rules),
        cmocka_unit_test(wrap_around),     cmocka_unit_test(since_edges),
        cmocka_unit_test(ttl_expiry),      cmocka_unit_test(recovery_decisions),
        cmocka_unit_test(epoch_change),    cmocka_unit_test(size_zero),
        cmocka_unit_test(doc_examples),    cmocka_unit_test(ring_grows),
    };
    return cmocka_run_group_tests_name("history", tests, NULL, NULL);
}
