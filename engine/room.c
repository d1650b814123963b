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
#include "ws_frame.h"
#include "xshard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* At the home: the room's stream, made at its first publication or question. */
struct room_stream {
    struct history h;
    struct list link; /* on the table's streams list while it holds publications */
    struct room *room;
};

/* What the home knows of a member shard (sync_home). */
enum {
    KNOWS_MEMBER = 1u << 0,
    KNOWS_PROTO = 1u << 1,
};

struct room {
    struct room *hnext;
    uint64_t hash;
    struct list subs; /* local subscriptions */
    uint32_t nr_subs;
    uint32_t nr_proto;          /* local subscriptions with SUB_PROTO */
    uint64_t shard_mask;        /* home shard only: shards with members */
    uint64_t proto_mask;        /* home shard only: shards with protocol members */
    struct room_stream *stream; /* home shard only: NULL until needed */
    struct list pending;        /* on the table's pending list: the home's view is out of date */
    uint16_t home;
    uint8_t home_knows; /* off home: KNOWS_* as the home has them for this shard */
    bool busy;          /* in a fan-out: members leaving meanwhile must not free it */
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
    if (r->stream && r->stream->h.nr)
        return; /* its publications live until --history-ttl (room_tick) */
    if (r->stream) {
        history_fini(&r->stream->h);
        if (list_linked(&r->stream->link))
            list_del(&r->stream->link);
        free(r->stream);
    }
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
    uint8_t want = (uint8_t)((r->nr_subs ? KNOWS_MEMBER : 0) | (r->nr_proto ? KNOWS_PROTO : 0));
    if (r->home == s->id) {
        uint64_t bit = 1ull << s->id;
        r->shard_mask = (want & KNOWS_MEMBER) ? r->shard_mask | bit : r->shard_mask & ~bit;
        r->proto_mask = (want & KNOWS_PROTO) ? r->proto_mask | bit : r->proto_mask & ~bit;
    } else if (want != r->home_knows) {
        /* A JOIN carries a room of our making, which the home keeps if it has none (so the
         * home needs no memory of its own to record it), and whether we have protocol members
         * (the home then encodes each publication's push once, for every shard); a LEAVE
         * carries the name. */
        bool member = want & KNOWS_MEMBER;
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
        uint32_t kind = member ? XS_JOIN : XS_LEAVE;
        uint64_t val = s->id | (uint64_t)(want & KNOWS_PROTO) << 32;
        struct xshard_env env = {.kind = kind, .ptr = note};
        if (note && shard_push(s, r->home, kind, note, val) < 0) {
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
        r->home_knows = want;
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
    bool first = r->nr_subs++ == 0;
    if (flags & SUB_PROTO)
        first |= r->nr_proto++ == 0;
    if (first)
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
    bool last = --r->nr_subs == 0;
    if (sub->flags & SUB_PROTO)
        last |= --r->nr_proto == 0;
    if (last) {
        sync_home(s, r);
        room_maybe_free(s, r);
    }
}

/* ---- the stream, at home ------------------------------------------------------------------ */

static int64_t stream_now(const struct shard *s)
{
    return (int64_t)s->now;
}

/* The stream of <r> at its home, made now if it has none. NULL when out of memory (or no
 * random epoch): the caller goes on without a position. */
static struct room_stream *stream_of(struct shard *s, struct room *r)
{
    if (r->stream)
        return r->stream;
    struct room_stream *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    const struct config *cfg = s->eng->cfg;
    if (history_init(&st->h, cfg->history_size, cfg->history_ttl, NULL) < 0) {
        free(st);
        return NULL;
    }
    st->room = r;
    r->stream = st;
    return st;
}

/*
 * At home, before the fan-out: the room's next offset for publication <m>, its pub push encoded
 * once (when some shard has protocol members) and its place in the history. Without memory for
 * a stream the message still goes out, without a position.
 */
static void stamp(struct shard *s, struct room *r, struct msg *m)
{
    struct room_stream *st = stream_of(s, r);
    if (!st)
        return;
    m->offset = history_next_offset(&st->h);
    uint32_t off = 0, len = 0;
    if (r->proto_mask && !FAULT(FAULT_PROTO_PUSH))
        m->pub = proto_pub_frame(m, &off, &len); /* NULL: each shard makes its own */
    /* Without the push, the history keeps the message itself and encodes it when asked. */
    history_append(&st->h, m->offset, m->pub ? m->pub : m, off, len, stream_now(s));
    if (st->h.nr && st->h.ttl) {
        if (list_linked(&st->link))
            list_del(&st->link);
        list_add_tail(&s->rooms.streams, &st->link);
    }
}

void room_tick(struct shard *s)
{
    int64_t now = stream_now(s);
    while (!list_empty(&s->rooms.streams)) {
        struct room_stream *st = container_of(s->rooms.streams.next, struct room_stream, link);
        history_expire(&st->h, now);
        if (st->h.nr)
            break; /* the list is by last publication: the later ones are younger */
        list_del(&st->link);
        room_maybe_free(s, st->room);
    }
}

/* ---- fan-out ------------------------------------------------------------------------------ */

/* Backpressure: the envelopes of messages like <m> on their way to another shard that make a
 * quarter of --send-queue; more pause the publisher. */
static uint32_t backlog_floor(const struct shard *s, const struct msg *m)
{
    return (uint32_t)(s->eng->cfg->send_queue / 4 / (m->len ? m->len : 1));
}

/* How long to pause for a backlog of <have> against the <limit> it passed: ROOM_PAUSE_MS for
 * each <limit> of it, up to ROOM_PAUSE_MAX_MS, so that a publisher far ahead waits long enough
 * for the readers to catch up before it sends its next burst. */
static uint32_t pause_ms(uint64_t have, uint64_t limit)
{
    uint64_t ms = limit ? ROOM_PAUSE_MS * have / limit : ROOM_PAUSE_MS;
    return ms < ROOM_PAUSE_MS       ? ROOM_PAUSE_MS
           : ms > ROOM_PAUSE_MAX_MS ? ROOM_PAUSE_MAX_MS
                                    : (uint32_t)ms;
}

/*
 * After a message was queued to <c>: the deepest queue met so far of the receivers that press
 * on publishers, <deepest> or <c>'s. A receiver whose sends stopped moving for ROOM_STALL_S
 * does not hold the room back: --slow-consumer close cuts it now (drop drops its oldest when
 * its queue is full); a reader that keeps up, however slowly, paces the publishers instead.
 * With drop, receivers press on nobody: a slow one loses messages instead.
 */
static uint32_t pressing(struct shard *s, struct conn *c, uint32_t pressure, uint32_t deepest)
{
    if (!conn_is_open(c) || c->queued <= pressure || s->eng->cfg->slow_consumer != SLOW_CLOSE)
        return deepest;
    if (conn_stalled(c, s->now, ROOM_STALL_S)) {
        conn_close_slow(s, c);
        return deepest;
    }
    return c->queued > deepest ? c->queued : deepest;
}

/* Pauses the publisher of <m> for <ms>, wherever it is. */
static void press_publisher(struct shard *s, const struct msg *m, uint32_t ms)
{
    unsigned shard = m->origin >> 24;
    uint32_t idx = m->origin & 0xffffff;
    if (shard == s->id) {
        struct conn *c = &s->conns[idx];
        if (c->gen == m->origin_gen)
            conn_pause(s, c, ms);
        return;
    }
    /* Out of memory the pause is skipped: the slow-consumer policy still bounds the queues. */
    shard_push(s, shard, XS_PAUSE, NULL,
               idx | (uint64_t)(ms / 4) << 24 | (uint64_t)m->origin_gen << 32);
}

/*
 * Queues <m> to every local member of <r> except its publisher (unless it asked for echo):
 * raw members get its frame, protocol members its pub push; a MSG_PROTO_ONLY message (a ready
 * join or leave push) goes only to the protocol members that asked for it. <r> may be freed by
 * the time it returns (its last members closed as slow consumers).
 */
static void deliver_local(struct shard *s, struct room *r, struct msg *m)
{
    unsigned origin_shard = m->origin >> 24;
    uint32_t origin_idx = m->origin & 0xffffff;
    bool proto_only = m->kind == MSG_PROTO_ONLY;
    unsigned n = 0, refs = r->nr_subs;
    uint32_t pressure = s->eng->cfg->send_queue / 4;
    uint32_t deepest = 0; /* the longest receiver queue met */
    /* The push protocol members get: the one the home encoded, or else one made here on the
     * first protocol member met and shared by the others; reference-counted like <m>, which
     * is shared with other shards and never written. */
    struct msg *pm = NULL;
    unsigned np = 0;
    bool pm_made = false, pm_failed = false;
    /*
     * One atomic add for the whole fan-out instead of one per member (the count is shared with
     * other shards); what is left unused is given back in one subtraction. The caller's own
     * reference keeps <m> alive meanwhile, whatever conn_enqueue drops. A member closed by the
     * slow-consumer policy inside conn_enqueue leaves the list then: only its own node goes, and
     * the next one was saved.
     */
    if (!proto_only)
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
            if ((sub->flags & SUB_PENDING) || (proto_only && !(sub->flags & SUB_JOIN_LEAVE)))
                continue;
            if (!pm && !pm_failed) {
                if (proto_only || m->pub) {
                    pm = proto_only ? m : m->pub;
                } else {
                    pm = FAULT(FAULT_PROTO_PUSH) ? NULL : proto_pub_frame(m, NULL, NULL);
                    pm_made = pm != NULL;
                }
                if (pm)
                    msg_ref_n(pm, refs);
                else
                    pm_failed = true; /* out of memory: the protocol members miss this one */
            }
            if (pm) {
                conn_enqueue(s, c, pm);
                deepest = pressing(s, c, pressure, deepest);
                np++;
            }
            continue;
        }
        if (proto_only)
            continue;
        conn_enqueue(s, c, m);
        deepest = pressing(s, c, pressure, deepest);
        n++;
    }
    if (deepest > pressure && m->origin != UINT32_MAX)
        press_publisher(s, m, pause_ms(deepest, pressure));
    if (!proto_only && refs > n)
        msg_unref_n(m, refs - n);
    if (pm) {
        if (refs > np)
            msg_unref_n(pm, refs - np);
        if (pm_made)
            msg_unref(pm);
    }
    PROBE2(deliver, s->id, n + np);
    r->busy = false;
    room_maybe_free(s, r);
}

/* At the home shard: stamp a publication, forward to each other member shard once, then
 * deliver locally. Takes <m>. */
static void fanout_home(struct shard *s, struct room *r, struct msg *m)
{
    if (m->kind == MSG_PUB)
        stamp(s, r, m);
    uint64_t mask = r->shard_mask & ~(1ull << s->id);
    uint32_t floor = backlog_floor(s, m), deepest = 0;
    while (mask) {
        unsigned to = (unsigned)__builtin_ctzll(mask);
        mask &= mask - 1;
        if (shard_push(s, to, XS_DELIVER, msg_ref(m), 0) < 0) {
            msg_unref(m);
        } else if (m->origin != UINT32_MAX) {
            uint32_t n = xshard_backlog(s->eng->xs, s->id, to, floor);
            deepest = n > deepest ? n : deepest;
        }
    }
    if (deepest > floor)
        press_publisher(s, m, pause_ms(deepest, floor));
    if (r->nr_subs)
        deliver_local(s, r, m);
    else
        room_maybe_free(s, r); /* made for this publication, and nothing kept */
    msg_unref(m);
}

/* Sends <m> (taken) on its way to its room's home, or fans it out here when this is home. */
static void route_publish(struct shard *s, struct msg *m, unsigned home)
{
    if (home == s->id) {
        struct room *r = room_find(&s->rooms, m->room_hash, msg_room_name(m), m->name_len);
        /* A publication to a room without members is still kept in its history. */
        if (!r && m->kind == MSG_PUB && s->eng->cfg->history_size)
            r = room_get(s, m->room_hash, msg_room_name(m), m->name_len);
        if (r)
            fanout_home(s, r, m);
        else
            msg_unref(m); /* no member anywhere, nothing to keep */
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
    if (r->home == s->id) {
        fanout_home(s, r, m);
        return 0;
    }
    uint32_t floor = backlog_floor(s, m);
    if (shard_push(s, r->home, XS_PUBLISH, m, 0) < 0) {
        msg_unref(m);
        return 0;
    }
    /* Backpressure before the home can see it: too many such messages waiting for the home
     * to take them pause the publisher too. */
    uint32_t n = xshard_backlog(s->eng->xs, s->id, r->home, floor);
    if (n > floor)
        conn_pause(s, from->conn, pause_ms(n, floor));
    return 0;
}

int room_publish_info(struct shard *s, const char *name, size_t name_len, uint8_t opcode,
                      const uint8_t *p, size_t len, const char *info, size_t info_len)
{
    if (info_len > UINT16_MAX)
        return -EINVAL;
    struct msg *m = msg_frame_info(opcode, p, len, name, name_len, info, info_len);
    if (!m)
        return -ENOMEM;
    m->room_hash = room_hash(s->eng, name, name_len);
    m->origin = UINT32_MAX; /* nobody to skip */
    m->t_recv_ns = s->now_ns;
    route_publish(s, m, room_home(s->eng, m->room_hash));
    return 0;
}

int room_publish_by_name(struct shard *s, const char *name, size_t name_len, uint8_t opcode,
                         const uint8_t *p, size_t len)
{
    return room_publish_info(s, name, name_len, opcode, p, len, NULL, 0);
}

int room_push_join_leave(struct shard *s, const char *name, size_t name_len, const char *push,
                         size_t len)
{
    struct msg *m = msg_frame(WS_OP_TEXT, (const uint8_t *)push, len, name, name_len);
    if (!m)
        return -ENOMEM;
    m->kind = MSG_PROTO_ONLY;
    m->room_hash = room_hash(s->eng, name, name_len);
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

void room_ask_free(struct room_ask *a)
{
    if (a->msg)
        msg_unref(a->msg);
    proto_buf_fini(&a->result);
    proto_buf_fini(&a->_users);
    free(a);
}

struct room_ask *room_ask_publish(struct shard *s, struct conn *c, const char *name, size_t len,
                                  uint8_t opcode, const uint8_t *p, size_t plen, const char *info,
                                  size_t info_len, room_answer_cb cb)
{
    if (info_len > UINT16_MAX)
        return NULL;
    struct room_ask *a = room_ask_create(s, c, ROOM_Q_PUBLISH, name, len, cb);
    if (!a)
        return NULL;
    a->msg = msg_frame_info(opcode, p, plen, name, len, info, info_len);
    if (!a->msg) {
        room_ask_free(a);
        return NULL;
    }
    a->msg->room_hash = a->hash;
    a->msg->t_recv_ns = s->now_ns;
    return a;
}

/* At home: publishes the ask's message and answers with its position. */
static void answer_publish(struct shard *s, struct room *r, struct room_ask *a)
{
    struct msg *m = a->msg;
    a->msg = NULL;
    if (!r) {
        msg_unref(m); /* no member anywhere, nothing to keep */
        proto_buf_put(&a->result, "{}", 2);
        return;
    }
    /* The position is read before the fan-out, which may free a room that keeps nothing. */
    struct room_stream *st = s->eng->cfg->history_size ? stream_of(s, r) : NULL;
    if (st) {
        char head[48];
        int n = snprintf(head, sizeof(head), "{\"offset\":%llu,\"epoch\":",
                         (unsigned long long)history_next_offset(&st->h));
        proto_buf_put(&a->result, head, (size_t)n);
        proto_buf_jstr(&a->result, st->h.epoch, st->h.epoch_len);
        proto_buf_put(&a->result, "}", 1);
    } else {
        proto_buf_put(&a->result, "{}", 2);
    }
    fanout_home(s, r, m);
}

/* One kept publication as a Publication object. */
static void put_item(struct proto_buf *b, const struct history_item *it)
{
    if (it->pub_len)
        proto_buf_put(b, it->m->data + it->pub_off, it->pub_len);
    else
        proto_encode_msg_pub(b, it->m, it->offset);
}

/* The items of <v>, comma-separated. */
static void put_view(struct proto_buf *b, const struct history_view *v)
{
    for (uint32_t i = 0; i < v->nr; i++) {
        if (i)
            proto_buf_put(b, ",", 1);
        put_item(b, history_view_at(v, i));
    }
}

static void answer_history(struct shard *s, struct room *r, struct room_ask *a)
{
    struct room_stream *st = r ? stream_of(s, r) : NULL;
    if (!st) {
        a->error = 100;
        return;
    }
    struct history_query q = {
        .limit = a->hist.limit,
        .reverse = a->hist.reverse,
        .has_since = a->hist.has_since,
        .since_offset = a->hist.since_offset,
        .since_epoch = a->hist.since_epoch,
        .since_epoch_len = strlen(a->hist.since_epoch),
    };
    struct history_view v;
    int rc = history_query(&st->h, &q, stream_now(s), 0, &v);
    if (rc == -EINVAL) {
        a->error = 107;
        return;
    }
    if (rc == -ESTALE) {
        a->error = 112;
        return;
    }
    struct proto_buf *b = &a->result;
    proto_buf_put(b, "{\"publications\":[", 17);
    put_view(b, &v);
    proto_buf_put(b, "],\"epoch\":", 10);
    proto_buf_jstr(b, st->h.epoch, st->h.epoch_len);
    char num[32];
    int n = snprintf(num, sizeof(num), ",\"offset\":%llu}", (unsigned long long)st->h.top);
    proto_buf_put(b, num, (size_t)n);
}

static void answer_subscribe(struct shard *s, struct room *r, struct room_ask *a)
{
    struct room_stream *st = r ? stream_of(s, r) : NULL;
    if (!st) {
        a->error = 100;
        return;
    }
    memcpy(a->epoch, st->h.epoch, st->h.epoch_len);
    a->epoch[st->h.epoch_len] = '\0';
    if (a->hist.has_since) {
        struct history_view v;
        a->recovery = history_recover(&st->h, a->hist.since_offset, a->hist.since_epoch,
                                      strlen(a->hist.since_epoch), stream_now(s), 0, &v);
        if (a->recovery == HISTORY_RECOVERED)
            put_view(&a->result, &v);
    }
    /* After the history call: the TTL may have moved nothing, but the top is read last. */
    a->top = st->h.top;
}

/* This shard's protocol members of <r> in a presence question. */
static void presence_part(struct room *r, struct room_ask *a)
{
    for (struct list *pos = r->subs.next; pos != &r->subs; pos = pos->next) {
        struct sub *sub = container_of(pos, struct sub, link);
        if (!(sub->flags & SUB_PROTO) || !conn_is_open(sub->conn))
            continue;
        struct proto_client_info ci;
        a->client_info(sub, &ci);
        a->_nr_clients++;
        if (a->question == ROOM_Q_PRESENCE) {
            if (a->result.len)
                proto_buf_put(&a->result, ",", 1);
            proto_buf_jstr(&a->result, ci.client.p, ci.client.len);
            proto_buf_put(&a->result, ":", 1);
            proto_encode_client_info(&a->result, &ci);
        } else {
            proto_buf_put(&a->_users, ci.user.p, ci.user.len);
            proto_buf_put(&a->_users, "", 1); /* its NUL: the names are NUL-separated */
        }
    }
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* After the last member shard: the presence answers' final form. */
static void presence_finish(struct room_ask *a)
{
    if (a->question == ROOM_Q_PRESENCE) {
        struct proto_buf b = {0};
        proto_buf_put(&b, "{\"presence\":{", 13);
        proto_buf_put(&b, a->result.p, a->result.len);
        proto_buf_put(&b, "}}", 2);
        proto_buf_fini(&a->result);
        a->result = b;
        return;
    }
    /* Distinct users: sort the NUL-terminated names and count the changes. */
    uint32_t users = 0;
    const char **v = a->_nr_clients ? calloc(a->_nr_clients, sizeof(*v)) : NULL;
    if (a->_nr_clients && (!v || a->_users.oom)) {
        free(v);
        a->error = 100;
        return;
    }
    size_t n = 0;
    for (size_t o = 0; o < a->_users.len && n < a->_nr_clients; n++) {
        v[n] = a->_users.p + o;
        o += strlen(v[n]) + 1;
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_str);
    for (size_t i = 0; i < n; i++)
        users += i == 0 || strcmp(v[i], v[i - 1]) != 0;
    free(v);
    char num[64];
    int len =
        snprintf(num, sizeof(num), "{\"num_clients\":%u,\"num_users\":%u}", a->_nr_clients, users);
    proto_buf_put(&a->result, num, (size_t)len);
}

/*
 * Answers <a> as far as this shard can. At home: every question; the presence questions then
 * need the protocol members of the other member shards too, listed in a->_todo, which the ask
 * visits in turn (presence_part on each).
 */
static void answer(struct shard *s, struct room_ask *a)
{
    struct room *r = room_find(&s->rooms, a->hash, a->name, a->name_len);
    if (a->_at_home_done) {
        if (r)
            presence_part(r, a);
        return;
    }
    a->_at_home_done = true;
    switch (a->question) {
    case ROOM_Q_INFO:
        if (!r || (!r->shard_mask && !r->nr_subs)) {
            a->status = -ENOENT;
            return;
        }
        a->status = 0;
        a->nr_shards = (uint32_t)__builtin_popcountll(r->shard_mask);
        a->nr_home_members = r->nr_subs;
        return;
    case ROOM_Q_PRESENCE:
    case ROOM_Q_PRESENCE_STATS:
        if (!a->client_info) {
            a->error = 100;
            return;
        }
        if (r) {
            presence_part(r, a);
            a->_todo = r->proto_mask & ~(1ull << s->id);
        }
        return;
    case ROOM_Q_PUBLISH:
        /* As route_publish: a room without members still keeps the publication's history. */
        if (!r && s->eng->cfg->history_size)
            r = room_get(s, a->hash, a->name, a->name_len);
        answer_publish(s, r, a);
        return;
    case ROOM_Q_HISTORY:
    case ROOM_Q_SUBSCRIBE:
        if (!s->eng->cfg->history_size && a->question == ROOM_Q_HISTORY) {
            a->error = 108;
            return;
        }
        /* A stream needs its room: a history question about a room nobody is in makes one
         * (freed again below unless it holds publications). */
        if (!r)
            r = room_get(s, a->hash, a->name, a->name_len);
        if (a->question == ROOM_Q_HISTORY)
            answer_history(s, r, a);
        else
            answer_subscribe(s, r, a);
        if (r)
            room_maybe_free(s, r);
        return;
    default:
        a->error = 104;
        return;
    }
}

/* Back on the asker's shard: hand the answer over if the asker is still there. Frees <a>. */
static void take_answer(struct shard *s, struct room_ask *a)
{
    if (a->reply.slot < s->nr_slots) {
        struct conn *c = &s->conns[a->reply.slot];
        if (c->gen == a->reply.gen && conn_is_open(c))
            a->on_answer(s, c, a);
    }
    room_ask_free(a);
}

/* Sends <a>, answered as far as this shard could, on: to the next shard to visit, or back to
 * the asker, finished. */
static void pass_on(struct shard *s, struct room_ask *a)
{
    unsigned to = a->reply.shard;
    uint32_t kind = XS_ANSWER;
    if (a->_todo && !a->error) {
        to = (unsigned)__builtin_ctzll(a->_todo);
        a->_todo &= a->_todo - 1;
        kind = XS_ASK;
    } else {
        if (a->result.oom || a->_users.oom)
            a->error = 100;
        if (!a->error && (a->question == ROOM_Q_PRESENCE || a->question == ROOM_Q_PRESENCE_STATS))
            presence_finish(a);
        if (to == s->id) {
            take_answer(s, a);
            return;
        }
    }
    /* Dropped when the queue is out of memory: the asker then never hears, which it must
     * survive anyway (it may close first). */
    if (shard_push(s, to, kind, a, 0) < 0)
        room_ask_free(a);
}

int room_ask(struct shard *s, struct room_ask *a)
{
    unsigned home = room_home(s->eng, a->hash);
    if (home == s->id) {
        answer(s, a);
        pass_on(s, a);
        return 0;
    }
    if (shard_push(s, home, XS_ASK, a, 0) < 0) {
        room_ask_free(a);
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
        pass_on(s, a);
        return;
    }
    if (env->kind == XS_ANSWER) {
        take_answer(s, env->ptr);
        return;
    }
    if (env->kind == XS_PAUSE) {
        uint32_t idx = (uint32_t)env->val & 0xffffff, gen = (uint32_t)(env->val >> 32);
        uint32_t ms = ((uint32_t)env->val >> 24) * 4;
        if (idx < s->nr_slots && s->conns[idx].gen == gen)
            conn_pause(s, &s->conns[idx], ms);
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
        uint64_t bit = 1ull << (uint32_t)env->val;
        r->shard_mask |= bit;
        if (env->val >> 32 & KNOWS_PROTO)
            r->proto_mask |= bit;
        else
            r->proto_mask &= ~bit;
        return;
    }
    case XS_LEAVE:
        r = room_find(&s->rooms, m->room_hash, msg_room_name(m), m->name_len);
        if (r) {
            r->shard_mask &= ~(1ull << (uint32_t)env->val);
            r->proto_mask &= ~(1ull << (uint32_t)env->val);
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
    if (env->kind == XS_PAUSE)
        return; /* holds nothing */
    if (env->kind == XS_ASK || env->kind == XS_ANSWER)
        room_ask_free(env->ptr);
    else if (env->kind == XS_JOIN)
        free(env->ptr);
    else
        msg_unref(env->ptr);
}

int room_table_init(struct room_table *t)
{
    memset(t, 0, sizeof(*t));
    list_init(&t->pending);
    list_init(&t->streams);
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
            if (r->stream) {
                history_fini(&r->stream->h);
                free(r->stream);
            }
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
