/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/room.c without io_uring: room table, subscription lists, the home
 * shard's member bitmap, the publish path publisher -> home -> member shards, publishes by name,
 * questions to a room's home, and the JOIN/LEAVE notes that wait for memory (room_retry).
 *
 * room.c is compiled into this file by including it (h2o style), which reaches its static
 * functions (room_find, room_get) and struct room. Its two calls out of the module are
 * replaced by the test doubles below: conn_enqueue records a delivery and shard_push records
 * an envelope, which route_all() then hands to room_handle_envelope on the target shard, as
 * the xshard inbox would (FIFO per pair). shard_push refuses the kinds named in g_push_refuse
 * with -ENOMEM, leaving what it was given to the caller, as a queue that cannot grow does.
 *
 * Each fake connection keeps its subscriptions in its private area (struct tpriv): the one the
 * helpers join and leave with, and optionally an array of further ones (a connection in many
 * rooms). The slow-consumer close of the conn_enqueue double unsubscribes all of them, as the
 * handler's on_close does.
 *
 * Linking: room.o, conn.o and shard.o are also in libringcast_engine.a. A static library
 * member is only pulled in to resolve a symbol still undefined, and this file defines every
 * symbol room.o exports plus the only two (conn_enqueue, shard_push) that would pull conn.o or
 * shard.o (conn_is_open is inline in conn.h), so none of the three is linked: the archive gives
 * msg.o, ws_frame.o and log.o (log_warn) only. Were one of them pulled after all, the link would
 * fail with a multiple definition, not silently test the wrong code.
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

#include "ws_frame.h" /* WS_OP_TEXT */

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
static struct config g_cfg; /* history off unless a test turns it on */
static struct shard g_shards[MAX_SHARDS];
/* Every shard's slot table (take_answer looks the asker up there): slot k is g_conns[k]. */
static struct conn g_conns[MAX_CONNS];
static unsigned g_conn_shard[MAX_CONNS]; /* the shard each of g_conns joined on */

/* What a fake connection keeps in its private area, zeroed with it. */
struct tpriv {
    struct sub sub;   /* the subscription of join() and leave() */
    struct sub *more; /* further subscriptions, <nr_more> of them (the test's memory) */
    unsigned nr_more;
};
_Static_assert(sizeof(struct tpriv) <= CONN_PRIV_SIZE, "struct tpriv fits conn_priv");

static struct tpriv *tp(struct conn *c)
{
    return conn_priv(c);
}

static struct sub *sub_of(struct conn *c)
{
    return &tp(c)->sub;
}

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
    char text[96]; /* payload of a short frame */
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
static struct conn *g_close_on_enqueue[4]; /* these leave their rooms when sent to */
static uint32_t g_push_refuse;             /* bit 1 << kind: shard_push refuses that kind */
static unsigned g_nr_refused;              /* envelopes refused so far */

/* What the handler's on_close does: every subscription of <c> ends. */
static void unsubscribe_all(struct shard *s, struct conn *c)
{
    room_unsubscribe(s, sub_of(c));
    for (unsigned i = 0; i < tp(c)->nr_more; i++)
        room_unsubscribe(s, &tp(c)->more[i]);
}

void conn_enqueue(struct shard *s, struct conn *c, struct msg *m)
{
    assert_true(g_nr_dl < MAX_DELIVERIES);
    assert_true(m->len >= 2 && m->len - 2 < sizeof(g_dl[0].text));
    assert_true(conn_is_open(c)); /* room.c sends to open connections only */
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
    /* The slow-consumer close: on_close leaves the rooms from inside the fan-out. */
    for (size_t i = 0; i < sizeof(g_close_on_enqueue) / sizeof(g_close_on_enqueue[0]); i++)
        if (g_close_on_enqueue[i] == c) {
            unsubscribe_all(s, c);
            c->state = CONN_CLOSING;
        }
}

/* Pauses asked of conn_pause (backpressure), in order. */
struct pause_rec {
    unsigned shard;
    struct conn *c;
    uint32_t ms;
};
static struct pause_rec g_pauses[16];
static size_t g_nr_pauses;

void conn_pause(struct shard *s, struct conn *c, uint32_t ms)
{
    assert_true(g_nr_pauses < 16);
    g_pauses[g_nr_pauses++] = (struct pause_rec){s->id, c, ms};
}

/* The cross-shard backlog room.c sees (backpressure); 0 unless a test sets it. */
static uint32_t g_backlog;

uint32_t xshard_backlog(struct xshard *x, unsigned from, unsigned to, uint32_t floor)
{
    (void)x;
    (void)from;
    (void)to;
    (void)floor;
    return g_backlog;
}

/* Receivers cut as stalled slow consumers (room.c's pressing). */
static struct conn *g_cut[8];
static size_t g_nr_cut;

void conn_close_slow(struct shard *s, struct conn *c)
{
    assert_true(g_nr_cut < 8);
    g_cut[g_nr_cut++] = c;
    unsubscribe_all(s, c);
    c->state = CONN_CLOSING;
}

int shard_push(struct shard *s, unsigned to, uint32_t kind, void *ptr, uint64_t val)
{
    assert_true(to < g_eng.nr_shards);
    assert_int_not_equal(to, s->id); /* a shard never sends itself an envelope */
    if (kind != XS_PAUSE)
        assert_non_null(ptr);
    if (kind < 32 && (g_push_refuse & (1u << kind))) {
        g_nr_refused++;
        return -ENOMEM; /* <ptr> stays the caller's */
    }
    assert_true(g_nr_envs < MAX_ENVS);
    struct env_rec *r = &g_envs[g_nr_envs++];
    r->to = to;
    r->env.kind = kind;
    r->env.arg = s->id;
    r->env.ptr = ptr;
    r->env.val = val;
    return 0;
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

/* Answers handed to on_answer (room_ask), copied. */
struct answer_rec {
    unsigned shard;
    struct conn *c;
    uint32_t question;
    int status;
    uint32_t nr_shards, nr_home_members;
    uint64_t cookie;
    struct reply_to reply;
    char name[32];
    uint32_t error, recovery;
    uint64_t top;
    char epoch[HISTORY_EPOCH_MAX + 1];
    char result[512];
};

#define MAX_ANSWERS 16

static struct answer_rec g_answers[MAX_ANSWERS];
static size_t g_nr_answers;

static void on_answer(struct shard *s, struct conn *c, const struct room_ask *a)
{
    assert_true(g_nr_answers < MAX_ANSWERS);
    assert_true(a->name_len < sizeof(g_answers[0].name));
    /* Only for the asker, on its shard, while it is open. */
    assert_int_equal(a->reply.shard, s->id);
    assert_ptr_equal(c, &s->conns[a->reply.slot]);
    assert_int_equal(c->gen, a->reply.gen);
    assert_true(conn_is_open(c));
    struct answer_rec *r = &g_answers[g_nr_answers++];
    memset(r, 0, sizeof(*r));
    r->shard = s->id;
    r->c = c;
    r->question = a->question;
    r->status = a->status;
    r->nr_shards = a->nr_shards;
    r->nr_home_members = a->nr_home_members;
    r->cookie = a->cookie;
    r->reply = a->reply;
    memcpy(r->name, a->name, a->name_len);
    r->error = a->error;
    r->recovery = a->recovery;
    r->top = a->top;
    memcpy(r->epoch, a->epoch, sizeof(r->epoch));
    assert_true(a->result.len < sizeof(r->result));
    if (a->result.len)
        memcpy(r->result, a->result.p, a->result.len);
}

/* The presence questions' ClientInfo: user "u<idx % 2>" (so two connections share a user),
 * client "c<idx>". */
static char g_info_text[MAX_CONNS][2][16];

static void test_client_info(const struct sub *sub, struct proto_client_info *ci)
{
    uint32_t k = sub->conn->idx % MAX_CONNS;
    int ul = snprintf(g_info_text[k][0], 16, "u%u", sub->conn->idx % 2);
    int cl = snprintf(g_info_text[k][1], 16, "c%u", sub->conn->idx);
    *ci = (struct proto_client_info){.user = {g_info_text[k][0], (size_t)ul},
                                     .client = {g_info_text[k][1], (size_t)cl}};
}

/* ---------------------------------------------------------------------------------------------
 * Fixtures and helpers
 * -------------------------------------------------------------------------------------------*/

static void reset_world(unsigned nr_shards)
{
    memset(&g_eng, 0, sizeof(g_eng));
    memset(&g_cfg, 0, sizeof(g_cfg));
    g_eng.cfg = &g_cfg;
    memset(g_shards, 0, sizeof(g_shards));
    memset(g_conns, 0, sizeof(g_conns));
    memset(g_conn_shard, 0, sizeof(g_conn_shard));
    memset(g_close_on_enqueue, 0, sizeof(g_close_on_enqueue));
    g_nr_dl = g_nr_envs = g_env_head = 0;
    g_keep_refs = false;
    g_push_refuse = 0;
    g_nr_refused = 0;
    g_nr_answers = 0;
    g_nr_pauses = 0;
    g_nr_cut = 0;
    g_backlog = 0;
    g_eng.nr_shards = nr_shards;
    g_eng.shards = g_shards;
    g_eng.room_seed = SEED;
    for (unsigned i = 0; i < nr_shards; i++) {
        g_shards[i].id = i;
        g_shards[i].eng = &g_eng;
        g_shards[i].conns = g_conns;
        g_shards[i].nr_slots = MAX_CONNS;
        assert_int_equal(room_table_init(&g_shards[i].rooms), 0);
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
        room_envelope_drop(&g_envs[i].env);
    g_nr_envs = g_env_head = 0;
    release_deliveries();
    g_nr_dl = 0;
    g_push_refuse = 0;
    for (unsigned i = 0; i < g_eng.nr_shards; i++)
        room_table_fini(&g_shards[i]);
    return 0;
}

static struct conn *mkconn(unsigned k, uint32_t idx, uint32_t gen)
{
    assert_true(k < MAX_CONNS);
    struct conn *c = &g_conns[k];
    memset(c, 0, sizeof(*c));
    c->state = CONN_OPEN;
    c->idx = idx;
    c->gen = gen;
    return c;
}

static void join_with(unsigned shard, struct conn *c, const char *name, uint32_t flags)
{
    if (conn_index(c) >= 0)
        g_conn_shard[conn_index(c)] = shard;
    struct sub *sub = sub_of(c);
    assert_null(sub->room);
    assert_int_equal(room_subscribe(&g_shards[shard], sub, c, name, strlen(name), flags), 0);
    assert_non_null(sub->room);
    assert_ptr_equal(sub->conn, c);
    assert_int_equal(sub->flags, flags);
    assert_true(list_linked(&sub->link));
}

static void join(unsigned shard, struct conn *c, const char *name)
{
    join_with(shard, c, name, 0);
}

static void leave(unsigned shard, struct conn *c)
{
    room_unsubscribe(&g_shards[shard], sub_of(c));
    assert_null(sub_of(c)->room);
    assert_false(list_linked(&sub_of(c)->link));
}

static void publish(unsigned shard, struct conn *c, const char *text)
{
    assert_int_equal(
        room_publish(&g_shards[shard], sub_of(c), WS_OP_TEXT, (const uint8_t *)text, strlen(text)),
        0);
}

static void publish_by_name(unsigned shard, const char *name, const char *text)
{
    assert_int_equal(room_publish_by_name(&g_shards[shard], name, strlen(name), WS_OP_TEXT,
                                          (const uint8_t *)text, strlen(text)),
                     0);
}

static unsigned home_of(const char *name)
{
    return room_home(&g_eng, room_hash(&g_eng, name, strlen(name)));
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
        if (home_of(out) == home)
            return;
    }
}

/* The subscription list of <r> is exactly the subs of <expect>[0..<n>), in order, and doubly
 * linked. */
static void check_members(struct room *r, struct conn *const *expect, size_t n)
{
    assert_non_null(r);
    assert_int_equal(r->nr_subs, n);
    const struct list *prev = &r->subs;
    size_t i = 0;
    for (const struct list *pos = r->subs.next; pos != &r->subs; pos = pos->next, i++) {
        assert_true(i < n);
        const struct sub *sub = container_of(pos, struct sub, link);
        assert_ptr_equal(sub, sub_of(expect[i]));
        assert_ptr_equal(sub->conn, expect[i]);
        assert_ptr_equal(sub->room, r);
        assert_ptr_equal(pos->prev, prev);
        prev = pos;
    }
    assert_int_equal(i, n);
    assert_ptr_equal(r->subs.prev, prev);
}

static unsigned nr_delivered_to(const struct conn *c)
{
    unsigned n = 0;
    for (size_t i = 0; i < g_nr_dl; i++)
        n += g_dl[i].c == c;
    return n;
}

/* Deliveries to <c> of a frame with payload <text>. */
static unsigned nr_delivered_text(const struct conn *c, const char *text)
{
    unsigned n = 0;
    for (size_t i = 0; i < g_nr_dl; i++)
        n += g_dl[i].c == c && strcmp(g_dl[i].text, text) == 0;
    return n;
}

static unsigned nr_envs(uint32_t kind, unsigned from, unsigned to)
{
    unsigned n = 0;
    for (size_t i = 0; i < g_nr_envs; i++)
        n += g_envs[i].env.kind == kind && g_envs[i].env.arg == from && g_envs[i].to == to;
    return n;
}

static unsigned nr_envs_kind(uint32_t kind)
{
    unsigned n = 0;
    for (size_t i = 0; i < g_nr_envs; i++)
        n += g_envs[i].env.kind == kind;
    return n;
}

static void check_no_rooms(void)
{
    for (unsigned i = 0; i < g_eng.nr_shards; i++) {
        assert_int_equal(g_shards[i].rooms.nr, 0);
        assert_int_equal(rooms_stat(i), 0);
        assert_true(list_empty(&g_shards[i].rooms.pending));
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
    /* A JOIN carries a room of the member shard's making, for the home to keep. */
    const struct room *note = e->env.ptr;
    assert_int_equal(note->hash, hash);
    assert_int_equal(note->home, 2);
    assert_int_equal(note->name_len, strlen(name));
    assert_memory_equal(note->name, name, strlen(name));
    assert_int_equal(note->nr_subs, 0);
    assert_int_equal(note->shard_mask, 0);
    assert_false(note->home_knows);
    assert_false(list_linked(&note->pending));

    struct room *r = lookup(0, name);
    assert_non_null(r);
    assert_ptr_not_equal(r, note); /* the member shard keeps its own */
    assert_int_equal(r->home, 2);
    assert_int_equal(r->shard_mask, 0); /* only the home keeps a bitmap */
    assert_true(r->home_knows);
    assert_false(list_linked(&r->pending));

    join(0, b, name); /* not the first: no envelope */
    assert_int_equal(g_nr_envs, 1);

    route_all();
    struct room *home = lookup(2, name);
    assert_non_null(home);
    assert_int_equal(home->nr_subs, 0);
    assert_int_equal(home->shard_mask, 1u << 0);
    assert_int_equal(rooms_stat(2), 1);

    leave(0, b); /* not the last: no envelope */
    assert_int_equal(g_nr_envs, 1);
    leave(0, a);
    assert_int_equal(g_nr_envs, 2);
    assert_int_equal(g_envs[1].env.kind, XS_LEAVE);
    assert_int_equal(g_envs[1].to, 2);
    assert_int_equal(g_envs[1].env.val, 0);
    /* A LEAVE carries the name in a frameless msg. */
    const struct msg *m = g_envs[1].env.ptr;
    assert_int_equal(m->len, 0);
    assert_int_equal(m->room_hash, hash);
    assert_int_equal(m->name_len, strlen(name));
    assert_memory_equal(msg_room_name(m), name, strlen(name));
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
    assert_int_equal(home->nr_subs, 0);

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
    join(0, p, "chat");
    join(0, a, "chat");
    join(0, b, "chat");
    join_with(0, e, "chat", SUB_ECHO);
    join(0, x, "chat");
    x->state = CONN_CLOSING; /* not sent to: only open members are */

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
    publish(0, e, "echo"); /* SUB_ECHO: the publisher gets its own message */
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

/* Protocol subscribers (SUB_PROTO) get the message as one pub push with the room's offset,
 * built once by the home and shared (the raw msg holds one reference to it); raw members get the
 * raw frame; the publisher's own protocol subscription is not skipped when the publish has no
 * origin; every reference comes back. */
static void proto_members_get_one_shared_push(void **state)
{
    (void)state;
    struct conn *raw1 = mkconn(0, 1, 1), *raw2 = mkconn(1, 2, 1);
    struct conn *pa = mkconn(2, 3, 1), *pb = mkconn(3, 4, 1), *pc = mkconn(4, 5, 1);
    join(0, raw1, "mix");
    join(0, raw2, "mix");
    join_with(0, pa, "mix", SUB_PROTO);
    join_with(0, pb, "mix", SUB_PROTO);
    join_with(0, pc, "mix", SUB_PROTO);
    pc->state = CONN_CLOSING; /* not sent to */

    g_keep_refs = true;
    publish(0, raw1, "{\"n\":1}");
    assert_int_equal(g_nr_dl, 3);
    assert_int_equal(nr_delivered_to(raw1), 0); /* a raw publisher is skipped */
    assert_int_equal(nr_delivered_to(raw2), 1);
    assert_int_equal(nr_delivered_to(pa), 1);
    assert_int_equal(nr_delivered_to(pb), 1);
    struct msg *raw = NULL, *push = NULL;
    for (size_t i = 0; i < g_nr_dl; i++) {
        assert_int_equal(g_dl[i].b0, 0x80 | WS_OP_TEXT);
        if (g_dl[i].c == raw2) {
            assert_string_equal(g_dl[i].text, "{\"n\":1}");
            raw = g_dl[i].m;
        } else {
            assert_string_equal(
                g_dl[i].text,
                "{\"push\":{\"channel\":\"mix\",\"pub\":{\"data\":{\"n\":1},\"offset\":1}}}");
            assert_true(push == NULL || push == g_dl[i].m); /* one push msg, shared */
            push = g_dl[i].m;
        }
    }
    assert_int_equal(atomic_load(&raw->refs), 1);
    assert_ptr_equal(raw->pub, push);
    assert_int_equal(atomic_load(&push->refs), 3);
    release_deliveries();

    /* By name (the protocol publish): nobody is skipped; plain text becomes a JSON string. */
    settle();
    publish_by_name(0, "mix", "hi");
    assert_int_equal(g_nr_dl, 4);
    assert_int_equal(nr_delivered_to(raw1), 1);
    assert_int_equal(nr_delivered_to(pa), 1);
    for (size_t i = 0; i < g_nr_dl; i++)
        if (g_dl[i].c == pa)
            assert_string_equal(
                g_dl[i].text,
                "{\"push\":{\"channel\":\"mix\",\"pub\":{\"data\":\"hi\",\"offset\":2}}}");
    release_deliveries();
    g_keep_refs = false;

    settle();
    struct conn *all[] = {raw1, raw2, pa, pb, pc};
    for (size_t i = 0; i < 5; i++)
        leave(0, all[i]);
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
    assert_null(sub_of(b)->room);
    check_members(lookup(2, name), (struct conn *[]){c, a, p}, 3);
    /* z was shard 0's last member: its room went, and home heard of it. */
    assert_null(sub_of(z)->room);
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
            c->state = CONN_OPEN;
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
        cs[i].state = CONN_OPEN;
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

/* ---------------------------------------------------------------------------------------------
 * Many subscriptions per connection
 * -------------------------------------------------------------------------------------------*/

#define MULTI 20

/*
 * One connection <x> on shard 0 subscribed to MULTI rooms, MULTI / 4 with each shard as home,
 * through the subscriptions <xs> its private area points to; room i has one other member,
 * pubs[i], on shard 1 + i % 3.
 */
struct multi {
    char names[MULTI][32];
    struct sub xs[MULTI];
    struct conn *x;
    struct conn *pubs[MULTI];
};

static unsigned multi_pub_shard(unsigned i)
{
    return 1 + i % 3;
}

static void multi_setup(struct multi *t)
{
    memset(t, 0, sizeof(*t));
    unsigned per_home[MAX_SHARDS] = {0};
    for (unsigned j = 0, n = 0; n < MULTI; j++) {
        char name[32];
        snprintf(name, sizeof(name), "multi-%u", j);
        unsigned h = home_of(name);
        if (per_home[h] == MULTI / 4)
            continue;
        per_home[h]++;
        memcpy(t->names[n++], name, sizeof(name));
    }
    for (unsigned i = 0; i < MULTI; i++) {
        t->pubs[i] = mkconn(1 + i, 100 + i, 1);
        join(multi_pub_shard(i), t->pubs[i], t->names[i]);
    }
    settle();

    t->x = mkconn(0, 1, 1);
    g_conn_shard[0] = 0;
    tp(t->x)->more = t->xs;
    tp(t->x)->nr_more = MULTI;
    for (unsigned i = 0; i < MULTI; i++) {
        const char *name = t->names[i];
        assert_int_equal(room_subscribe(&g_shards[0], &t->xs[i], t->x, name, strlen(name), 0), 0);
        assert_ptr_equal(t->xs[i].room, lookup(0, name));
        assert_ptr_equal(t->xs[i].conn, t->x);
    }
    /* One JOIN per room whose home is elsewhere, none for shard 0's own. */
    assert_int_equal(g_nr_envs, MULTI - MULTI / 4);
    for (unsigned h = 1; h < 4; h++)
        assert_int_equal(nr_envs(XS_JOIN, 0, h), MULTI / 4);
    settle();
    assert_int_equal(g_shards[0].rooms.nr, MULTI);
    for (unsigned i = 0; i < MULTI; i++) {
        struct room *home = lookup(home_of(t->names[i]), t->names[i]);
        assert_non_null(home);
        assert_int_equal(home->shard_mask, 1ull << 0 | 1ull << multi_pub_shard(i));
        assert_int_equal(lookup(0, t->names[i])->nr_subs, 1);
    }
}

static void multi_teardown(struct multi *t)
{
    settle();
    for (unsigned i = 0; i < MULTI; i++)
        room_unsubscribe(&g_shards[0], &t->xs[i]);
    for (unsigned i = 0; i < MULTI; i++)
        leave(multi_pub_shard(i), t->pubs[i]);
    route_all();
    check_no_rooms();
}

/* Every other member publishes once in its room. */
static void multi_publish_all(struct multi *t)
{
    char text[16];
    for (unsigned i = 0; i < MULTI; i++) {
        snprintf(text, sizeof(text), "m-%u", i);
        publish(multi_pub_shard(i), t->pubs[i], text);
    }
    route_all();
}

static void one_connection_in_twenty_rooms(void **state)
{
    (void)state;
    struct multi *t = malloc(sizeof(*t));
    assert_non_null(t);
    multi_setup(t);
    char text[16];

    /* Each room's publish reaches x once, through that room's subscription. */
    multi_publish_all(t);
    assert_int_equal(g_nr_dl, MULTI);
    assert_int_equal(nr_delivered_to(t->x), MULTI);
    for (unsigned i = 0; i < MULTI; i++) {
        snprintf(text, sizeof(text), "m-%u", i);
        assert_int_equal(nr_delivered_text(t->x, text), 1);
        assert_int_equal(nr_delivered_to(t->pubs[i]), 0);
    }

    /* x publishes in each room through the matching subscription: only that room hears. */
    settle();
    for (unsigned i = 0; i < MULTI; i++) {
        snprintf(text, sizeof(text), "x-%u", i);
        assert_int_equal(
            room_publish(&g_shards[0], &t->xs[i], WS_OP_TEXT, (const uint8_t *)text, strlen(text)),
            0);
    }
    route_all();
    assert_int_equal(g_nr_dl, MULTI);
    assert_int_equal(nr_delivered_to(t->x), 0);
    for (unsigned i = 0; i < MULTI; i++) {
        snprintf(text, sizeof(text), "x-%u", i);
        assert_int_equal(nr_delivered_text(t->pubs[i], text), 1);
        assert_int_equal(nr_delivered_to(t->pubs[i]), 1);
    }

    /* Unsubscribing one room at a time leaves the others as they were. */
    for (unsigned j = 0; j < MULTI; j++) {
        settle();
        const char *name = t->names[j];
        unsigned home = home_of(name);
        room_unsubscribe(&g_shards[0], &t->xs[j]);
        assert_null(t->xs[j].room);
        assert_false(list_linked(&t->xs[j].link));
        room_unsubscribe(&g_shards[0], &t->xs[j]); /* twice is a no-op */
        if (home == 0) {
            assert_int_equal(g_nr_envs, 0);
            struct room *r = lookup(0, name); /* the home keeps it for shard 1 + j % 3 */
            assert_non_null(r);
            assert_int_equal(r->nr_subs, 0);
        } else {
            assert_int_equal(g_nr_envs, 1);
            assert_int_equal(nr_envs(XS_LEAVE, 0, home), 1);
            assert_null(lookup(0, name));
        }
        route_all();
        assert_int_equal(lookup(home, name)->shard_mask, 1ull << multi_pub_shard(j));
        for (unsigned k = j + 1; k < MULTI; k++) {
            struct room *r = lookup(0, t->names[k]);
            assert_ptr_equal(t->xs[k].room, r);
            assert_int_equal(r->nr_subs, 1);
            struct room *h = lookup(home_of(t->names[k]), t->names[k]);
            assert_int_equal(h->shard_mask, 1ull << 0 | 1ull << multi_pub_shard(k));
        }

        settle();
        multi_publish_all(t);
        assert_int_equal(nr_delivered_to(t->x), MULTI - j - 1);
        for (unsigned k = 0; k < MULTI; k++) {
            snprintf(text, sizeof(text), "m-%u", k);
            assert_int_equal(nr_delivered_text(t->x, text), k > j);
        }
    }
    /* What is left on shard 0: the rooms it is home of, for their other members. */
    assert_int_equal(g_shards[0].rooms.nr, MULTI / 4);

    multi_teardown(t);
    free(t);
}

/* The connection closes (slow consumer) while a publish in one of its rooms is sent to it:
 * every one of its subscriptions ends, and each home hears of it once. */
static void connection_in_many_rooms_closed_mid_fanout(void **state)
{
    (void)state;
    struct multi *t = malloc(sizeof(*t));
    assert_non_null(t);
    multi_setup(t);

    g_close_on_enqueue[0] = t->x;
    for (unsigned i = 0; i < MULTI; i += 7) {
        settle();
        publish(multi_pub_shard(i), t->pubs[i], "bye");
        route_all();
        /* Only the first one reaches x: it closed and left every room then. */
        assert_int_equal(nr_delivered_to(t->x), i == 0);
    }
    assert_false(conn_is_open(t->x));
    for (unsigned i = 0; i < MULTI; i++) {
        assert_null(t->xs[i].room);
        unsigned home = home_of(t->names[i]);
        assert_int_equal(lookup(home, t->names[i])->shard_mask, 1ull << multi_pub_shard(i));
        if (home != 0)
            assert_null(lookup(0, t->names[i]));
    }
    assert_int_equal(g_shards[0].rooms.nr, MULTI / 4);
    assert_true(list_empty(&g_shards[0].rooms.pending));

    multi_teardown(t);
    free(t);
}

/* ---------------------------------------------------------------------------------------------
 * Publish by name
 * -------------------------------------------------------------------------------------------*/

/* From shard 3, neither home (2) nor member shard: every member on every shard gets it, none
 * is taken for the publisher, whatever its slot and generation. */
static void publish_by_name_reaches_every_member(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    /* Slot 0 generation 0 on shard 0 (a zero origin), and the slot of origin UINT32_MAX. */
    struct conn *a0 = mkconn(0, 0, 0), *b0 = mkconn(1, 0xffffff, 0);
    struct conn *a1 = mkconn(2, 1, 1), *h = mkconn(3, 2, 1);
    struct conn *e0 = mkconn(4, 3, 1);
    join(0, a0, name);
    join(0, b0, name);
    join(1, a1, name);
    join(2, h, name);
    join_with(0, e0, name, SUB_ECHO);
    settle();
    struct conn *all[] = {a0, b0, a1, h, e0};

    publish_by_name(3, name, "by-name");
    assert_int_equal(g_nr_envs, 1);
    assert_int_equal(nr_envs(XS_PUBLISH, 3, 2), 1);
    assert_int_equal(g_nr_dl, 0);
    const struct msg *m = g_envs[0].env.ptr;
    assert_int_equal(m->origin, UINT32_MAX);
    assert_int_equal(m->room_hash, room_hash(&g_eng, name, strlen(name)));
    route_all();
    assert_int_equal(g_nr_envs, 3);
    assert_int_equal(nr_envs(XS_DELIVER, 2, 0), 1);
    assert_int_equal(nr_envs(XS_DELIVER, 2, 1), 1);
    assert_int_equal(g_nr_dl, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(nr_delivered_to(all[i]), 1);
    for (size_t i = 0; i < g_nr_dl; i++) {
        assert_int_equal(g_dl[i].b0, 0x80 | WS_OP_TEXT);
        assert_string_equal(g_dl[i].text, "by-name");
        assert_int_equal(g_dl[i].origin, UINT32_MAX);
    }
    assert_int_equal(g_shards[3].rooms.nr, 0); /* nothing made on the way */

    /* From the home and from a member shard: the same, no origin skipped there either. */
    for (unsigned from = 0; from < 3; from++) {
        settle();
        publish_by_name(from, name, "again");
        route_all();
        assert_int_equal(g_nr_dl, 5);
        for (size_t i = 0; i < 5; i++)
            assert_int_equal(nr_delivered_text(all[i], "again"), 1);
        assert_int_equal(nr_envs(XS_PUBLISH, from, 2), from != 2);
    }

    settle();
    leave(0, a0);
    leave(0, b0);
    leave(1, a1);
    leave(2, h);
    leave(0, e0);
    route_all();
    check_no_rooms();
}

/* A room without members drops a publish by name: nothing created, nothing delivered, the
 * message freed (ASan's leak check), from a bystander shard or from the home. */
static void publish_by_name_to_empty_room_is_dropped(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);

    publish_by_name(3, name, "nobody");
    assert_int_equal(g_nr_envs, 1);
    struct msg *m = msg_ref(g_envs[0].env.ptr); /* the test's own, to watch the count */
    route_all();
    assert_int_equal(g_nr_envs, 1);
    assert_int_equal(g_nr_dl, 0);
    assert_int_equal(atomic_load(&m->refs), 1); /* the home dropped the envelope's */
    msg_unref(m);
    check_no_rooms();

    settle();
    publish_by_name(2, name, "nobody");
    assert_int_equal(g_nr_envs, 0);
    assert_int_equal(g_nr_dl, 0);
    check_no_rooms();

    /* A room whose members all left is as empty. */
    struct conn *a = mkconn(0, 1, 1);
    join(1, a, name);
    leave(1, a);
    settle();
    publish_by_name(0, name, "gone");
    route_all();
    assert_int_equal(g_nr_dl, 0);
    assert_int_equal(g_nr_envs, 1);
    check_no_rooms();
}

/* ---------------------------------------------------------------------------------------------
 * Questions to a room's home
 * -------------------------------------------------------------------------------------------*/

static void ask(unsigned shard, struct conn *c, const char *name, uint64_t cookie)
{
    struct room_ask *a =
        room_ask_create(&g_shards[shard], c, ROOM_Q_INFO, name, strlen(name), on_answer);
    assert_non_null(a);
    assert_int_equal(a->question, ROOM_Q_INFO);
    assert_int_equal(a->reply.shard, shard);
    assert_int_equal(a->reply.slot, c->idx);
    assert_int_equal(a->reply.gen, c->gen);
    assert_ptr_equal(a->on_answer, on_answer);
    assert_int_equal(a->hash, room_hash(&g_eng, name, strlen(name)));
    assert_int_equal(a->name_len, strlen(name));
    assert_memory_equal(a->name, name, strlen(name));
    a->cookie = cookie;
    assert_int_equal(room_ask(&g_shards[shard], a), 0);
}

/* Members on shards 0, 1 (home, two) and 2; the asker on shard 3 is in no room. */
static void ask_info_is_answered_on_the_askers_shard(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 1);
    struct conn *h0 = mkconn(0, 0, 1), *h1 = mkconn(1, 1, 1), *m0 = mkconn(2, 2, 1);
    struct conn *m2 = mkconn(3, 3, 1), *asker = mkconn(10, 10, 5);
    join(1, h0, name);
    join(1, h1, name);
    join(0, m0, name);
    join(2, m2, name);
    settle();

    ask(3, asker, name, 77);
    assert_int_equal(g_nr_envs, 1);
    assert_int_equal(nr_envs(XS_ASK, 3, 1), 1);
    assert_int_equal(g_nr_answers, 0); /* not before the home answered */
    route_all();
    assert_int_equal(g_nr_envs, 2);
    assert_int_equal(nr_envs(XS_ANSWER, 1, 3), 1);
    assert_int_equal(g_nr_answers, 1);
    const struct answer_rec *r = &g_answers[0];
    assert_int_equal(r->shard, 3);
    assert_ptr_equal(r->c, asker);
    assert_int_equal(r->question, ROOM_Q_INFO);
    assert_int_equal(r->cookie, 77);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->nr_shards, 3);
    assert_int_equal(r->nr_home_members, 2);
    assert_string_equal(r->name, name);

    /* The answer follows the membership: shard 0 leaves, the home's members go. */
    settle();
    leave(0, m0);
    leave(1, h0);
    route_all();
    ask(3, asker, name, 78);
    route_all();
    assert_int_equal(g_nr_answers, 2);
    assert_int_equal(g_answers[1].cookie, 78);
    assert_int_equal(g_answers[1].status, 0);
    assert_int_equal(g_answers[1].nr_shards, 2);
    assert_int_equal(g_answers[1].nr_home_members, 1);
    leave(1, h1);
    route_all();
    ask(3, asker, name, 79);
    route_all();
    assert_int_equal(g_nr_answers, 3);
    assert_int_equal(g_answers[2].status, 0);
    assert_int_equal(g_answers[2].nr_shards, 1);
    assert_int_equal(g_answers[2].nr_home_members, 0);

    /* Asked on the home itself: answered at once, no envelope. */
    settle();
    struct conn *local = mkconn(11, 11, 1);
    ask(1, local, name, 80);
    assert_int_equal(g_nr_envs, 0);
    assert_int_equal(g_nr_answers, 4);
    assert_int_equal(g_answers[3].shard, 1);
    assert_ptr_equal(g_answers[3].c, local);
    assert_int_equal(g_answers[3].status, 0);
    assert_int_equal(g_answers[3].nr_shards, 1);

    leave(2, m2);
    route_all();
    check_no_rooms();
}

static void ask_about_unknown_room_is_enoent(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 1);
    struct conn *asker = mkconn(5, 5, 2);

    ask(3, asker, name, 1);
    route_all();
    assert_int_equal(g_nr_answers, 1);
    assert_int_equal(g_answers[0].status, -ENOENT);
    assert_int_equal(g_answers[0].nr_shards, 0);
    assert_int_equal(g_answers[0].nr_home_members, 0);
    assert_int_equal(g_answers[0].cookie, 1);
    check_no_rooms(); /* the question made no room */

    /* Home on the asker's shard: answered at once. */
    name_with_home(name, sizeof(name), 3);
    ask(3, asker, name, 2);
    assert_int_equal(g_nr_answers, 2);
    assert_int_equal(g_answers[1].status, -ENOENT);

    /* A room that existed and emptied is unknown again. */
    struct conn *m = mkconn(6, 6, 1);
    name_with_home(name, sizeof(name), 1);
    join(2, m, name);
    leave(2, m);
    route_all();
    ask(3, asker, name, 3);
    route_all();
    assert_int_equal(g_nr_answers, 3);
    assert_int_equal(g_answers[2].status, -ENOENT);
    check_no_rooms();
}

/* The asker goes while the answer travels: the callback is not called, the ask is freed. */
static void ask_answer_dropped_when_asker_gone(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 1);
    struct conn *m = mkconn(0, 0, 1), *asker = mkconn(10, 10, 5);
    join(1, m, name);
    settle();

    /* Closed and its slot reused: a newer generation, open. */
    ask(3, asker, name, 1);
    asker->gen++;
    route_all();
    assert_int_equal(nr_envs(XS_ANSWER, 1, 3), 1);
    assert_int_equal(g_nr_answers, 0);

    /* Closing, same generation. */
    settle();
    ask(3, asker, name, 2);
    asker->state = CONN_CLOSING;
    route_all();
    assert_int_equal(nr_envs(XS_ANSWER, 1, 3), 1);
    assert_int_equal(g_nr_answers, 0);

    /* Its slot freed (state FREE). */
    settle();
    asker->state = CONN_OPEN;
    ask(3, asker, name, 3);
    asker->state = CONN_FREE;
    route_all();
    assert_int_equal(g_nr_answers, 0);

    /* Open again under the same generation: answered as usual. */
    settle();
    asker->state = CONN_OPEN;
    ask(3, asker, name, 4);
    route_all();
    assert_int_equal(g_nr_answers, 1);
    assert_int_equal(g_answers[0].cookie, 4);

    leave(1, m);
    route_all();
    check_no_rooms();
}

/* Without memory for the envelope there, the ask is freed: room_ask says so; the home drops
 * the answer it cannot send back. */
static void ask_dropped_without_memory(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 1);
    struct conn *asker = mkconn(10, 10, 5);
    struct room_ask *a =
        room_ask_create(&g_shards[3], asker, ROOM_Q_INFO, name, strlen(name), on_answer);
    assert_non_null(a);
    g_push_refuse = 1u << XS_ASK;
    assert_int_equal(room_ask(&g_shards[3], a), -ENOMEM);
    assert_int_equal(g_nr_refused, 1);
    assert_int_equal(g_nr_envs, 0);

    g_push_refuse = 1u << XS_ANSWER;
    ask(3, asker, name, 9);
    route_all();
    assert_int_equal(g_nr_refused, 2);
    assert_int_equal(g_nr_envs, 1); /* the ASK only */
    assert_int_equal(g_nr_answers, 0);
    g_push_refuse = 0;
    check_no_rooms();
}

/* ---------------------------------------------------------------------------------------------
 * JOIN and LEAVE are never lost
 * -------------------------------------------------------------------------------------------*/

static bool is_pending(unsigned shard, const struct room *r)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &g_shards[shard].rooms.pending)
    {
        if (pos == &r->pending)
            return true;
    }
    return false;
}

static void failed_join_is_retried(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *h = mkconn(0, 1, 1), *x = mkconn(1, 2, 1), *y = mkconn(2, 3, 1);
    join(2, h, name);

    g_push_refuse = 1u << XS_JOIN;
    join(0, x, name); /* the subscription itself succeeds */
    assert_int_equal(g_nr_refused, 1);
    assert_int_equal(g_nr_envs, 0);
    struct room *r = lookup(0, name);
    check_members(r, (struct conn *[]){x}, 1);
    assert_true(is_pending(0, r));
    assert_false(r->home_knows);
    struct room *home = lookup(2, name);
    assert_int_equal(home->shard_mask, 1ull << 2); /* the home lacks shard 0 */

    /* A second member changes nothing: the JOIN is still the one pending. */
    join(0, y, name);
    assert_int_equal(g_nr_refused, 1);
    assert_true(is_pending(0, r));

    /* Meanwhile the home does not send to shard 0. */
    publish(2, h, "early");
    assert_int_equal(g_nr_envs, 0);
    assert_int_equal(g_nr_dl, 0);

    /* Still no memory: still pending. */
    assert_true(room_retry(&g_shards[0]));
    assert_int_equal(g_nr_refused, 2);
    assert_int_equal(g_nr_envs, 0);
    assert_true(is_pending(0, r));

    g_push_refuse = 0;
    assert_false(room_retry(&g_shards[0]));
    assert_int_equal(g_nr_envs, 1);
    assert_int_equal(nr_envs(XS_JOIN, 0, 2), 1);
    assert_false(is_pending(0, r));
    assert_true(list_empty(&g_shards[0].rooms.pending));
    assert_true(r->home_knows);
    assert_ptr_equal(lookup(0, name), r);
    assert_false(room_retry(&g_shards[0])); /* nothing left: sends nothing */
    assert_int_equal(g_nr_envs, 1);
    route_all();
    assert_int_equal(home->shard_mask, 1ull << 2 | 1ull << 0);

    settle();
    publish(2, h, "late");
    route_all();
    assert_int_equal(nr_delivered_text(x, "late"), 1);
    assert_int_equal(nr_delivered_text(y, "late"), 1);

    settle();
    leave(0, x);
    leave(0, y);
    leave(2, h);
    route_all();
    check_no_rooms();
}

static void failed_leave_is_retried(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *h = mkconn(0, 1, 1), *x = mkconn(1, 2, 1);
    join(2, h, name);
    join(0, x, name);
    settle();
    struct room *home = lookup(2, name);
    assert_int_equal(home->shard_mask, 1ull << 2 | 1ull << 0);

    g_push_refuse = 1u << XS_LEAVE;
    leave(0, x); /* the subscription ends at once */
    assert_int_equal(g_nr_refused, 1);
    assert_int_equal(g_nr_envs, 0);
    /* The room stays on shard 0 until the LEAVE went out. */
    struct room *r = lookup(0, name);
    assert_non_null(r);
    assert_int_equal(r->nr_subs, 0);
    assert_true(r->home_knows);
    assert_true(is_pending(0, r));
    assert_int_equal(g_shards[0].rooms.nr, 1);
    assert_int_equal(home->shard_mask, 1ull << 2 | 1ull << 0);

    /* The home still sends to shard 0, which delivers to nobody and drops it. */
    g_keep_refs = true;
    publish(2, h, "stale");
    assert_int_equal(nr_envs(XS_DELIVER, 2, 0), 1);
    struct msg *m = msg_ref(g_envs[0].env.ptr);
    route_all();
    assert_int_equal(g_nr_dl, 0);
    assert_int_equal(atomic_load(&m->refs), 1);
    msg_unref(m);
    g_keep_refs = false;

    settle();
    assert_true(room_retry(&g_shards[0]));
    assert_int_equal(g_nr_envs, 0);
    assert_ptr_equal(lookup(0, name), r);

    g_push_refuse = 0;
    assert_false(room_retry(&g_shards[0]));
    assert_int_equal(g_nr_envs, 1);
    assert_int_equal(nr_envs(XS_LEAVE, 0, 2), 1);
    assert_null(lookup(0, name)); /* freed now that the LEAVE went out */
    assert_int_equal(g_shards[0].rooms.nr, 0);
    assert_true(list_empty(&g_shards[0].rooms.pending));
    route_all();
    assert_int_equal(home->shard_mask, 1ull << 2);

    settle();
    publish(2, h, "after");
    assert_int_equal(g_nr_envs, 0); /* no DELIVER to shard 0 any more */

    leave(2, h);
    check_no_rooms();
}

/* A LEAVE pending when the shard has a member again: the home never stopped counting it, so
 * nothing is sent at all. */
static void pending_leave_then_rejoin_sends_nothing(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 1);
    struct conn *x = mkconn(0, 1, 1), *y = mkconn(1, 2, 1);
    join(3, x, name);
    settle();

    g_push_refuse = 1u << XS_LEAVE;
    leave(3, x);
    struct room *r = lookup(3, name);
    assert_true(is_pending(3, r));
    join(3, y, name);
    assert_ptr_equal(lookup(3, name), r);
    assert_false(is_pending(3, r));
    assert_true(r->home_knows);
    g_push_refuse = 0;
    assert_false(room_retry(&g_shards[3]));
    assert_int_equal(g_nr_envs, 0);
    assert_int_equal(lookup(1, name)->shard_mask, 1ull << 3);

    leave(3, y);
    route_all();
    check_no_rooms();
}

/* A JOIN pending when the only member leaves: the home never knew, nothing is sent, the room
 * is freed at once. */
static void pending_join_then_leave_sends_nothing(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *x = mkconn(0, 1, 1);

    g_push_refuse = 1u << XS_JOIN;
    join(0, x, name);
    assert_int_equal(g_nr_refused, 1);
    assert_true(is_pending(0, lookup(0, name)));
    leave(0, x);
    assert_int_equal(g_nr_refused, 1); /* no LEAVE tried */
    assert_null(lookup(0, name));
    assert_true(list_empty(&g_shards[0].rooms.pending));
    g_push_refuse = 0;
    assert_false(room_retry(&g_shards[0]));
    assert_int_equal(g_nr_envs, 0);
    assert_null(lookup(2, name));
    check_no_rooms();
}

/* Several rooms pending: a retry that still has no memory keeps them all, one with memory sends
 * them all. */
static void retry_sends_every_pending_note(void **state)
{
    (void)state;
    char names[3][32];
    struct conn *c[3];
    for (unsigned i = 0; i < 3; i++) {
        name_with_home(names[i], sizeof(names[i]), i + 1);
        c[i] = mkconn(i, i, 1);
    }
    g_push_refuse = 1u << XS_JOIN;
    for (unsigned i = 0; i < 3; i++)
        join(0, c[i], names[i]);
    assert_int_equal(g_nr_refused, 3);
    assert_true(room_retry(&g_shards[0]));
    for (unsigned i = 0; i < 3; i++)
        assert_true(is_pending(0, lookup(0, names[i])));

    g_push_refuse = 0;
    assert_false(room_retry(&g_shards[0]));
    assert_int_equal(g_nr_envs, 3);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(nr_envs(XS_JOIN, 0, i + 1), 1);
    route_all();
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(lookup(i + 1, names[i])->shard_mask, 1ull << 0);

    /* Now the LEAVEs, refused once each. */
    settle();
    g_push_refuse = 1u << XS_LEAVE;
    for (unsigned i = 0; i < 3; i++)
        leave(0, c[i]);
    assert_int_equal(g_shards[0].rooms.nr, 3);
    g_push_refuse = 0;
    assert_false(room_retry(&g_shards[0]));
    assert_int_equal(nr_envs_kind(XS_LEAVE), 3);
    assert_int_equal(g_shards[0].rooms.nr, 0);
    route_all();
    check_no_rooms();
}

/* Shutdown with notes still pending: the rooms go with the table (ASan's leak check). */
static void table_fini_frees_pending_rooms(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 1);
    struct conn *x = mkconn(0, 1, 1), *y = mkconn(1, 2, 1), *z = mkconn(2, 3, 1);
    join(0, y, name);
    settle();
    g_push_refuse = 1u << XS_JOIN | 1u << XS_LEAVE;
    join(2, x, name); /* JOIN pending on shard 2 */
    join(3, z, name); /* and on shard 3 */
    leave(0, y);      /* LEAVE pending on shard 0 */
    assert_int_equal(g_nr_refused, 3);
    assert_true(is_pending(2, lookup(2, name)));
    assert_true(is_pending(3, lookup(3, name)));
    assert_true(is_pending(0, lookup(0, name)));
    leave(2, x); /* the pending JOIN is void: freed at once */
    assert_null(lookup(2, name));
    assert_int_equal(g_nr_envs, 0);
    for (unsigned sh = 0; sh < 4; sh++) {
        room_table_fini(&g_shards[sh]);
        /* A table starts anew after fini. */
        assert_int_equal(room_table_init(&g_shards[sh].rooms), 0);
        assert_true(list_empty(&g_shards[sh].rooms.pending));
    }
    g_push_refuse = 0;
    assert_false(room_retry(&g_shards[0]));
    assert_int_equal(g_nr_envs, 0);
    for (unsigned sh = 0; sh < 4; sh++)
        assert_int_equal(g_shards[sh].rooms.nr, 0);
}

/* Envelopes left in the queues after the shards stopped: each kind's memory is freed. */
static void leftover_envelopes_are_dropped(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *x = mkconn(0, 1, 1), *h = mkconn(1, 2, 1), *asker = mkconn(10, 10, 1);
    join(2, h, name);
    join(0, x, name);       /* XS_JOIN: a room */
    publish(0, x, "left");  /* XS_PUBLISH: a msg */
    leave(0, x);            /* XS_LEAVE: a msg */
    ask(3, asker, name, 1); /* XS_ASK: an ask */
    assert_int_equal(g_nr_envs, 4);
    for (size_t i = 0; i < g_nr_envs; i++)
        room_envelope_drop(&g_envs[i].env);
    g_nr_envs = g_env_head = 0;
    assert_int_equal(g_nr_answers, 0);
    leave(2, h);
    check_no_rooms();
}

/* ---------------------------------------------------------------------------------------------
 * JOIN at home: the note is kept or freed
 * -------------------------------------------------------------------------------------------*/

static void join_at_home_keeps_or_frees_the_note(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *a = mkconn(0, 1, 1), *b = mkconn(1, 1, 1), *h = mkconn(2, 1, 1);

    /* No room at home: the member shard's note becomes it. */
    join(0, a, name);
    assert_int_equal(g_nr_envs, 1);
    struct room *note = g_envs[0].env.ptr;
    assert_null(lookup(2, name));
    route_all();
    assert_ptr_equal(lookup(2, name), note);
    assert_int_equal(note->shard_mask, 1ull << 0);
    assert_int_equal(note->nr_subs, 0);
    assert_int_equal(g_shards[2].rooms.nr, 1);
    assert_int_equal(rooms_stat(2), 1);
    assert_int_equal(rooms_stat(0), 0); /* counted once, by the home */

    /* A room at home already: the second note is freed (ASan's leak check), the room stays. */
    settle();
    join(1, b, name);
    assert_int_equal(g_nr_envs, 1);
    assert_ptr_not_equal(g_envs[0].env.ptr, note);
    route_all();
    assert_ptr_equal(lookup(2, name), note);
    assert_int_equal(note->shard_mask, 1ull << 0 | 1ull << 1);
    assert_int_equal(g_shards[2].rooms.nr, 1);
    assert_int_equal(rooms_stat(2), 1);

    /* The kept note works as the home's own room: home members join it. */
    join(2, h, name);
    assert_ptr_equal(sub_of(h)->room, note);
    assert_int_equal(note->shard_mask, 0x7);
    settle();
    publish(2, h, "kept");
    route_all();
    assert_int_equal(nr_delivered_to(a), 1);
    assert_int_equal(nr_delivered_to(b), 1);

    /* The home's own room first, then a note: freed. */
    char other[32];
    for (unsigned i = 0;; i++) {
        snprintf(other, sizeof(other), "home-%u", i);
        if (home_of(other) == 2)
            break;
    }
    struct conn *h2 = mkconn(3, 2, 1), *c3 = mkconn(4, 1, 1);
    join(2, h2, other);
    struct room *own = lookup(2, other);
    settle();
    join(3, c3, other);
    route_all();
    assert_ptr_equal(lookup(2, other), own);
    assert_int_equal(own->shard_mask, 1ull << 2 | 1ull << 3);
    assert_int_equal(g_shards[2].rooms.nr, 2);
    assert_int_equal(rooms_stat(2), 2);

    settle();
    leave(0, a);
    leave(1, b);
    leave(2, h);
    leave(2, h2);
    leave(3, c3);
    route_all();
    check_no_rooms();
}

/* ---------------------------------------------------------------------------------------------
 * Streams, history, positions, presence and join/leave
 * -------------------------------------------------------------------------------------------*/

/* Asks question <q> about <name> from <c> on <shard>; <fill> may set the ask's inputs. */
static void ask_q(unsigned shard, struct conn *c, uint32_t q, const char *name,
                  void (*fill)(struct room_ask *a))
{
    struct room_ask *a = room_ask_create(&g_shards[shard], c, q, name, strlen(name), on_answer);
    assert_non_null(a);
    a->client_info = test_client_info;
    if (fill)
        fill(a);
    assert_int_equal(room_ask(&g_shards[shard], a), 0);
}

static void fill_all(struct room_ask *a)
{
    a->hist.limit = -1;
}

static void fill_since_1(struct room_ask *a)
{
    a->hist.has_since = true;
    a->hist.since_offset = 1;
}

static void fill_since_0(struct room_ask *a)
{
    a->hist.has_since = true;
    a->hist.since_offset = 0;
}

/* Offsets 1, 2, 3 given by the home to raw and by-name publications alike, on every shard's
 * push; the history question answers them in order with the epoch and the top. */
static void home_gives_offsets_and_keeps_history(void **state)
{
    (void)state;
    g_cfg.history_size = 10;
    g_cfg.history_ttl = 60;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *raw = mkconn(0, 0, 1), *p1 = mkconn(1, 1, 1), *p3 = mkconn(2, 2, 1);
    struct conn *asker = mkconn(3, 3, 1);
    join(1, raw, name);
    join_with(1, p1, name, SUB_PROTO);
    join_with(3, p3, name, SUB_PROTO);
    settle();
    assert_int_equal(lookup(2, name)->proto_mask, (1u << 1) | (1u << 3));
    publish(1, raw, "1");
    publish_by_name(0, name, "\"two\"");
    publish_by_name(3, name, "{\"n\":3}");
    route_all();
    char want[128];
    snprintf(want, sizeof(want),
             "{\"push\":{\"channel\":\"%s\",\"pub\":{\"data\":1,\"offset\":1}}}", name);
    assert_int_equal(nr_delivered_text(p1, want), 1);
    assert_int_equal(nr_delivered_text(p3, want), 1);
    snprintf(want, sizeof(want),
             "{\"push\":{\"channel\":\"%s\",\"pub\":{\"data\":{\"n\":3},\"offset\":3}}}", name);
    assert_int_equal(nr_delivered_text(p1, want), 1);
    assert_int_equal(nr_delivered_text(raw, "{\"n\":3}"), 1);
    settle();

    ask_q(0, asker, ROOM_Q_HISTORY, name, fill_all);
    route_all();
    assert_int_equal(g_nr_answers, 1);
    const struct answer_rec *r = &g_answers[0];
    assert_int_equal(r->error, 0);
    const char *head =
        "{\"publications\":[{\"data\":1,\"offset\":1},{\"data\":\"two\",\"offset\":2},"
        "{\"data\":{\"n\":3},\"offset\":3}],\"epoch\":\"";
    assert_memory_equal(r->result, head, strlen(head));
    const char *tail = strstr(r->result + strlen(head), "\",\"offset\":3}");
    assert_non_null(tail);
    assert_int_equal(tail - (r->result + strlen(head)), 8); /* 8 hex digits */

    leave(1, raw);
    leave(1, p1);
    leave(3, p3);
    settle();
    /* No member left, but the publications live until --history-ttl. */
    assert_non_null(lookup(2, name));
    g_shards[2].now += 61;
    room_tick(&g_shards[2]);
    check_no_rooms();
}

/* A subscription waiting for its position (SUB_PENDING) gets nothing; the answer to its
 * question holds what it missed after its offset, or says there is a gap. */
static void pending_subscription_and_recovery(void **state)
{
    (void)state;
    g_cfg.history_size = 2;
    g_cfg.history_ttl = 60;
    char name[32];
    name_with_home(name, sizeof(name), 0);
    struct conn *p = mkconn(0, 0, 1), *other = mkconn(1, 1, 1);
    join_with(1, other, name, SUB_PROTO);
    join_with(2, p, name, SUB_PROTO | SUB_PENDING);
    settle();
    publish_by_name(3, name, "1");
    publish_by_name(3, name, "2");
    route_all();
    assert_int_equal(nr_delivered_to(p), 0);
    assert_int_equal(nr_delivered_to(other), 2);
    settle();
    ask_q(2, p, ROOM_Q_SUBSCRIBE, name, fill_since_1);
    route_all();
    assert_int_equal(g_nr_answers, 1);
    assert_int_equal(g_answers[0].recovery, HISTORY_RECOVERED);
    assert_int_equal(g_answers[0].top, 2);
    assert_int_equal(strlen(g_answers[0].epoch), 8);
    assert_string_equal(g_answers[0].result, "{\"data\":2,\"offset\":2}");
    /* A third publication evicts offset 1: from 0 there is a gap now. */
    publish_by_name(3, name, "3");
    settle();
    ask_q(2, p, ROOM_Q_SUBSCRIBE, name, fill_since_0);
    route_all();
    assert_int_equal(g_nr_answers, 2);
    assert_int_equal(g_answers[1].recovery, HISTORY_GAP);
    assert_int_equal(g_answers[1].top, 3);
    assert_string_equal(g_answers[1].result, "");
    /* The owner clears the flag: the next publication reaches it. */
    sub_of(p)->flags &= ~(uint32_t)SUB_PENDING;
    settle();
    publish_by_name(3, name, "4");
    route_all();
    assert_int_equal(nr_delivered_to(p), 1);
    settle();
    leave(2, p);
    leave(1, other);
    settle();
    g_shards[0].now += 61;
    room_tick(&g_shards[0]);
    check_no_rooms();
}

/* Presence visits every shard with protocol members, from the home on, and comes back to the
 * asker: every client once, users counted once. */
static void presence_visits_member_shards(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *a = mkconn(0, 0, 1), *b = mkconn(1, 1, 1), *c = mkconn(2, 2, 1);
    struct conn *raw = mkconn(3, 3, 1), *asker = mkconn(4, 4, 1);
    join_with(0, a, name, SUB_PROTO);
    join_with(1, b, name, SUB_PROTO);
    join_with(3, c, name, SUB_PROTO);
    join(2, raw, name); /* not a protocol member: not in presence */
    settle();
    ask_q(1, asker, ROOM_Q_PRESENCE, name, NULL);
    route_all();
    assert_int_equal(g_nr_answers, 1);
    assert_int_equal(g_answers[0].error, 0);
    const char *r = g_answers[0].result;
    assert_memory_equal(r, "{\"presence\":{", 13);
    assert_non_null(strstr(r, "\"c0\":{\"user\":\"u0\",\"client\":\"c0\"}"));
    assert_non_null(strstr(r, "\"c1\":{\"user\":\"u1\",\"client\":\"c1\"}"));
    assert_non_null(strstr(r, "\"c2\":{\"user\":\"u0\",\"client\":\"c2\"}"));
    assert_null(strstr(r, "c3"));
    ask_q(0, asker, ROOM_Q_PRESENCE_STATS, name, NULL);
    route_all();
    assert_int_equal(g_nr_answers, 2);
    assert_string_equal(g_answers[1].result, "{\"num_clients\":3,\"num_users\":2}");
    /* A room nobody is in: empty answers. */
    ask_q(0, asker, ROOM_Q_PRESENCE, "nobody", NULL);
    ask_q(0, asker, ROOM_Q_PRESENCE_STATS, "nobody", NULL);
    route_all();
    assert_int_equal(g_nr_answers, 4);
    assert_string_equal(g_answers[2].result, "{\"presence\":{}}");
    assert_string_equal(g_answers[3].result, "{\"num_clients\":0,\"num_users\":0}");
    settle();
    leave(0, a);
    leave(1, b);
    leave(3, c);
    leave(2, raw);
    route_all();
    check_no_rooms();
}

/* Join and leave pushes reach only the protocol members that asked for them and are not
 * waiting for their position; they take no offset. */
static void join_leave_only_to_those_who_asked(void **state)
{
    (void)state;
    g_cfg.history_size = 10;
    g_cfg.history_ttl = 300;
    char name[32];
    name_with_home(name, sizeof(name), 1);
    struct conn *jl = mkconn(0, 0, 1), *plain = mkconn(1, 1, 1), *raw = mkconn(2, 2, 1);
    struct conn *wait = mkconn(3, 3, 1);
    join_with(0, jl, name, SUB_PROTO | SUB_JOIN_LEAVE);
    join_with(0, plain, name, SUB_PROTO);
    join(2, raw, name);
    join_with(3, wait, name, SUB_PROTO | SUB_JOIN_LEAVE | SUB_PENDING);
    settle();
    const char *push = "{\"push\":{\"join\":1}}";
    assert_int_equal(room_push_join_leave(&g_shards[2], name, strlen(name), push, strlen(push)), 0);
    route_all();
    assert_int_equal(g_nr_dl, 1);
    assert_int_equal(nr_delivered_text(jl, push), 1);
    settle();
    publish_by_name(0, name, "7");
    route_all();
    char want[128];
    snprintf(want, sizeof(want),
             "{\"push\":{\"channel\":\"%s\",\"pub\":{\"data\":7,\"offset\":1}}}", name);
    assert_int_equal(nr_delivered_text(jl, want), 1);
    settle();
    leave(0, jl);
    leave(0, plain);
    leave(2, raw);
    leave(3, wait);
    settle();
    g_shards[1].now += 400;
    room_tick(&g_shards[1]);
    check_no_rooms();
}

/* The home learns which member shards have protocol members from the JOIN notes, also when
 * the first protocol member comes to a shard that had raw members already, and forgets it when
 * the last one goes while raw members stay. */
static void home_tracks_protocol_member_shards(void **state)
{
    (void)state;
    char name[32];
    name_with_home(name, sizeof(name), 0);
    struct conn *raw = mkconn(0, 0, 1), *p = mkconn(1, 1, 1);
    join(1, raw, name);
    settle();
    struct room *home = lookup(0, name);
    assert_int_equal(home->shard_mask, 1u << 1);
    assert_int_equal(home->proto_mask, 0);
    join_with(1, p, name, SUB_PROTO);
    settle();
    assert_int_equal(home->proto_mask, 1u << 1);
    leave(1, p);
    settle();
    assert_int_equal(home->shard_mask, 1u << 1);
    assert_int_equal(home->proto_mask, 0);
    leave(1, raw);
    settle();
    check_no_rooms();
}

/* ---------------------------------------------------------------------------------------------
 * Backpressure
 * -------------------------------------------------------------------------------------------*/

/* A receiver holding over a quarter of --send-queue that keeps reading pauses the publisher,
 * on its own shard or through an XS_PAUSE to the publisher's, for longer the deeper it is; a
 * stalled one is cut instead; with --slow-consumer drop nobody is paused or cut. */
static void receivers_press_publishers(void **state)
{
    (void)state;
    g_cfg.send_queue = 4000; /* pressure above 1000 bytes */
    char name[32];
    name_with_home(name, sizeof(name), 1);
    struct conn *pub = mkconn(5, 5, 3), *reader = mkconn(6, 6, 1), *stuck = mkconn(7, 7, 1);
    struct conn *local = mkconn(8, 8, 1);
    join(0, pub, name);
    join(1, reader, name);
    join(1, local, name);
    settle();

    /* Deep but moving: the publisher on shard 0 is paused through an envelope, 20 ms for each
     * quarter. */
    reader->queued = 3000;
    reader->last_tx = g_shards[1].now;
    publish(0, pub, "x");
    route_all();
    assert_int_equal(g_nr_pauses, 1);
    assert_int_equal(g_pauses[0].shard, 0);
    assert_ptr_equal(g_pauses[0].c, pub);
    assert_int_equal(g_pauses[0].ms, 3 * ROOM_PAUSE_MS);
    assert_int_equal(g_nr_cut, 0);

    /* Same shard: paused directly. */
    reader->queued = 0;
    settle();
    g_nr_pauses = 0;
    local->queued = 1500;
    local->last_tx = g_shards[1].now;
    publish(1, reader, "y");
    route_all();
    assert_int_equal(g_nr_pauses, 1);
    assert_ptr_equal(g_pauses[0].c, reader);
    assert_int_equal(g_pauses[0].ms, ROOM_PAUSE_MS * 3 / 2);

    /* Stalled for ROOM_STALL_S: cut, not followed. */
    local->queued = 0;
    settle();
    g_nr_pauses = 0;
    join(1, stuck, name);
    stuck->queued = 3500;
    g_shards[1].now = 100;
    stuck->last_tx = 100 - ROOM_STALL_S;
    publish(0, pub, "z");
    route_all();
    assert_int_equal(g_nr_cut, 1);
    assert_ptr_equal(g_cut[0], stuck);
    assert_int_equal(g_nr_pauses, 0);

    /* drop: deep receivers press on nobody. */
    settle();
    g_cfg.slow_consumer = SLOW_DROP;
    reader->queued = 3900;
    reader->last_tx = 100;
    publish(0, pub, "w");
    route_all();
    assert_int_equal(g_nr_pauses, 0);
    assert_int_equal(g_nr_cut, 1);
    reader->queued = 0;
    settle();
    leave(0, pub);
    leave(1, reader);
    leave(1, local);
    route_all();
    check_no_rooms();
}

/* Messages waiting for another shard to take them count too: a publish that finds more than a
 * quarter of --send-queue of such messages queued to the home pauses its publisher. */
static void cross_shard_backlog_pauses_publisher(void **state)
{
    (void)state;
    g_cfg.send_queue = 4000;
    char name[32];
    name_with_home(name, sizeof(name), 1);
    struct conn *pub = mkconn(5, 5, 3), *other = mkconn(6, 6, 1);
    join(0, pub, name);
    join(1, other, name);
    settle();
    g_backlog = 1; /* "x" makes frames of 3 bytes: 333 of them are a quarter */
    publish(0, pub, "x");
    assert_int_equal(g_nr_pauses, 0);
    g_backlog = 3 * 333;
    publish(0, pub, "x");
    assert_int_equal(g_nr_pauses, 1);
    assert_ptr_equal(g_pauses[0].c, pub);
    assert_int_equal(g_pauses[0].ms, 3 * ROOM_PAUSE_MS);
    g_backlog = 0;
    settle();
    leave(0, pub);
    leave(1, other);
    route_all();
    check_no_rooms();
}

/* ROOM_Q_PUBLISH: the home publishes the ask's message like any other (its members on every
 * shard get it) and answers with the offset it gave and the stream's epoch; with no history the
 * answer is {}. */
static void publish_question_answers_the_position(void **state)
{
    (void)state;
    g_cfg.history_size = 10;
    g_cfg.history_ttl = 60;
    char name[32];
    name_with_home(name, sizeof(name), 2);
    struct conn *m = mkconn(1, 1, 1), *asker = mkconn(3, 3, 1);
    join_with(0, m, name, SUB_PROTO);
    settle();
    publish_by_name(1, name, "1");
    route_all();
    settle();
    struct room_ask *a = room_ask_publish(&g_shards[3], asker, name, strlen(name), WS_OP_TEXT,
                                          (const uint8_t *)"2", 1, NULL, 0, on_answer);
    assert_non_null(a);
    assert_int_equal(room_ask(&g_shards[3], a), 0);
    route_all();
    assert_int_equal(g_nr_answers, 1);
    assert_int_equal(g_answers[0].error, 0);
    assert_memory_equal(g_answers[0].result, "{\"offset\":2,\"epoch\":\"", 21);
    char want[128];
    snprintf(want, sizeof(want),
             "{\"push\":{\"channel\":\"%s\",\"pub\":{\"data\":2,\"offset\":2}}}", name);
    assert_int_equal(nr_delivered_text(m, want), 1);
    /* No history: {} and still delivered. */
    g_cfg.history_size = 0;
    settle();
    a = room_ask_publish(&g_shards[3], asker, name, strlen(name), WS_OP_TEXT, (const uint8_t *)"3",
                         1, NULL, 0, on_answer);
    assert_int_equal(room_ask(&g_shards[3], a), 0);
    route_all();
    assert_int_equal(g_nr_answers, 2);
    assert_string_equal(g_answers[1].result, "{}");
    assert_int_equal(nr_delivered_to(m), 1);
    settle();
    leave(0, m);
    settle();
    g_shards[2].now += 61;
    room_tick(&g_shards[2]);
    check_no_rooms();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hash_is_seeded_and_home_is_modulo, setup_4, teardown),
        cmocka_unit_test_setup_teardown(proto_members_get_one_shared_push, setup_1, teardown),
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
        cmocka_unit_test_setup_teardown(one_connection_in_twenty_rooms, setup_4, teardown),
        cmocka_unit_test_setup_teardown(connection_in_many_rooms_closed_mid_fanout, setup_4,
                                        teardown),
        cmocka_unit_test_setup_teardown(publish_by_name_reaches_every_member, setup_4, teardown),
        cmocka_unit_test_setup_teardown(publish_by_name_to_empty_room_is_dropped, setup_4,
                                        teardown),
        cmocka_unit_test_setup_teardown(ask_info_is_answered_on_the_askers_shard, setup_4,
                                        teardown),
        cmocka_unit_test_setup_teardown(ask_about_unknown_room_is_enoent, setup_4, teardown),
        cmocka_unit_test_setup_teardown(ask_answer_dropped_when_asker_gone, setup_4, teardown),
        cmocka_unit_test_setup_teardown(ask_dropped_without_memory, setup_4, teardown),
        cmocka_unit_test_setup_teardown(failed_join_is_retried, setup_4, teardown),
        cmocka_unit_test_setup_teardown(failed_leave_is_retried, setup_4, teardown),
        cmocka_unit_test_setup_teardown(pending_leave_then_rejoin_sends_nothing, setup_4, teardown),
        cmocka_unit_test_setup_teardown(pending_join_then_leave_sends_nothing, setup_4, teardown),
        cmocka_unit_test_setup_teardown(retry_sends_every_pending_note, setup_4, teardown),
        cmocka_unit_test_setup_teardown(table_fini_frees_pending_rooms, setup_4, teardown),
        cmocka_unit_test_setup_teardown(leftover_envelopes_are_dropped, setup_4, teardown),
        cmocka_unit_test_setup_teardown(join_at_home_keeps_or_frees_the_note, setup_4, teardown),
        cmocka_unit_test_setup_teardown(home_gives_offsets_and_keeps_history, setup_4, teardown),
        cmocka_unit_test_setup_teardown(pending_subscription_and_recovery, setup_4, teardown),
        cmocka_unit_test_setup_teardown(presence_visits_member_shards, setup_4, teardown),
        cmocka_unit_test_setup_teardown(join_leave_only_to_those_who_asked, setup_4, teardown),
        cmocka_unit_test_setup_teardown(home_tracks_protocol_member_shards, setup_4, teardown),
        cmocka_unit_test_setup_teardown(receivers_press_publishers, setup_4, teardown),
        cmocka_unit_test_setup_teardown(cross_shard_backlog_pauses_publisher, setup_4, teardown),
        cmocka_unit_test_setup_teardown(publish_question_answers_the_position, setup_4, teardown),
    };
    return cmocka_run_group_tests_name("room", tests, NULL, NULL);
}
