/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/room.c without io_uring: room table, member lists, the home shard's
 * member bitmap and the publish path publisher -> home -> member shards.
 *
 * room.c is compiled into this file by including it (h2o style), which reaches its static
 * functions (room_find, room_get) and struct room. Its two calls out of the module are
 * replaced by the test doubles below: conn_enqueue records a delivery and shard_push records
 * an envelope, which route_all() then hands to room_handle_envelope on the target shard, as
 * the xshard inbox would (FIFO per pair).
 *
 * Linking: room.o, conn.o and shard.o are also in libringcast_engine.a. A static library
 * member is only pulled in to resolve a symbol still undefined, and this file defines every
 * symbol room.o exports plus the only two (conn_enqueue, shard_push) that would pull conn.o or
 * shard.o, so none of the three is linked: the archive gives msg.o and ws_frame.o only. Were
 * one of them pulled after all, the link would fail with a multiple definition, not silently
 * test the wrong code.
 *
 * Forced hash collisions: room_hash() calls XXH3_64bits_withSeed; a macro defined before the
 * include routes that call through room_test_hash(), which returns FORCED_HASH for names
 * starting with FORCED_PREFIX and the real seeded XXH3 for every other name.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static uint64_t room_test_hash(const void *p, size_t len, uint64_t seed);
#define XXH3_64bits_withSeed(p, len, seed) room_test_hash(p, len, seed)
#include "../../engine/room.c"
#undef XXH3_64bits_withSeed

#define SEED          0x5eed5eed12345678ull
#define FORCED_PREFIX "#c-"
#define FORCED_HASH   42ull /* home 2 of 4 shards */

static uint64_t room_test_hash(const void *p, size_t len, uint64_t seed)
{
    size_t plen = sizeof(FORCED_PREFIX) - 1;
    if (len >= plen && memcmp(p, FORCED_PREFIX, plen) == 0)
        return FORCED_HASH;
    return XXH3_64bits_withSeed(p, len, seed);
}

/* ---------------------------------------------------------------------------------------------
 * Fake engine, shards and connections
 * -------------------------------------------------------------------------------------------*/

#define MAX_SHARDS 4
#define MAX_CONNS  64

static struct engine g_eng;
static struct shard g_shards[MAX_SHARDS];
static struct conn g_conns[MAX_CONNS];
static unsigned g_conn_shard[MAX_CONNS]; /* the shard each of g_conns joined on */

/* The index of <c> in g_conns, or -1 for a connection allocated elsewhere. */
static int conn_index(const struct conn *c)
{
    uintptr_t p = (uintptr_t)c, base = (uintptr_t)g_conns;
    if (p < base || p >= base + sizeof(g_conns))
        return -1;
    return (int)((p - base) / sizeof(g_conns[0]));
}

/* ---------------------------------------------------------------------------------------------
 * Test doubles: conn_enqueue and shard_push
 * -------------------------------------------------------------------------------------------*/

struct delivery {
    struct conn *c;
    struct msg *m; /* the reference, when g_keep_refs; else NULL (already dropped) */
    uint32_t origin, origin_gen;
    uint8_t b0;    /* first frame byte: FIN | opcode */
    char text[32]; /* payload of a short frame */
};

struct env_rec {
    unsigned to;
    struct xshard_env env;
};

#define MAX_DELIVERIES 4096
#define MAX_ENVS       4096

static struct delivery g_dl[MAX_DELIVERIES];
static size_t g_nr_dl;
static struct env_rec g_envs[MAX_ENVS];
static size_t g_nr_envs, g_env_head; /* recorded, and routed so far */
static bool g_keep_refs;
static struct conn *g_close_on_enqueue[4]; /* these leave their room when sent to */

void conn_enqueue(struct shard *s, struct conn *c, struct msg *m)
{
    assert_true(g_nr_dl < MAX_DELIVERIES);
    assert_true(m->len >= 2 && m->len - 2 < sizeof(g_dl[0].text));
    /* A connection is only ever sent to by the shard that owns it. */
    if (conn_index(c) >= 0)
        assert_int_equal(g_conn_shard[conn_index(c)], s->id);
    struct delivery *d = &g_dl[g_nr_dl++];
    memset(d, 0, sizeof(*d));
    d->c = c;
    d->origin = m->origin;
    d->origin_gen = m->origin_gen;
    d->b0 = m->data[0];
    memcpy(d->text, m->data + 2, m->len - 2);
    if (g_keep_refs)
        d->m = m;
    else
        msg_unref(m);
    /* The slow-consumer close: conn_close_ws leaves the room from inside the fan-out. */
    for (size_t i = 0; i < sizeof(g_close_on_enqueue) / sizeof(g_close_on_enqueue[0]); i++)
        if (g_close_on_enqueue[i] == c) {
            room_leave(s, c);
            c->state = CONN_CLOSING;
        }
}

void shard_push(struct shard *s, unsigned to, uint32_t kind, void *ptr, uint64_t val)
{
    assert_true(g_nr_envs < MAX_ENVS);
    assert_true(to < g_eng.nr_shards);
    assert_int_not_equal(to, s->id); /* a shard never sends itself an envelope */
    struct env_rec *r = &g_envs[g_nr_envs++];
    r->to = to;
    r->env.kind = kind;
    r->env.arg = s->id;
    r->env.ptr = ptr;
    r->env.val = val;
}

/* Hands every recorded envelope to its target, including those pushed meanwhile, in order. */
static void route_all(void)
{
    while (g_env_head < g_nr_envs) {
        struct env_rec r = g_envs[g_env_head++];
        room_handle_envelope(&g_shards[r.to], &r.env);
    }
}

/* Routes what is pending and forgets every record, so that a test step starts counting at 0. */
static void settle(void)
{
    route_all();
    g_nr_envs = g_env_head = 0;
    g_nr_dl = 0;
}

static void release_deliveries(void)
{
    for (size_t i = 0; i < g_nr_dl; i++)
        if (g_dl[i].m) {
            msg_unref(g_dl[i].m);
            g_dl[i].m = NULL;
        }
}

/* ---------------------------------------------------------------------------------------------
 * Fixtures and helpers
 * -------------------------------------------------------------------------------------------*/

static void reset_world(unsigned nr_shards)
{
    memset(&g_eng, 0, sizeof(g_eng));
    memset(g_shards, 0, sizeof(g_shards));
    memset(g_conns, 0, sizeof(g_conns));
    memset(g_conn_shard, 0, sizeof(g_conn_shard));
    memset(g_close_on_enqueue, 0, sizeof(g_close_on_enqueue));
    g_nr_dl = g_nr_envs = g_env_head = 0;
    g_keep_refs = false;
    g_eng.nr_shards = nr_shards;
    g_eng.shards = g_shards;
    g_eng.room_seed = SEED;
    for (unsigned i = 0; i < nr_shards; i++) {
        g_shards[i].id = i;
        g_shards[i].eng = &g_eng;
    }
}

static int setup_1(void **state)
{
    (void)state;
    reset_world(1);
    return 0;
}

static int setup_4(void **state)
{
    (void)state;
    reset_world(4);
    return 0;
}

/* Drops what a failed test left behind, so that only real leaks reach the leak check. */
static int teardown(void **state)
{
    (void)state;
    for (size_t i = g_env_head; i < g_nr_envs; i++)
        msg_unref(g_envs[i].env.ptr);
    g_nr_envs = g_env_head = 0;
    release_deliveries();
    g_nr_dl = 0;
    for (unsigned i = 0; i < g_eng.nr_shards; i++)
        room_table_fini(&g_shards[i]);
    return 0;
}

static struct conn *mkconn(unsigned k, uint32_t idx, uint32_t gen)
{
    assert_true(k < MAX_CONNS);
    struct conn *c = &g_conns[k];
    memset(c, 0, sizeof(*c));
    c->state = CONN_WS;
    c->idx = idx;
    c->gen = gen;
    return c;
}

static void join(unsigned shard, struct conn *c, const char *name)
{
    if (conn_index(c) >= 0)
        g_conn_shard[conn_index(c)] = shard;
    assert_int_equal(room_join(&g_shards[shard], c, name, strlen(name)), 0);
    assert_non_null(c->room);
}

static void leave(unsigned shard, struct conn *c)
{
    room_leave(&g_shards[shard], c);
    assert_null(c->room);
    assert_null(c->room_next);
    assert_null(c->room_prev);
}

static void publish(unsigned shard, struct conn *c, const char *text)
{
    assert_int_equal(
        room_publish(&g_shards[shard], c, WS_OP_TEXT, (const uint8_t *)text, strlen(text)), 0);
}

static struct room *lookup(unsigned shard, const char *name)
{
    size_t len = strlen(name);
    return room_find(&g_shards[shard].rooms, room_hash(&g_eng, name, len), name, len);
}

static uint64_t rooms_stat(unsigned shard)
{
    return atomic_load_explicit(&g_shards[shard].stats.rooms, memory_order_relaxed);
}

/* A room name whose home is <home> with the current number of shards. */
static void name_with_home(char *out, size_t cap, unsigned home)
{
    for (unsigned i = 0;; i++) {
        snprintf(out, cap, "room-%u", i);
        if (room_home(&g_eng, room_hash(&g_eng, out, strlen(out))) == home)
            return;
    }
}

/* The member list of <r> is exactly <expect>[0..<n>), in order, and doubly linked. */
static void check_members(struct room *r, struct conn *const *expect, size_t n)
{
    assert_non_null(r);
    assert_int_equal(r->nr_members, n);
    struct conn *prev = NULL;
    size_t i = 0;
    for (struct conn *c = r->members; c; c = c->room_next, i++) {
        assert_true(i < n);
        assert_ptr_equal(c, expect[i]);
        assert_ptr_equal(c->room, r);
        assert_ptr_equal(c->room_prev, prev);
        prev = c;
    }
    assert_int_equal(i, n);
}

static unsigned nr_delivered_to(const struct conn *c)
{
    unsigned n = 0;
    for (size_t i = 0; i < g_nr_dl; i++)
        n += g_dl[i].c == c;
    return n;
}

static unsigned nr_envs(uint32_t kind, unsigned from, unsigned to)
{
    unsigned n = 0;
    for (size_t i = 0; i < g_nr_envs; i++)
        n += g_envs[i].env.kind == kind && g_envs[i].env.arg == from && g_envs[i].to == to;
    return n;
}

static void check_no_rooms(void)
{
    for (unsigned i = 0; i < g_eng.nr_shards; i++) {
        assert_int_equal(g_shards[i].rooms.nr, 0);
        assert_int_equal(rooms_stat(i), 0);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Hash and home
 * -------------------------------------------------------------------------------------------*/

static void hash_is_seeded_and_home_is_modulo(void **state)
{
    (void)state;
    unsigned seen_home[MAX_SHARDS] = {0};
    for (unsigned i = 0; i < 200; i++) {
        char name[32];
        int len = snprintf(name, sizeof(name), "room-%u", i);
        uint64_t h = room_hash(&g_eng, name, (size_t)len);
        assert_int_equal(h, XXH3_64bits_withSeed(name, (size_t)len, SEED));
        assert_int_equal(room_home(&g_eng, h), h % 4);
        seen_home[room_home(&g_eng, h)]++;

        struct engine other;
        memset(&other, 0, sizeof(other));
        other.nr_shards = 4;
        other.room_seed = SEED + 1;
        assert_int_not_equal(room_hash(&other, name, (size_t)len), h);
        other.nr_shards = 1;
        assert_int_equal(room_home(&other, h), 0);
    }
    /* Every shard is some room's home. */
    for (unsigned i = 0; i < MAX_SHARDS; i++)
        assert_true(seen_home[i] > 0);
    /* Hashing covers the bytes given, not a C string. */
    assert_int_not_equal(room_hash(&g_eng, "ab", 1), room_hash(&g_eng, "ab", 2));
    assert_int_equal(room_hash(&g_eng, "ab", 1), room_hash(&g_eng, "ax", 1));
}

/* ---------------------------------------------------------------------------------------------
 * Join and leave: member lists, room lifetime
 * -------------------------------------------------------------------------------------------*/

/* On the room's home shard, so that the list and the table are all there is to watch. */
static void join_leave_member_list(void **state)
{
    (void)state;
    unsigned sh = room_home(&g_eng, room_hash(&g_eng, "lobby", 5));
    struct conn *a = mkconn(0, 10, 1), *b = mkconn(1, 11, 1), *c = mkconn(2, 12, 1);
    struct conn *d = mkconn(3, 13, 1);
    join(sh, a, "lobby");
    join(sh, b, "lobby");
    join(sh, c, "lobby");
    join(sh, d, "lobby");
    struct room *r = lookup(sh, "lobby");
    assert_non_null(r);
    assert_int_equal(r->home, sh);
    assert_int_equal(r->shard_mask, 1ull << sh); /* the home's own members count in its bitmap */
    assert_int_equal(g_shards[sh].rooms.nr, 1);
    assert_int_equal(rooms_stat(sh), 1);
    check_members(r, (struct conn *[]){d, c, b, a}, 4);

    leave(sh, b); /* middle */
    check_members(r, (struct conn *[]){d, c, a}, 3);
    leave(sh, d); /* first */
    check_members(r, (struct conn *[]){c, a}, 2);
    leave(sh, a); /* last */
    check_members(r, (struct conn *[]){c}, 1);
    assert_int_equal(r->shard_mask, 1ull << sh);
    leave(sh, c); /* only */
    assert_null(lookup(sh, "lobby"));
    check_no_rooms();

    /* A room comes back when joined again. */
    join(sh, c, "lobby");
    check_members(lookup(sh, "lobby"), (struct conn *[]){c}, 1);
    leave(sh, c);
    check_no_rooms();
    /* Members at home: nothing crosses shards. */
    assert_int_equal(g_nr_envs, 0);
}

static void leave_without_room_is_a_no_op(void **state)
{
    (void)state;
    struct conn *a = mkconn(0, 1, 1), *b = mkconn(1, 2, 1);
    leave(0, a);
    join(0, b, "x");
    leave(0, b);
    leave(0, b);
    check_no_rooms();
    assert_int_equal(g_nr_envs, 0);
}

static void several_rooms_are_separate(void **state)
{
    (void)state;
    struct conn *a = mkconn(0, 1, 1), *b = mkconn(1, 2, 1), *c = mkconn(2, 3, 1);
    join(0, a, "one");
    join(0, b, "two");
    join(0, c, "one");
    assert_int_equal(g_shards[0].rooms.nr, 2);
    check_members(lookup(0, "one"), (struct conn *[]){c, a}, 2);
    check_members(lookup(0, "two"), (struct conn *[]){b}, 1);
    leave(0, b);
    assert_null(lookup(0, "two"));
    check_members(lookup(0, "one"), (struct conn *[]){c, a}, 2);
    leave(0, a);
    leave(0, c);
    check_no_rooms();
}

/* ---------------------------------------------------------------------------------------------
 * JOIN / LEAVE envelopes and the home's member bitmap
 * -------------------------------------------------------------------------------------------*/

static void first_member_off_home_tells_home(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    uint64_t hash = room_hash(&g_eng, name, strlen(name));
    struct conn *a = mkconn(0, 1, 1), *b = mkconn(1, 2, 1);

    join(0, a, name);
    assert_int_equal(g_nr_envs, 1);
    const struct env_rec *e = &g_envs[0];
    assert_int_equal(e->to, 2);
    assert_int_equal(e->env.kind, XS_JOIN);
    assert_int_equal(e->env.arg, 0);
    assert_int_equal(e->env.val, 0);
    const struct msg *m = e->env.ptr;
    assert_int_equal(m->len, 0);
    assert_int_equal(m->room_hash, hash);
    assert_int_equal(m->name_len, strlen(name));
    assert_memory_equal(msg_room_name(m), name, strlen(name));

    struct room *r = lookup(0, name);
    assert_non_null(r);
    assert_int_equal(r->home, 2);
    assert_int_equal(r->shard_mask, 0); /* only the home keeps a bitmap */

    join(0, b, name); /* not the first: no envelope */
    assert_int_equal(g_nr_envs, 1);

    route_all();
    struct room *home = lookup(2, name);
    assert_non_null(home);
    assert_int_equal(home->nr_members, 0);
    assert_int_equal(home->shard_mask, 1u << 0);
    assert_int_equal(rooms_stat(2), 1);

    leave(0, b); /* not the last: no envelope */
    assert_int_equal(g_nr_envs, 1);
    leave(0, a);
    assert_int_equal(g_nr_envs, 2);
    assert_int_equal(g_envs[1].env.kind, XS_LEAVE);
    assert_int_equal(g_envs[1].to, 2);
    assert_int_equal(g_envs[1].env.val, 0);
    assert_null(lookup(0, name)); /* freed on the member shard at once */
    assert_int_equal(g_shards[0].rooms.nr, 0);

    route_all();
    assert_null(lookup(2, name)); /* and at home once the LEAVE arrives */
    check_no_rooms();
}

static void rejoin_tells_home_again(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 3);
    struct conn *a = mkconn(0, 1, 1);
    join(1, a, name);
    leave(1, a);
    join(1, a, name);
    assert_int_equal(g_nr_envs, 3);
    assert_int_equal(g_envs[0].env.kind, XS_JOIN);
    assert_int_equal(g_envs[1].env.kind, XS_LEAVE);
    assert_int_equal(g_envs[2].env.kind, XS_JOIN);
    route_all();
    struct room *home = lookup(3, name);
    assert_non_null(home);
    assert_int_equal(home->shard_mask, 1u << 1);
    leave(1, a);
    route_all();
    check_no_rooms();
}

static void home_bitmap_follows_joins_and_leaves(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *c0 = mkconn(0, 1, 1), *c1 = mkconn(1, 1, 1), *c3 = mkconn(2, 1, 1);
    struct conn *h0 = mkconn(3, 1, 1), *h1 = mkconn(4, 2, 1);

    join(2, h0, name);
    join(2, h1, name);
    assert_int_equal(g_nr_envs, 0); /* the home's own members need no envelope */
    struct room *home = lookup(2, name);
    assert_int_equal(home->shard_mask, 1u << 2);

    join(0, c0, name);
    join(1, c1, name);
    join(3, c3, name);
    route_all();
    assert_int_equal(home->shard_mask, 0xf);

    leave(2, h0);
    assert_int_equal(home->shard_mask, 0xf);
    leave(2, h1);
    assert_int_equal(home->shard_mask, 0xb); /* bit 2 off, the room stays for the others */
    assert_ptr_equal(lookup(2, name), home);
    assert_int_equal(home->nr_members, 0);

    leave(1, c1);
    route_all();
    assert_int_equal(home->shard_mask, 0x9);
    leave(0, c0);
    route_all();
    assert_int_equal(home->shard_mask, 0x8);
    leave(3, c3);
    route_all();
    assert_null(lookup(2, name));
    check_no_rooms();
}

/* ---------------------------------------------------------------------------------------------
 * Publish
 * -------------------------------------------------------------------------------------------*/

static void publish_on_home_delivers_to_local_members(void **state)
{
    (void)state;
    struct conn *p = mkconn(0, 7, 3), *a = mkconn(1, 8, 1), *b = mkconn(2, 9, 1);
    struct conn *e = mkconn(3, 10, 1), *x = mkconn(4, 11, 1);
    e->flags |= CF_ECHO_SELF;
    join(0, p, "chat");
    join(0, a, "chat");
    join(0, b, "chat");
    join(0, e, "chat");
    join(0, x, "chat");
    x->state = CONN_CLOSING; /* not sent to: only upgraded members are */

    publish(0, p, "hello");
    assert_int_equal(g_nr_envs, 0);
    assert_int_equal(g_nr_dl, 3);
    assert_int_equal(nr_delivered_to(p), 0);
    assert_int_equal(nr_delivered_to(a), 1);
    assert_int_equal(nr_delivered_to(b), 1);
    assert_int_equal(nr_delivered_to(e), 1);
    assert_int_equal(nr_delivered_to(x), 0);
    for (size_t i = 0; i < g_nr_dl; i++) {
        assert_int_equal(g_dl[i].b0, 0x80 | WS_OP_TEXT);
        assert_string_equal(g_dl[i].text, "hello");
        assert_int_equal(g_dl[i].origin, 0u << 24 | 7);
        assert_int_equal(g_dl[i].origin_gen, 3);
    }

    settle();
    publish(0, e, "echo"); /* CF_ECHO_SELF: the publisher gets its own message */
    assert_int_equal(g_nr_dl, 4);
    assert_int_equal(nr_delivered_to(e), 1);
    assert_int_equal(nr_delivered_to(p), 1);
    assert_int_equal(nr_delivered_to(x), 0);

    /* The same slot with a newer generation is another connection: it is not skipped. */
    settle();
    a->idx = p->idx;
    a->gen = p->gen + 1;
    publish(0, p, "gen");
    assert_int_equal(nr_delivered_to(a), 1);
    assert_int_equal(nr_delivered_to(p), 0);

    settle();
    struct conn *all[] = {p, a, b, e, x};
    for (size_t i = 0; i < 5; i++)
        leave(0, all[i]);
    check_no_rooms();
}

/* Members on every shard; the membership is routed before the test step begins. */
static void populate(const char *name, struct conn **remote, unsigned per_shard, unsigned home)
{
    unsigned k = 0;
    for (unsigned sh = 0; sh < 4; sh++) {
        if (sh == home)
            continue;
        for (unsigned i = 0; i < per_shard; i++, k++) {
            remote[k] = mkconn(20 + k, 100 + i, 1);
            join(sh, remote[k], name);
        }
    }
    settle();
}

static void publish_at_home_sends_one_deliver_per_member_shard(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *remote[9];
    struct conn *p = mkconn(0, 100, 1), *h = mkconn(1, 101, 1);
    join(2, p, name);
    join(2, h, name);
    populate(name, remote, 3, 2);

    publish(2, p, "fan");
    /* One XS_DELIVER per other member shard, never one per member, none to itself. */
    assert_int_equal(g_nr_envs, 3);
    assert_int_equal(nr_envs(XS_DELIVER, 2, 0), 1);
    assert_int_equal(nr_envs(XS_DELIVER, 2, 1), 1);
    assert_int_equal(nr_envs(XS_DELIVER, 2, 3), 1);
    assert_int_equal(g_nr_dl, 1); /* h, at once */
    assert_int_equal(nr_delivered_to(h), 1);

    route_all();
    assert_int_equal(g_nr_envs, 3); /* member shards push nothing further */
    assert_int_equal(g_nr_dl, 10);
    assert_int_equal(nr_delivered_to(p), 0);
    for (unsigned i = 0; i < 9; i++)
        assert_int_equal(nr_delivered_to(remote[i]), 1);
    for (size_t i = 0; i < g_nr_dl; i++)
        assert_string_equal(g_dl[i].text, "fan");

    settle();
    leave(2, p);
    leave(2, h);
    for (unsigned i = 0; i < 9; i++)
        leave(i / 3 < 2 ? i / 3 : 3, remote[i]);
    route_all();
    check_no_rooms();
}

static void publish_off_home_goes_through_home(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *remote[9];
    struct conn *h = mkconn(0, 100, 1);
    join(2, h, name);
    populate(name, remote, 3, 2);
    struct conn *q = remote[3]; /* on shard 1 */

    publish(1, q, "via-home");
    assert_int_equal(g_nr_envs, 1);
    assert_int_equal(nr_envs(XS_PUBLISH, 1, 2), 1);
    assert_int_equal(g_nr_dl, 0); /* not even the publisher's neighbours yet: order via home */
    const struct msg *m = g_envs[0].env.ptr;
    assert_int_equal(m->origin, 1u << 24 | q->idx);
    assert_int_equal(m->origin_gen, q->gen);

    route_all();
    /* Home fans out to 0, 1 (the publisher's shard, for its other members) and 3. */
    assert_int_equal(g_nr_envs, 4);
    assert_int_equal(nr_envs(XS_DELIVER, 2, 0), 1);
    assert_int_equal(nr_envs(XS_DELIVER, 2, 1), 1);
    assert_int_equal(nr_envs(XS_DELIVER, 2, 3), 1);
    assert_int_equal(nr_envs(XS_DELIVER, 2, 2), 0);
    assert_int_equal(nr_delivered_to(q), 0);
    assert_int_equal(nr_delivered_to(h), 1);
    for (unsigned i = 0; i < 9; i++)
        if (remote[i] != q)
            assert_int_equal(nr_delivered_to(remote[i]), 1);
    assert_int_equal(g_nr_dl, 9);

    /* Without members at home, the home's room still fans out. */
    settle();
    leave(2, h);
    publish(0, remote[0], "no-home-members");
    route_all();
    assert_int_equal(nr_delivered_to(h), 0);
    assert_int_equal(nr_delivered_to(remote[0]), 0);
    assert_int_equal(g_nr_dl, 8);

    settle();
    for (unsigned i = 0; i < 9; i++)
        leave(i / 3 < 2 ? i / 3 : 3, remote[i]);
    route_all();
    check_no_rooms();
}

/* XS_DELIVER: origin is shard << 24 | slot, plus the slot's generation. */
static void deliver_skips_publisher_only_on_its_own_shard(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 0);
    struct conn *a = mkconn(0, 5, 7), *c = mkconn(1, 6, 7); /* shard 1 */
    struct conn *d = mkconn(2, 5, 7);                       /* shard 3: same slot and gen */
    join(1, a, name);
    join(1, c, name);
    join(3, d, name);
    settle();

    struct msg *m = msg_frame(WS_OP_TEXT, (const uint8_t *)"hi", 2, name, strlen(name));
    assert_non_null(m);
    m->room_hash = room_hash(&g_eng, name, strlen(name));
    m->origin = 1u << 24 | 5;
    m->origin_gen = 7;

    struct xshard_env env = {.kind = XS_DELIVER, .arg = 0, .ptr = msg_ref(m)};
    room_handle_envelope(&g_shards[1], &env);
    assert_int_equal(nr_delivered_to(a), 0); /* the publisher */
    assert_int_equal(nr_delivered_to(c), 1);
    env.ptr = msg_ref(m);
    room_handle_envelope(&g_shards[3], &env);
    assert_int_equal(nr_delivered_to(d), 1); /* same slot, other shard */

    /* A stale generation: slot 5 was reused since, so its holder is not the publisher. */
    m->origin_gen = 6;
    env.ptr = msg_ref(m);
    room_handle_envelope(&g_shards[1], &env);
    assert_int_equal(nr_delivered_to(a), 1);
    assert_int_equal(nr_delivered_to(c), 2);
    assert_int_equal(atomic_load(&m->refs), 1); /* each envelope's reference was dropped */
    msg_unref(m);

    leave(1, a);
    leave(1, c);
    leave(3, d);
    route_all();
    check_no_rooms();
}

/* An envelope for a room this shard does not have is dropped, its reference released. */
static void unknown_room_envelopes_are_dropped(void **state)
{
    (void)state;
    static const uint32_t kinds[] = {XS_PUBLISH, XS_DELIVER, XS_LEAVE, 99};
    const char *name = "nowhere";
    struct msg *m = msg_frame(WS_OP_TEXT, (const uint8_t *)"lost", 4, name, strlen(name));
    assert_non_null(m);
    m->room_hash = room_hash(&g_eng, name, strlen(name));
    unsigned home = room_home(&g_eng, m->room_hash);

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        struct xshard_env env = {.kind = kinds[i], .arg = (home + 1) % 4, .ptr = msg_ref(m)};
        env.val = env.arg;
        room_handle_envelope(&g_shards[home], &env);
        assert_int_equal(atomic_load(&m->refs), 1);
        assert_int_equal(g_shards[home].rooms.nr, 0); /* nothing created on the way */
    }
    assert_int_equal(g_nr_dl, 0);
    assert_int_equal(g_nr_envs, 0);
    msg_unref(m);

    /* The last reference goes with the envelope: ASan's leak check sees it freed. */
    m = msg_frame(WS_OP_TEXT, (const uint8_t *)"lost", 4, name, strlen(name));
    assert_non_null(m);
    m->room_hash = room_hash(&g_eng, name, strlen(name));
    struct xshard_env env = {.kind = XS_PUBLISH, .arg = 1, .ptr = m};
    room_handle_envelope(&g_shards[home], &env);
    check_no_rooms();
}

/* Every hop holds exactly the references it will drop, and they all end at zero. */
static void reference_counts_end_at_zero(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *p = mkconn(0, 1, 1), *h1 = mkconn(1, 2, 1), *h2 = mkconn(2, 3, 1);
    struct conn *r0 = mkconn(3, 1, 1), *r1 = mkconn(4, 2, 1), *q = mkconn(5, 1, 1);
    join(2, p, name);
    join(2, h1, name);
    join(2, h2, name);
    join(0, r0, name);
    join(0, r1, name);
    join(3, q, name);
    settle();

    g_keep_refs = true;
    publish(2, p, "count");
    assert_int_equal(g_nr_envs, 2);
    struct msg *m = msg_ref(g_envs[0].env.ptr); /* the test's own, to watch the count */
    /* 2 local deliveries + 2 envelopes + the test's; publish's own reference is gone. */
    assert_int_equal(atomic_load(&m->refs), 5);
    route_all();
    /* Envelopes dropped theirs; 2 + 1 remote deliveries (q is the only one on shard 3). */
    assert_int_equal(g_nr_dl, 5);
    assert_int_equal(atomic_load(&m->refs), 6);
    release_deliveries();
    assert_int_equal(atomic_load(&m->refs), 1);
    msg_unref(m);

    /* From a member shard: PUBLISH to home, then DELIVERs back. */
    settle();
    publish(3, q, "again");
    m = msg_ref(g_envs[0].env.ptr);
    assert_int_equal(atomic_load(&m->refs), 2);
    route_all();
    assert_int_equal(g_nr_dl, 5); /* p, h1, h2, r0, r1 */
    assert_int_equal(atomic_load(&m->refs), 6);
    release_deliveries();
    assert_int_equal(atomic_load(&m->refs), 1);
    msg_unref(m);
    g_keep_refs = false;

    settle();
    struct conn *home_members[] = {p, h1, h2};
    for (size_t i = 0; i < 3; i++)
        leave(2, home_members[i]);
    leave(0, r0);
    leave(0, r1);
    leave(3, q);
    route_all();
    check_no_rooms();
}

/* A member that leaves while being sent to (slow-consumer close) does not derail the fan-out,
 * even when it was the last one and its room is freed under the loop. */
static void member_leaving_during_fanout(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *p = mkconn(0, 1, 1), *a = mkconn(1, 2, 1), *b = mkconn(2, 3, 1);
    struct conn *c = mkconn(3, 4, 1), *z = mkconn(4, 9, 1);
    join(2, p, name);
    join(2, a, name);
    join(2, b, name);
    join(2, c, name);
    join(0, z, name);
    settle();

    g_close_on_enqueue[0] = b;
    g_close_on_enqueue[1] = z;
    publish(2, p, "slow");
    route_all();
    assert_int_equal(nr_delivered_to(a), 1);
    assert_int_equal(nr_delivered_to(b), 1);
    assert_int_equal(nr_delivered_to(c), 1);
    assert_int_equal(nr_delivered_to(z), 1);
    assert_null(b->room);
    check_members(lookup(2, name), (struct conn *[]){c, a, p}, 3);
    /* z was shard 0's last member: its room went, and home heard of it. */
    assert_null(z->room);
    assert_null(lookup(0, name));
    assert_int_equal(nr_envs(XS_LEAVE, 0, 2), 1);
    assert_int_equal(lookup(2, name)->shard_mask, 1u << 2);

    settle();
    g_close_on_enqueue[0] = a;
    g_close_on_enqueue[1] = c;
    publish(2, p, "both");
    assert_int_equal(g_nr_dl, 2);
    check_members(lookup(2, name), (struct conn *[]){p}, 1);
    leave(2, p);
    route_all();
    check_no_rooms();
}

/* ---------------------------------------------------------------------------------------------
 * The table: growth and collisions
 * -------------------------------------------------------------------------------------------*/

#define MANY_ROOMS 500

static void table_grows_past_63_rooms(void **state)
{
    (void)state;
    struct conn *cs = calloc(2 * MANY_ROOMS, sizeof(*cs));
    assert_non_null(cs);
    char name[32];
    for (unsigned i = 0; i < MANY_ROOMS; i++) {
        snprintf(name, sizeof(name), "grow-%u", i);
        for (unsigned k = 0; k < 2; k++) {
            struct conn *c = &cs[2 * i + k];
            c->state = CONN_WS;
            c->idx = 2 * i + k;
            c->gen = 1;
            join(0, c, name);
        }
    }
    struct room_table *t = &g_shards[0].rooms;
    assert_int_equal(t->nr, MANY_ROOMS);
    assert_int_equal(rooms_stat(0), MANY_ROOMS);
    assert_true(t->mask >= MANY_ROOMS);
    assert_int_equal(t->mask & (t->mask + 1), 0); /* 2^k - 1 */
    for (unsigned i = 0; i < MANY_ROOMS; i++) {
        snprintf(name, sizeof(name), "grow-%u", i);
        struct room *r = lookup(0, name);
        assert_non_null(r);
        assert_int_equal(r->name_len, strlen(name));
        assert_memory_equal(r->name, name, strlen(name));
        check_members(r, (struct conn *[]){&cs[2 * i + 1], &cs[2 * i]}, 2);
    }
    /* A publish reaches only its own room. */
    for (unsigned i = 0; i < MANY_ROOMS; i += 97) {
        g_nr_dl = 0;
        publish(0, &cs[2 * i], "only-you");
        assert_int_equal(g_nr_dl, 1);
        assert_ptr_equal(g_dl[0].c, &cs[2 * i + 1]);
    }
    for (unsigned i = 0; i < 2 * MANY_ROOMS; i++)
        leave(0, &cs[i]);
    check_no_rooms();
    free(cs);
}

/* The same over 4 shards: member shards and homes both grow their tables. */
static void table_grows_on_every_shard(void **state)
{
    (void)state;
    struct conn *cs = calloc(MANY_ROOMS, sizeof(*cs));
    assert_non_null(cs);
    char name[32];
    for (unsigned i = 0; i < MANY_ROOMS; i++) {
        snprintf(name, sizeof(name), "many-%u", i);
        cs[i].state = CONN_WS;
        cs[i].idx = i;
        join(i % 4, &cs[i], name);
    }
    route_all();
    for (unsigned i = 0; i < MANY_ROOMS; i++) {
        snprintf(name, sizeof(name), "many-%u", i);
        unsigned home = room_home(&g_eng, room_hash(&g_eng, name, strlen(name)));
        struct room *r = lookup(home, name);
        assert_non_null(r);
        assert_int_equal(r->shard_mask, 1ull << (i % 4));
    }
    for (unsigned sh = 0; sh < 4; sh++)
        assert_true(g_shards[sh].rooms.mask > 63);
    for (unsigned i = 0; i < MANY_ROOMS; i++)
        leave(i % 4, &cs[i]);
    route_all();
    check_no_rooms();
    free(cs);
}

/* Rooms in one bucket (equal hash & mask, different hashes) are told apart. */
static void bucket_neighbours_are_told_apart(void **state)
{
    (void)state;
    char names[3][32];
    uint64_t bucket = room_hash(&g_eng, "b-0", 3) & 63;
    unsigned found = 0;
    snprintf(names[found++], sizeof(names[0]), "b-0");
    for (unsigned i = 1; found < 3; i++) {
        snprintf(names[found], sizeof(names[0]), "b-%u", i);
        if ((room_hash(&g_eng, names[found], strlen(names[found])) & 63) == bucket)
            found++;
    }
    struct conn *c[3];
    for (unsigned i = 0; i < 3; i++) {
        c[i] = mkconn(i, i, 1);
        join(0, c[i], names[i]);
    }
    assert_int_equal(g_shards[0].rooms.mask, 63);
    assert_int_equal(g_shards[0].rooms.nr, 3);
    for (unsigned i = 0; i < 3; i++)
        check_members(lookup(0, names[i]), (struct conn *[]){c[i]}, 1);
    leave(0, c[1]); /* unlinks from the middle of the chain */
    assert_null(lookup(0, names[1]));
    check_members(lookup(0, names[0]), (struct conn *[]){c[0]}, 1);
    check_members(lookup(0, names[2]), (struct conn *[]){c[2]}, 1);
    leave(0, c[0]);
    leave(0, c[2]);
    check_no_rooms();
}

/* Names with the same 64-bit hash (forced) are still different rooms, everywhere. */
static void equal_hashes_are_told_apart(void **state)
{
    (void)state;
    const char *alpha = FORCED_PREFIX "alpha", *alphb = FORCED_PREFIX "alphb";
    const char *beta = FORCED_PREFIX "beta";
    assert_int_equal(room_hash(&g_eng, alpha, strlen(alpha)), FORCED_HASH);
    assert_int_equal(room_hash(&g_eng, beta, strlen(beta)), FORCED_HASH);
    struct conn *a0 = mkconn(0, 1, 1), *a2 = mkconn(1, 1, 1), *b1 = mkconn(2, 1, 1);
    struct conn *c0 = mkconn(3, 2, 1), *c3 = mkconn(4, 1, 1);
    join(0, a0, alpha);
    join(2, a2, alpha);
    join(1, b1, alphb);
    join(0, c0, beta);
    join(3, c3, beta);
    route_all();

    /* Home 2 holds three rooms with one hash, each with its own bitmap. */
    assert_int_equal(g_shards[2].rooms.nr, 3);
    assert_int_equal(lookup(2, alpha)->shard_mask, 0x5);
    assert_int_equal(lookup(2, alphb)->shard_mask, 0x2);
    assert_int_equal(lookup(2, beta)->shard_mask, 0x9);
    assert_int_equal(g_shards[0].rooms.nr, 2);
    assert_ptr_not_equal(lookup(0, alpha), lookup(0, beta));

    settle();
    publish(0, a0, "to-alpha");
    route_all();
    assert_int_equal(g_nr_dl, 1);
    assert_ptr_equal(g_dl[0].c, a2);

    settle();
    publish(3, c3, "to-beta");
    route_all();
    assert_int_equal(g_nr_dl, 1);
    assert_ptr_equal(g_dl[0].c, c0);

    settle();
    publish(1, b1, "alone");
    route_all();
    assert_int_equal(g_nr_dl, 0);
    assert_int_equal(g_nr_envs, 2); /* PUBLISH 1->2, DELIVER 2->1 */
    assert_int_equal(nr_envs(XS_DELIVER, 2, 1), 1);

    /* A LEAVE names its room: the neighbour with the same hash keeps its bit. */
    settle();
    leave(0, a0);
    route_all();
    assert_int_equal(lookup(2, alpha)->shard_mask, 0x4);
    assert_int_equal(lookup(2, beta)->shard_mask, 0x9);
    leave(2, a2);
    leave(1, b1);
    leave(0, c0);
    leave(3, c3);
    route_all();
    check_no_rooms();
}

/* Shutdown frees rooms that still have members and bitmaps. */
static void table_fini_frees_what_is_left(void **state)
{
    (void)state;
    char name[32];
    for (unsigned i = 0; i < MAX_CONNS; i++) {
        snprintf(name, sizeof(name), "left-%u", i);
        join(i % 4, mkconn(i, i, 1), name);
    }
    route_all();
    for (unsigned sh = 0; sh < 4; sh++) {
        room_table_fini(&g_shards[sh]);
        assert_null(g_shards[sh].rooms.buckets);
        assert_int_equal(g_shards[sh].rooms.nr, 0);
        assert_int_equal(g_shards[sh].rooms.mask, 0);
        room_table_fini(&g_shards[sh]); /* twice is harmless */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hash_is_seeded_and_home_is_modulo, setup_4, teardown),
        cmocka_unit_test_setup_teardown(join_leave_member_list, setup_1, teardown),
        cmocka_unit_test_setup_teardown(join_leave_member_list, setup_4, teardown),
        cmocka_unit_test_setup_teardown(leave_without_room_is_a_no_op, setup_1, teardown),
        cmocka_unit_test_setup_teardown(several_rooms_are_separate, setup_1, teardown),
        cmocka_unit_test_setup_teardown(first_member_off_home_tells_home, setup_4, teardown),
        cmocka_unit_test_setup_teardown(rejoin_tells_home_again, setup_4, teardown),
        cmocka_unit_test_setup_teardown(home_bitmap_follows_joins_and_leaves, setup_4, teardown),
        cmocka_unit_test_setup_teardown(publish_on_home_delivers_to_local_members, setup_1,
                                        teardown),
        cmocka_unit_test_setup_teardown(publish_at_home_sends_one_deliver_per_member_shard, setup_4,
                                        teardown),
        cmocka_unit_test_setup_teardown(publish_off_home_goes_through_home, setup_4, teardown),
        cmocka_unit_test_setup_teardown(deliver_skips_publisher_only_on_its_own_shard, setup_4,
                                        teardown),
        cmocka_unit_test_setup_teardown(unknown_room_envelopes_are_dropped, setup_4, teardown),
        cmocka_unit_test_setup_teardown(reference_counts_end_at_zero, setup_4, teardown),
        cmocka_unit_test_setup_teardown(member_leaving_during_fanout, setup_4, teardown),
        cmocka_unit_test_setup_teardown(table_grows_past_63_rooms, setup_1, teardown),
        cmocka_unit_test_setup_teardown(table_grows_on_every_shard, setup_4, teardown),
        cmocka_unit_test_setup_teardown(bucket_neighbours_are_told_apart, setup_1, teardown),
        cmocka_unit_test_setup_teardown(equal_hashes_are_told_apart, setup_4, teardown),
        cmocka_unit_test_setup_teardown(table_fini_frees_what_is_left, setup_4, teardown),
    };
    return cmocka_run_group_tests_name("room", tests, NULL, NULL);
}
