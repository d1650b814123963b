/* SPDX-License-Identifier: MIT */
/*
 * room: rooms, subscriptions, fan-out and questions (contract in room.h).
 */
#include "room.h"

#include "conn.h"
#include "fault.h"
#include "log.h"
#include "probes.h"
#include "proto.h"
#include "shard.h"
#include "xshard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct room {
    struct room *hnext;
    uint64_t hash;
    struct list subs; /* local subscriptions */
    uint32_t nr_subs;
    uint64_t shard_mask; /* home shard only: shards with members */
    struct list pending; /* on the table's pending list: the home's view is out of date */
    uint16_t home;
    bool home_knows; /* off home: the home counts this shard as a member shard */
    bool busy;       /* in a fan-out: members leaving meanwhile must not free it */
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

/* ---- the table ---------------------------------------------------------------------------- */

static struct room *room_find(struct room_table *t, uint64_t hash, const char *name, size_t len)
{
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

static struct room *room_alloc(const struct engine *e, uint64_t hash, const char *name, size_t len)
{
    struct room *r = calloc(1, sizeof(*r) + len);
    if (!r)
        return NULL;
    r->hash = hash;
    r->home = (uint16_t)room_home(e, hash);
    list_init(&r->subs);
    r->name_len = (uint16_t)len;
    memcpy(r->name, name, len);
    return r;
}

/* Links <r> into the table. Cannot fail: without memory to grow, the chains get longer. */
static void room_insert(struct shard *s, struct room *r)
{
    struct room_table *t = &s->rooms;
    if (t->nr >= t->mask)
        table_grow(t);
    r->hnext = t->buckets[r->hash & t->mask];
    t->buckets[r->hash & t->mask] = r;
    t->nr++;
    if (r->home == s->id)
        STAT_ADD(s, rooms, 1); /* each room counted once, by its home */
}

static struct room *room_get(struct shard *s, uint64_t hash, const char *name, size_t len)
{
    struct room *r = room_find(&s->rooms, hash, name, len);
    if (r)
        return r;
    r = room_alloc(s->eng, hash, name, len);
    if (r)
        room_insert(s, r);
    return r;
}

/* Frees <r> once nothing on this shard needs it: no local member, no member shard (at home), no
 * membership the home still counts and nothing pending. */
static void room_maybe_free(struct shard *s, struct room *r)
{
    if (r->nr_subs || r->shard_mask || r->home_knows || r->busy || list_linked(&r->pending))
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

/* ---- membership as the home sees it ------------------------------------------------------- */

/*
 * Brings the home's view of this shard's membership of <r> in line with the local one: a JOIN
 * when the first subscription came, a LEAVE when the last went. When that cannot be sent now
 * (no memory for the note or the queue), <r> stays on the pending list and room_retry sends it
 * on a later turn: a lost JOIN would hide the room's messages from this shard's members for
 * good, a lost LEAVE would send them here for good. Returns true when in line.
 */
static bool sync_home(struct shard *s, struct room *r)
{
    bool member = r->nr_subs > 0;
    if (r->home == s->id) {
        if (member)
            r->shard_mask |= 1ull << s->id;
        else
            r->shard_mask &= ~(1ull << s->id);
    } else if (member != r->home_knows) {
        /* A JOIN carries a room of our making, which the home keeps if it has none (so the
         * home needs no memory of its own to record it); a LEAVE carries the name. */
        void *note = NULL;
        if (FAULT(FAULT_ROOM_NOTE)) {
            note = NULL;
        } else if (member) {
            note = room_alloc(s->eng, r->hash, r->name, r->name_len);
        } else {
            struct msg *m = msg_create(0, r->name_len);
            if (m) {
                m->room_hash = r->hash;
                memcpy(m->data, r->name, r->name_len);
            }
            note = m;
        }
        struct xshard_env env = {.kind = member ? XS_JOIN : XS_LEAVE, .ptr = note};
        if (note && shard_push(s, r->home, env.kind, note, s->id) < 0) {
            room_envelope_drop(&env);
            note = NULL;
        }
        if (!note) {
            if (!list_linked(&r->pending)) {
                log_warn("shard %u: room membership note to shard %u delayed: out of memory", s->id,
                         r->home);
                list_add_tail(&s->rooms.pending, &r->pending);
            }
            return false;
        }
        r->home_knows = member;
    }
    if (list_linked(&r->pending))
        list_del(&r->pending);
    return true;
}

bool room_retry(struct shard *s)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->rooms.pending)
    {
        struct room *r = container_of(pos, struct room, pending);
        if (!sync_home(s, r))
            return true;
        room_maybe_free(s, r);
    }
    return false;
}

/* ---- subscriptions ------------------------------------------------------------------------ */

int room_subscribe(struct shard *s, struct sub *sub, struct conn *c, const char *name, size_t len,
                   uint32_t flags)
{
    uint64_t hash = room_hash(s->eng, name, len);
    struct room *r = room_get(s, hash, name, len);
    if (!r)
        return -ENOMEM;
    sub->room = r;
    sub->conn = c;
    sub->flags = flags;
    list_add_head(&r->subs, &sub->link);
    if (r->nr_subs++ == 0)
        sync_home(s, r);
    return 0;
}

void room_unsubscribe(struct shard *s, struct sub *sub)
{
    struct room *r = sub->room;
    if (!r)
        return;
    list_del(&sub->link);
    sub->room = NULL;
    if (--r->nr_subs == 0) {
        sync_home(s, r);
        room_maybe_free(s, r);
    }
}

/* ---- fan-out ------------------------------------------------------------------------------ */

/* Queues <m> to every local member of <r> except its publisher (unless it asked for echo).
 * <r> may be freed by the time it returns (its last members closed as slow consumers). */
static void deliver_local(struct shard *s, struct room *r, struct msg *m)
{
    unsigned origin_shard = m->origin >> 24;
    uint32_t origin_idx = m->origin & 0xffffff;
    unsigned n = 0, refs = r->nr_subs;
    /* Protocol subscribers get the message as a `pub` push, made here from <m> on the first one
     * met and shared by the others (reference-counted like <m>); <m> itself is shared with
     * other shards and never written. */
    struct msg *pm = NULL;
    unsigned np = 0;
    bool pm_failed = false;
    /*
     * One atomic add for the whole fan-out instead of one per member (the count is shared with
     * other shards); what is left unused is given back in one subtraction. The caller's own
     * reference keeps <m> alive meanwhile, whatever conn_enqueue drops. A member closed by the
     * slow-consumer policy inside conn_enqueue leaves the list then: only its own node goes, and
     * the next one was saved.
     */
    msg_ref_n(m, refs);
    r->busy = true;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &r->subs)
    {
        struct sub *sub = container_of(pos, struct sub, link);
        struct conn *c = sub->conn;
        if (origin_shard == s->id && c->idx == origin_idx && c->gen == m->origin_gen &&
            !(sub->flags & SUB_ECHO))
            continue;
        if (!conn_is_open(c))
            continue;
        if (sub->flags & SUB_PROTO) {
            if (!pm && !pm_failed) {
                pm = FAULT(FAULT_PROTO_PUSH) ? NULL : proto_pub_frame(m);
                if (pm)
                    msg_ref_n(pm, refs);
                else
                    pm_failed = true; /* out of memory: the protocol members miss this one */
            }
            if (pm) {
                conn_enqueue(s, c, pm);
                np++;
            }
            continue;
        }
        conn_enqueue(s, c, m);
        n++;
    }
    if (refs > n)
        msg_unref_n(m, refs - n);
    if (pm) {
        if (refs > np)
            msg_unref_n(pm, refs - np);
        msg_unref(pm);
    }
    PROBE2(deliver, s->id, n + np);
    r->busy = false;
    room_maybe_free(s, r);
}

/* At the home shard: forward to each other member shard once, then deliver locally. Takes <m>. */
static void fanout_home(struct shard *s, struct room *r, struct msg *m)
{
    uint64_t mask = r->shard_mask & ~(1ull << s->id);
    while (mask) {
        unsigned to = (unsigned)__builtin_ctzll(mask);
        mask &= mask - 1;
        if (shard_push(s, to, XS_DELIVER, msg_ref(m), 0) < 0)
            msg_unref(m);
    }
    if (r->nr_subs)
        deliver_local(s, r, m);
    msg_unref(m);
}

/* Sends <m> (taken) on its way to its room's home, or fans it out here when this is home. */
static void route_publish(struct shard *s, struct msg *m, unsigned home)
{
    if (home == s->id) {
        struct room *r = room_find(&s->rooms, m->room_hash, msg_room_name(m), m->name_len);
        if (r)
            fanout_home(s, r, m);
        else
            msg_unref(m); /* no member anywhere */
        return;
    }
    if (shard_push(s, home, XS_PUBLISH, m, 0) < 0)
        msg_unref(m);
}

int room_publish(struct shard *s, const struct sub *from, uint8_t opcode, const uint8_t *p,
                 size_t len)
{
    struct room *r = from->room;
    struct msg *m = msg_frame(opcode, p, len, r->name, r->name_len);
    if (!m)
        return -ENOMEM;
    m->room_hash = r->hash;
    m->origin = (uint32_t)s->id << 24 | from->conn->idx;
    m->origin_gen = from->conn->gen;
    m->t_recv_ns = s->now_ns;
    PROBE3(publish, s->id, from->conn->idx, m->len);
    if (r->home == s->id)
        fanout_home(s, r, m);
    else if (shard_push(s, r->home, XS_PUBLISH, m, 0) < 0)
        msg_unref(m);
    return 0;
}

int room_publish_by_name(struct shard *s, const char *name, size_t name_len, uint8_t opcode,
                         const uint8_t *p, size_t len)
{
    struct msg *m = msg_frame(opcode, p, len, name, name_len);
    if (!m)
        return -ENOMEM;
    m->room_hash = room_hash(s->eng, name, name_len);
    m->origin = UINT32_MAX; /* nobody to skip */
    m->t_recv_ns = s->now_ns;
    route_publish(s, m, room_home(s->eng, m->room_hash));
    return 0;
}

/* ---- questions ---------------------------------------------------------------------------- */

struct room_ask *room_ask_create(struct shard *s, struct conn *c, uint32_t q, const char *name,
                                 size_t len, room_answer_cb cb)
{
    struct room_ask *a = calloc(1, sizeof(*a) + len);
    if (!a)
        return NULL;
    a->question = q;
    a->reply = (struct reply_to){.shard = s->id, .slot = c->idx, .gen = c->gen};
    a->on_answer = cb;
    a->hash = room_hash(s->eng, name, len);
    a->name_len = (uint16_t)len;
    memcpy(a->name, name, len);
    return a;
}

/* At home: fill in the answer. */
static void answer(struct shard *s, struct room_ask *a)
{
    struct room *r = room_find(&s->rooms, a->hash, a->name, a->name_len);
    if (!r || (!r->shard_mask && !r->nr_subs)) {
        a->status = -ENOENT;
        return;
    }
    a->status = 0;
    a->nr_shards = (uint32_t)__builtin_popcountll(r->shard_mask);
    a->nr_home_members = r->nr_subs;
}

/* Back on the asker's shard: hand the answer over if the asker is still there. Frees <a>. */
static void take_answer(struct shard *s, struct room_ask *a)
{
    if (a->reply.slot < s->nr_slots) {
        struct conn *c = &s->conns[a->reply.slot];
        if (c->gen == a->reply.gen && conn_is_open(c))
            a->on_answer(s, c, a);
    }
    free(a);
}

int room_ask(struct shard *s, struct room_ask *a)
{
    unsigned home = room_home(s->eng, a->hash);
    if (home == s->id) {
        answer(s, a);
        take_answer(s, a);
        return 0;
    }
    if (shard_push(s, home, XS_ASK, a, 0) < 0) {
        free(a);
        return -ENOMEM;
    }
    return 0;
}

/* ---- envelopes ---------------------------------------------------------------------------- */

void room_handle_envelope(struct shard *s, const struct xshard_env *env)
{
    if (env->kind == XS_ASK) {
        struct room_ask *a = env->ptr;
        answer(s, a);
        /* Dropped when the queue back is out of memory: the asker then never hears, which it
         * must survive anyway (it may close first). */
        if (shard_push(s, a->reply.shard, XS_ANSWER, a, 0) < 0)
            free(a);
        return;
    }
    if (env->kind == XS_ANSWER) {
        take_answer(s, env->ptr);
        return;
    }
    struct msg *m = env->ptr;
    struct room *r;
    switch (env->kind) {
    case XS_PUBLISH:
        route_publish(s, m, s->id); /* we are home */
        return;
    case XS_DELIVER:
        r = room_find(&s->rooms, m->room_hash, msg_room_name(m), m->name_len);
        if (r && r->nr_subs)
            deliver_local(s, r, m);
        msg_unref(m);
        return;
    case XS_JOIN: {
        /* The member shard sent a room of its making: ours now, kept or freed. */
        struct room *note = env->ptr;
        r = room_find(&s->rooms, note->hash, note->name, note->name_len);
        if (r) {
            free(note);
        } else {
            r = note;
            room_insert(s, r);
        }
        r->shard_mask |= 1ull << env->val;
        return;
    }
    case XS_LEAVE:
        r = room_find(&s->rooms, m->room_hash, msg_room_name(m), m->name_len);
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

void room_envelope_drop(const struct xshard_env *env)
{
    if (env->kind == XS_ASK || env->kind == XS_ANSWER || env->kind == XS_JOIN)
        free(env->ptr);
    else
        msg_unref(env->ptr);
}

int room_table_init(struct room_table *t)
{
    memset(t, 0, sizeof(*t));
    list_init(&t->pending);
    return table_grow(t);
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

/* ---- read-only walks (the server API, api.c) ---------------------------------------------- */

void room_each(struct shard *s, room_each_fn fn, void *arg)
{
    const struct room_table *t = &s->rooms;
    for (uint32_t i = 0; t->buckets && i <= t->mask; i++) {
        for (const struct room *r = t->buckets[i]; r; r = r->hnext) {
            struct room_view v = {
                .name = r->name,
                .name_len = r->name_len,
                .nr_local = r->nr_subs,
                .home_live = r->home == s->id && (r->shard_mask || r->nr_subs),
            };
            fn(arg, &v);
        }
    }
}
