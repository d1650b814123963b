/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/msg.c, through the public header only: the frame layout msg_frame
 * builds (header, payload, room name after the frame bytes), the fields msg_create sets, and
 * the reference count, including two threads dropping references to one msg at once.
 *
 * A msg that is never freed shows up in the leak check and one freed twice as a double free,
 * so the suite is meant to run under ASan (and the threaded cases under TSan too).
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "msg.h"
#include "ws_frame.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static unsigned refs_of(struct msg *m)
{
    return atomic_load_explicit(&m->refs, memory_order_relaxed);
}

/* A payload whose bytes depend on their position, so a shifted copy is noticed. */
static uint8_t *make_payload(size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 7 + 3);
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * msg_create
 * -------------------------------------------------------------------------------------------*/

static void create_sets_every_field(void **state)
{
    (void)state;
    struct msg *m = msg_create(40, 9);
    assert_non_null(m);
    assert_int_equal(refs_of(m), 1);
    assert_int_equal(m->len, 40);
    assert_int_equal(m->name_len, 9);
    assert_int_equal(m->room_hash, 0);
    assert_int_equal(m->origin, UINT32_MAX);
    assert_int_equal(m->origin_gen, 0);
    assert_int_equal(m->opcode, 0);
    /* The allocation holds len + name_len bytes: ASan reports a write past them. */
    memset(m->data, 0xab, 40 + 9);
    assert_ptr_equal(msg_room_name(m), (const char *)m->data + 40);
    msg_unref(m);
}

static void create_empty(void **state)
{
    (void)state;
    struct msg *m = msg_create(0, 0);
    assert_non_null(m);
    assert_int_equal(m->len, 0);
    assert_int_equal(m->name_len, 0);
    assert_ptr_equal(msg_room_name(m), (const char *)m->data);
    msg_unref(m);
}

/* ---------------------------------------------------------------------------------------------
 * msg_frame: one row per length class of RFC 6455 §5.2 (7-bit, 16-bit and 64-bit lengths)
 * -------------------------------------------------------------------------------------------*/

struct frame_row {
    const char *what;
    uint8_t opcode;
    size_t len;
    const char *name;
    size_t hdr_len;
    uint8_t hdr[10];
};

static const struct frame_row frame_rows[] = {
    {"empty text, no room", WS_OP_TEXT, 0, NULL, 2, {0x81, 0x00}},
    {"empty binary, room", WS_OP_BINARY, 0, "lobby", 2, {0x82, 0x00}},
    {"125: largest 7-bit length", WS_OP_TEXT, 125, "r", 2, {0x81, 125}},
    {"126: smallest 16-bit length", WS_OP_BINARY, 126, "room-126", 4, {0x82, 126, 0x00, 126}},
    {"65535: largest 16-bit length", WS_OP_TEXT, 65535, "x", 4, {0x81, 126, 0xff, 0xff}},
    {"65536: smallest 64-bit length",
     WS_OP_BINARY,
     65536,
     "big",
     10,
     {0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
    {"pong with 125 bytes", WS_OP_PONG, 125, NULL, 2, {0x8a, 125}},
};

static void frame_layout_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(frame_rows) / sizeof(frame_rows[0]); i++) {
        const struct frame_row *row = &frame_rows[i];
        size_t name_len = row->name ? strlen(row->name) : 0;
        uint8_t *p = make_payload(row->len);
        struct msg *m = msg_frame(row->opcode, p, row->len, row->name, name_len);

        print_message("row: %s\n", row->what);
        assert_non_null(m);
        assert_int_equal(refs_of(m), 1);
        assert_int_equal(m->opcode, row->opcode);
        assert_int_equal(m->len, row->hdr_len + row->len);
        assert_int_equal(m->name_len, name_len);
        assert_int_equal(m->room_hash, 0);
        assert_int_equal(m->origin, UINT32_MAX);
        /* FIN set, RSV clear, no mask bit: a server frame. */
        assert_memory_equal(m->data, row->hdr, row->hdr_len);
        assert_int_equal(m->data[0] & 0x80, 0x80);
        assert_int_equal(m->data[1] & 0x80, 0);
        if (row->len)
            assert_memory_equal(m->data + row->hdr_len, p, row->len);
        if (name_len)
            assert_memory_equal(msg_room_name(m), row->name, name_len);
        assert_ptr_equal(msg_room_name(m), (const char *)m->data + m->len);
        /* msg_payload finds the payload again behind each header size. */
        size_t plen = 99;
        assert_ptr_equal(msg_payload(m, &plen), m->data + row->hdr_len);
        assert_int_equal(plen, row->len);
        msg_unref(m);
        free(p);
    }
}

/* The frame header is what ws_frame_header writes, whatever the length. */
static void frame_header_matches_encoder(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 124, 125, 126, 127, 1000, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t hdr[WS_HEADER_MAX];
        size_t h = ws_frame_header(hdr, WS_OP_TEXT, true, lens[i], NULL);
        uint8_t *p = make_payload(lens[i]);
        struct msg *m = msg_frame(WS_OP_TEXT, p, lens[i], "n", 1);
        assert_non_null(m);
        assert_int_equal(m->len, h + lens[i]);
        assert_memory_equal(m->data, hdr, h);
        assert_int_equal(msg_room_name(m)[0], 'n');
        msg_unref(m);
        free(p);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Reference counts, one thread
 * -------------------------------------------------------------------------------------------*/

static void ref_unref_counts(void **state)
{
    (void)state;
    struct msg *m = msg_create(4, 0);
    assert_non_null(m);
    assert_ptr_equal(msg_ref(m), m);
    assert_int_equal(refs_of(m), 2);
    msg_ref_n(m, 5);
    assert_int_equal(refs_of(m), 7);
    msg_ref_n(m, 0);
    assert_int_equal(refs_of(m), 7);
    for (unsigned expect = 6; expect > 0; expect--) {
        msg_unref(m);
        assert_int_equal(refs_of(m), expect);
    }
    msg_unref(m); /* the last one frees: the leak check fails otherwise */
}

/* ---------------------------------------------------------------------------------------------
 * Reference counts, two threads
 * -------------------------------------------------------------------------------------------*/

#define DROPS_PER_THREAD 50000u
#define ROUNDS           200u
#define DROPS_PER_ROUND  500u

struct dropper {
    pthread_barrier_t *start;
    struct msg **msgs;
    unsigned nr_msgs;
    unsigned drops; /* per msg */
};

/* Drops <drops> references to each msg, all threads starting together. */
static void *drop_refs(void *arg)
{
    struct dropper *d = arg;
    pthread_barrier_wait(d->start);
    for (unsigned i = 0; i < d->nr_msgs; i++)
        for (unsigned k = 0; k < d->drops; k++)
            msg_unref(d->msgs[i]);
    return NULL;
}

static void run_droppers(struct msg **msgs, unsigned nr_msgs, unsigned drops)
{
    pthread_barrier_t start;
    pthread_t t[2];
    struct dropper d = {.start = &start, .msgs = msgs, .nr_msgs = nr_msgs, .drops = drops};

    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, drop_refs, &d), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&start);
}

/* No decrement is lost: with the main thread holding one reference, exactly that one is left. */
static void two_threads_lose_no_decrement(void **state)
{
    (void)state;
    struct msg *m = msg_create(16, 4);
    assert_non_null(m);
    msg_ref_n(m, 2 * DROPS_PER_THREAD);
    assert_int_equal(refs_of(m), 2 * DROPS_PER_THREAD + 1);
    run_droppers(&m, 1, DROPS_PER_THREAD);
    assert_int_equal(refs_of(m), 1);
    msg_unref(m);
}

/*
 * The threads drop every reference, so whichever thread takes the count to zero frees. Many
 * msgs, so that the last drop lands on both threads over the run. A msg freed twice is a double
 * free under ASan; one never freed is a leak at exit.
 */
static void two_threads_free_exactly_once(void **state)
{
    (void)state;
    struct msg **msgs = calloc(ROUNDS, sizeof(*msgs));
    assert_non_null(msgs);
    for (unsigned i = 0; i < ROUNDS; i++) {
        msgs[i] = msg_frame(WS_OP_TEXT, (const uint8_t *)"hi", 2, "room", 4);
        assert_non_null(msgs[i]);
        msg_ref_n(msgs[i], 2 * DROPS_PER_ROUND - 1);
        assert_int_equal(refs_of(msgs[i]), 2 * DROPS_PER_ROUND);
    }
    run_droppers(msgs, ROUNDS, DROPS_PER_ROUND);
    free(msgs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_sets_every_field),
        cmocka_unit_test(create_empty),
        cmocka_unit_test(frame_layout_rows),
        cmocka_unit_test(frame_header_matches_encoder),
        cmocka_unit_test(ref_unref_counts),
        cmocka_unit_test(two_threads_lose_no_decrement),
        cmocka_unit_test(two_threads_free_exactly_once),
    };
    return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
