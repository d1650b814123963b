/* SPDX-License-Identifier: MIT */
/*
 * room: rooms, their members on this shard, and fan-out.
 *
 * Every shard keeps its own table of rooms: those with local members, and those whose home it
 * is (xxh3(name, seed) % shards). The home shard also records which shards have members, as a
 * bitmap fed by JOIN and LEAVE envelopes, so that a publish travels publisher -> home -> each
 * member shard once, never once per member. Order per publisher holds because every hop is a
 * FIFO ring per (from, to) pair.
 */
#include "probes.h"
#include "shard.h"
#include "xshard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct room {
    struct room *hnext;
    uint64_t hash;
    struct conn *members;
    uint32_t nr_members;
    uint64_t shard_mask; /* home shard only: shards with members */
    uint16_t home;
    uint16_t name_len;
    char name[];
};

uint64_t room_hash(const struct engine *e, const char *name, size_t len)
{
    return XXH3_64bits_withSeed(name, len, e->room_seed);
}

unsigned room_home(const struct engine *e, uint64_t hash)
{
    return (unsigned)(hash % e->nr_shards);
}

static struct room *room_find(struct room_table *t, uint64_t hash, const char *name, size_t len)
{
    if (!t->buckets)
        return NULL;
    for (struct room *r = t->buckets[hash & t->mask]; r; r = r->hnext)
        if (r->hash == hash && r->name_len == len && memcmp(r->name, name, len) == 0)
            return r;
    return NULL;
}

static int table_grow(struct room_table *t)
{
    uint32_t nmask = t->buckets ? t->mask * 2 + 1 : 63;
    struct room **nb = calloc((size_t)nmask + 1, sizeof(*nb));
    if (!nb)
        return -ENOMEM;
    if (t->buckets) {
        for (uint32_t i = 0; i <= t->mask; i++) {
            struct room *r = t->buckets[i];
            while (r) {
                struct room *next = r->hnext;
                r->hnext = nb[r->hash & nmask];
                nb[r->hash & nmask] = r;
                r = next;
            }
        }
        free(t->buckets);
    }
    t->buckets = nb;
    t->mask = nmask;
    return 0;
}

static struct room *room_get(struct shard *s, uint64_t hash, const char *name, size_t len)
{
    struct room_table *t = &s->rooms;
    struct room *r = room_find(t, hash, name, len);
    if (r)
        return r;
    if ((!t->buckets || t->nr >= t->mask) && table_grow(t) < 0)
        return NULL;
    r = calloc(1, sizeof(*r) + len);
    if (!r)
        return NULL;
    r->hash = hash;
    r->home = (uint16_t)room_home(s->eng, hash);
    r->name_len = (uint16_t)len;
    memcpy(r->name, name, len);
    r->hnext = t->buckets[hash & t->mask];
    t->buckets[hash & t->mask] = r;
    t->nr++;
    if (r->home == s->id)
        STAT_ADD(s, rooms, 1); /* each room counted once, by its home */
    return r;
}

/* Frees <r> once nothing on this shard needs it: no local member and, at home, no member
 * shard. */
static void room_maybe_free(struct shard *s, struct room *r)
{
    if (r->nr_members || r->shard_mask)
        return;
    struct room **pp = &s->rooms.buckets[r->hash & s->rooms.mask];
    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    s->rooms.nr--;
    if (r->home == s->id)
        STAT_SUB(s, rooms, 1);
    free(r);
}

/* Sends a JOIN or LEAVE for <r> to its home; the name travels in a frameless msg. */
static void tell_home(struct shard *s, struct room *r, uint32_t kind)
{
    struct msg *m = msg_create(0, r->name_len);
    if (!m)
        return; /* The home then over- or under-counts one shard; see room_handle_envelope. */
    m->room_hash = r->hash;
    memcpy(m->data, r->name, r->name_len);
    shard_push(s, r->home, kind, m, s->id);
}

int room_join(struct shard *s, struct conn *c, const char *name, size_t len)
{
    uint64_t hash = room_hash(s->eng, name, len);
    struct room *r = room_get(s, hash, name, len);
    if (!r)
        return -ENOMEM;
    c->room = r;
    c->room_prev = NULL;
    c->room_next = r->members;
    if (r->members)
        r->members->room_prev = c;
    r->members = c;
    if (r->nr_members++ == 0) {
        if (r->home == s->id)
            r->shard_mask |= 1ull << s->id;
        else
            tell_home(s, r, XS_JOIN);
    }
    return 0;
}

void room_leave(struct shard *s, struct conn *c)
{
    struct room *r = c->room;
    if (!r)
        return;
    if (c->room_prev)
        c->room_prev->room_next = c->room_next;
    else
        r->members = c->room_next;
    if (c->room_next)
        c->room_next->room_prev = c->room_prev;
    c->room = NULL;
    c->room_next = c->room_prev = NULL;
    if (--r->nr_members == 0) {
        if (r->home == s->id)
            r->shard_mask &= ~(1ull << s->id);
        else
            tell_home(s, r, XS_LEAVE);
        room_maybe_free(s, r);
    }
}

/* Queues <m> to every local member of <r> except its publisher (unless it asked for echo). */
static void deliver_local(struct shard *s, struct room *r, struct msg *m)
{
    unsigned origin_shard = m->origin >> 24;
    uint32_t origin_idx = m->origin & 0xffffff;
    unsigned n = 0, refs = r->nr_members;
    struct conn *next;
    /*
     * One atomic add for the whole fan-out instead of one per member (the count is shared with
     * other shards); what is left unused is given back in one subtraction. The caller's own
     * reference keeps <m> alive meanwhile, whatever conn_enqueue drops.
     */
    msg_ref_n(m, refs);
    for (struct conn *c = r->members; c; c = next) {
        next = c->room_next;
        if (origin_shard == s->id && c->idx == origin_idx && c->gen == m->origin_gen &&
            !(c->flags & CF_ECHO_SELF))
            continue;
        if (c->state != CONN_WS)
            continue;
        conn_enqueue(s, c, m);
        n++;
    }
    if (refs > n)
        msg_unref_n(m, refs - n);
    PROBE2(deliver, s->id, n);
}

/* At the home shard: forward to each other member shard once, then deliver locally. */
static void fanout_home(struct shard *s, struct room *r, struct msg *m)
{
    uint64_t mask = r->shard_mask & ~(1ull << s->id);
    while (mask) {
        unsigned to = (unsigned)__builtin_ctzll(mask);
        mask &= mask - 1;
        shard_push(s, to, XS_DELIVER, msg_ref(m), 0);
    }
    if (r->nr_members)
        deliver_local(s, r, m);
    msg_unref(m);
}

int room_publish(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p, size_t len)
{
    struct room *r = c->room;
    struct msg *m = msg_frame(opcode, p, len, r->name, r->name_len);
    if (!m)
        return -ENOMEM;
    m->room_hash = r->hash;
    m->origin = (uint32_t)s->id << 24 | c->idx;
    m->origin_gen = c->gen;
    m->t_recv_ns = s->now_ns;
    PROBE3(publish, s->id, c->idx, m->len);
    if (r->home == s->id)
        fanout_home(s, r, m);
    else
        shard_push(s, r->home, XS_PUBLISH, m, 0);
    return 0;
}

void room_handle_envelope(struct shard *s, const struct xshard_env *env)
{
    struct msg *m = env->ptr;
    const char *name = msg_room_name(m);
    struct room *r;
    switch (env->kind) {
    case XS_PUBLISH:
        /* We are home. No room here means no shard has members: drop. */
        r = room_find(&s->rooms, m->room_hash, name, m->name_len);
        if (r)
            fanout_home(s, r, m);
        else
            msg_unref(m);
        return;
    case XS_DELIVER:
        r = room_find(&s->rooms, m->room_hash, name, m->name_len);
        if (r && r->nr_members)
            deliver_local(s, r, m);
        msg_unref(m);
        return;
    case XS_JOIN:
        r = room_get(s, m->room_hash, name, m->name_len);
        if (r)
            r->shard_mask |= 1ull << env->val;
        msg_unref(m);
        return;
    case XS_LEAVE:
        r = room_find(&s->rooms, m->room_hash, name, m->name_len);
        if (r) {
            r->shard_mask &= ~(1ull << env->val);
            room_maybe_free(s, r);
        }
        msg_unref(m);
        return;
    default:
        msg_unref(m);
        return;
    }
}

void room_table_fini(struct shard *s)
{
    struct room_table *t = &s->rooms;
    if (!t->buckets)
        return;
    for (uint32_t i = 0; i <= t->mask; i++) {
        struct room *r = t->buckets[i];
        while (r) {
            struct room *next = r->hnext;
            free(r);
            r = next;
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}
