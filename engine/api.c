/* SPDX-License-Identifier: MIT */
/*
 * api: the server HTTP API (contract in api.h). Result shapes are those of Centrifugo v6's
 * server API (its api.proto: PublishResult, BroadcastResult, ChannelsResult, InfoResult).
 */
#include "api.h"

#include "api_req.h"
#include "conn.h"
#include "engine.h"
#include "history.h"
#include "log.h"
#include "proto.h"
#include "proto_conn.h"
#include "room.h"
#include "shard.h"
#include "ws_frame.h"
#include "xshard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define JSON_TYPE "application/json"

/* ---- answers ------------------------------------------------------------------------------ */

/* Appends `{"error":{"code":N,"message":"..."}}` (Centrifugo's error object, §8 messages). */
static void put_error(struct proto_buf *b, uint32_t code)
{
    char head[48];
    int n = snprintf(head, sizeof(head), "{\"error\":{\"code\":%" PRIu32 ",\"message\":", code);
    proto_buf_put(b, head, (size_t)n);
    const char *msg = proto_error_message(code);
    proto_buf_jstr(b, msg, strlen(msg));
    proto_buf_put(b, "}}", 2);
}

/* Sends <b> (a whole JSON answer) with HTTP 200, now or as the deferred answer <ticket>; out of
 * memory while building it is HTTP 500. Frees <b>. */
static void send_json(struct shard *s, struct conn *c, const struct http_request *req,
                      uint32_t ticket, struct proto_buf *b)
{
    int status = b->oom ? 500 : 200;
    const char *body = b->oom ? "out of memory\n" : b->p;
    size_t len = b->oom ? 14 : b->len;
    const char *type = b->oom ? NULL : JSON_TYPE;
    if (req)
        http_respond(s, c, req, status, NULL, type, body, len);
    else
        http_respond_deferred(s, c, ticket, status, NULL, type, body, len);
    proto_buf_fini(b);
}

static void answer_error(struct shard *s, struct conn *c, const struct http_request *req,
                         uint32_t ticket, uint32_t code)
{
    struct proto_buf b = {0};
    put_error(&b, code);
    send_json(s, c, req, ticket, &b);
}

/* `{"result":<json>}` */
static void answer_result(struct shard *s, struct conn *c, const struct http_request *req,
                          uint32_t ticket, const char *json, size_t len)
{
    struct proto_buf b = {0};
    proto_buf_put(&b, "{\"result\":", 10);
    proto_buf_put(&b, json, len);
    proto_buf_put(&b, "}", 1);
    send_json(s, c, req, ticket, &b);
}

/*
 * The result of one publish of a broadcast: `{}`. A single publish asks the room's home, which
 * gives the offset, and answers with `offset` and `epoch` as Centrifugo does (api_publish); a
 * broadcast answers once every publication is on its way, as Centrifugo's broadcast without
 * history positions does.
 */
static void put_publish_result(struct proto_buf *b)
{
    proto_buf_put(b, "{}", 2);
}

static void on_room_answer(struct shard *s, struct conn *c, const struct room_ask *a);

/* ---- publish, broadcast ------------------------------------------------------------------- */

static int publish(struct shard *s, struct proto_str ch, struct proto_str data)
{
    return room_publish_by_name(s, ch.p, ch.len, WS_OP_TEXT, (const uint8_t *)data.p, data.len);
}

/* publish: the room's home publishes it and answers with its `offset` and `epoch` (`{}` when
 * rooms keep no history), so a backend can tell clients where the stream stands. */
static void api_publish(struct shard *s, struct conn *c, const struct http_request *req,
                        const struct api_req *r)
{
    struct room_ask *a =
        room_ask_publish(s, c, r->channel.p, r->channel.len, WS_OP_TEXT, (const uint8_t *)r->data.p,
                         r->data.len, NULL, 0, on_room_answer);
    if (!a) {
        answer_error(s, c, req, 0, 100);
        return;
    }
    uint32_t ticket = http_defer(s, c, req);
    a->cookie = ticket;
    /* The answer may come before room_ask returns (this shard is the home). */
    if (room_ask(s, a) < 0)
        answer_error(s, c, NULL, ticket, 100);
}

/* Each channel on its own, as Centrifugo's broadcast: one response per channel, in order. */
static void api_broadcast(struct shard *s, struct conn *c, const struct http_request *req,
                          const struct api_req *r)
{
    struct proto_buf b = {0};
    proto_buf_put(&b, "{\"result\":{\"responses\":[", 24);
    for (uint32_t i = 0; i < r->nr_channels; i++) {
        if (i)
            proto_buf_put(&b, ",", 1);
        uint32_t code = r->channel_errors[i];
        if (!code && publish(s, r->channels[i], r->data) < 0)
            code = 100;
        if (code) {
            put_error(&b, code);
            continue;
        }
        proto_buf_put(&b, "{\"result\":", 10);
        put_publish_result(&b);
        proto_buf_put(&b, "}", 1);
    }
    proto_buf_put(&b, "]}}", 3);
    send_json(s, c, req, 0, &b);
}

/* ---- send, unsubscribe, disconnect: every shard acts on its connections of the user -------- */

/* What travels to each shard: the method and its strings, <bytes> = user, channel, reason (with
 * a NUL, for conn_close), data. */
struct api_user_op {
    uint32_t method; /* API_SEND, API_UNSUBSCRIBE, API_DISCONNECT */
    uint16_t code;
    uint32_t user_len, channel_len, reason_len, data_len;
    char bytes[];
};

static const char *op_user(const struct api_user_op *op)
{
    return op->bytes;
}

static const char *op_channel(const struct api_user_op *op)
{
    return op->bytes + op->user_len;
}

static const char *op_reason(const struct api_user_op *op)
{
    return op_channel(op) + op->channel_len;
}

static const char *op_data(const struct api_user_op *op)
{
    return op_reason(op) + op->reason_len + 1;
}

static struct api_user_op *op_create(const struct api_req *r)
{
    size_t n = r->user.len + r->channel.len + r->reason.len + 1 + r->data.len;
    struct api_user_op *op = malloc(sizeof(*op) + n);
    if (!op)
        return NULL;
    *op = (struct api_user_op){
        .method = r->method,
        .code = r->code,
        .user_len = (uint32_t)r->user.len,
        .channel_len = (uint32_t)r->channel.len,
        .reason_len = (uint32_t)r->reason.len,
        .data_len = (uint32_t)r->data.len,
    };
    char *p = op->bytes;
    memcpy(p, r->user.p, r->user.len);
    p += r->user.len;
    if (r->channel.len)
        memcpy(p, r->channel.p, r->channel.len);
    p += r->channel.len;
    if (r->reason.len)
        memcpy(p, r->reason.p, r->reason.len);
    p += r->reason.len;
    *p++ = '\0';
    if (r->data.len)
        memcpy(p, r->data.p, r->data.len);
    return op;
}

static void send_one(struct shard *s, struct conn *c, void *arg)
{
    conn_enqueue(s, c, msg_ref(arg));
}

static void unsubscribe_one(struct shard *s, struct conn *c, void *arg)
{
    const struct api_user_op *op = arg;
    proto_server_unsubscribe(s, c, op_channel(op), op->channel_len);
}

static void disconnect_one(struct shard *s, struct conn *c, void *arg)
{
    const struct api_user_op *op = arg;
    conn_close(s, c, op->code, op_reason(op));
}

/* Carries out <op> on this shard's connections of its user. */
static void user_op_run(struct shard *s, const struct api_user_op *op)
{
    if (!users_count(&s->users, op_user(op), op->user_len))
        return;
    switch (op->method) {
    case API_SEND: {
        /* One frame for every connection of the user here, shared by reference. */
        struct proto_buf b = {0};
        struct msg *m = NULL;
        if (proto_encode_message_push(&b, (struct proto_str){op_data(op), op->data_len}) == 0)
            m = msg_frame(WS_OP_TEXT, (const uint8_t *)b.p, b.len, NULL, 0);
        proto_buf_fini(&b);
        if (!m) {
            log_warn("shard %u: api send: out of memory, message dropped", s->id);
            return;
        }
        proto_for_user(s, op_user(op), op->user_len, send_one, m);
        msg_unref(m);
        return;
    }
    case API_UNSUBSCRIBE:
        proto_for_user(s, op_user(op), op->user_len, unsubscribe_one, (void *)op);
        return;
    case API_DISCONNECT:
        proto_for_user(s, op_user(op), op->user_len, disconnect_one, (void *)op);
        return;
    default:
        return;
    }
}

static void api_user_action(struct shard *s, struct conn *c, const struct http_request *req,
                            const struct api_req *r)
{
    struct api_user_op *op = op_create(r);
    if (!op) {
        answer_error(s, c, req, 0, 100);
        return;
    }
    /* The other shards first, each with its own copy, which it frees. */
    uint32_t code = 0;
    for (unsigned t = 0; t < s->eng->nr_shards; t++) {
        if (t == s->id)
            continue;
        struct api_user_op *copy = op_create(r);
        if (!copy || shard_push(s, t, XS_API_USER, copy, 0) < 0) {
            free(copy);
            code = 100; /* this shard's connections missed it; the others did not */
        }
    }
    user_op_run(s, op);
    free(op);
    if (code)
        answer_error(s, c, req, 0, code);
    else
        answer_result(s, c, req, 0, "{}", 2);
}

/* ---- channels, info: a gather through every shard ------------------------------------------ */

/*
 * A question every shard answers a part of. It starts on the asker's shard, which adds its part
 * and sends it on to the next shard (id + 1, wrapping), and so on; the last one sends it back
 * to the asker, which answers the deferred HTTP request if the connection still waits for it,
 * and frees it. Only the shard that holds it touches it.
 */
struct api_gather {
    uint32_t method; /* API_CHANNELS or API_INFO */
    struct reply_to reply;
    uint32_t ticket; /* the deferred answer's (http.h) */
    uint32_t nr_visited;
    /* channels: the rooms with subscriptions on a shard, as records {u32 count, u16 len, name},
     * one per shard that has members (summed by the asker) */
    struct proto_buf ents;
    /* info */
    uint64_t num_subs, num_channels;
    uint64_t *users; /* open addressing set of user hashes; 0 marks a free slot */
    uint32_t users_mask, nr_users;
    bool oom;
    uint32_t pattern_len;
    char pattern[];
};

static void gather_free(struct api_gather *g)
{
    proto_buf_fini(&g->ents);
    free(g->users);
    free(g);
}

static void add_channel(void *arg, const struct room_view *v)
{
    struct api_gather *g = arg;
    if (!v->nr_local || v->name_len > UINT16_MAX ||
        (g->pattern_len && !api_glob_match(g->pattern, g->pattern_len, v->name, v->name_len)))
        return;
    uint32_t count = v->nr_local;
    uint16_t len = (uint16_t)v->name_len;
    proto_buf_put(&g->ents, &count, sizeof(count));
    proto_buf_put(&g->ents, &len, sizeof(len));
    proto_buf_put(&g->ents, v->name, len);
}

static void add_room_counts(void *arg, const struct room_view *v)
{
    struct api_gather *g = arg;
    g->num_subs += v->nr_local;
    g->num_channels += v->home_live;
}

/* Inserts <h> into the user set (a user on several shards counts once). */
static void set_add(struct api_gather *g, uint64_t h)
{
    h |= h == 0; /* 0 marks a free slot */
    if (g->nr_users * 2 >= g->users_mask) {
        uint32_t nmask = g->users ? g->users_mask * 2 + 1 : 255;
        uint64_t *n = calloc((size_t)nmask + 1, sizeof(*n));
        if (!n) {
            g->oom = true;
            return;
        }
        for (uint32_t i = 0; g->users && i <= g->users_mask; i++) {
            uint64_t x = g->users[i];
            if (!x)
                continue;
            uint32_t j = (uint32_t)x & nmask;
            while (n[j])
                j = (j + 1) & nmask;
            n[j] = x;
        }
        free(g->users);
        g->users = n;
        g->users_mask = nmask;
    }
    uint32_t j = (uint32_t)h & g->users_mask;
    while (g->users[j]) {
        if (g->users[j] == h)
            return;
        j = (j + 1) & g->users_mask;
    }
    g->users[j] = h;
    g->nr_users++;
}

struct user_visit {
    struct shard *s;
    struct api_gather *g;
};

static void add_user(void *arg, const char *user, size_t len, uint32_t nr)
{
    struct user_visit *uv = arg;
    (void)nr;
    /* The engine's seeded hash: the same function on every shard. */
    if (!uv->g->oom)
        set_add(uv->g, room_hash(uv->s->eng, user, len));
}

static void gather_visit(struct shard *s, struct api_gather *g)
{
    if (g->method == API_CHANNELS) {
        room_each(s, add_channel, g);
        return;
    }
    room_each(s, add_room_counts, g);
    struct user_visit uv = {.s = s, .g = g};
    users_each_user(&s->users, add_user, &uv);
}

struct chan_ent {
    const char *name;
    uint16_t len;
    uint64_t count;
};

static int chan_cmp(const void *a, const void *b)
{
    const struct chan_ent *x = a, *y = b;
    int d = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
    return d ? d : (int)x->len - (int)y->len;
}

/* `{"channels":{"<name>":{"num_clients":N},...}}`: the records of every shard, summed by name. */
static void put_channels(struct proto_buf *b, struct api_gather *g)
{
    size_t n = 0;
    for (size_t off = 0; off + 6 <= g->ents.len; n++) {
        uint16_t len;
        memcpy(&len, g->ents.p + off + 4, 2);
        off += 6 + len;
    }
    struct chan_ent *v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n && !v) {
        b->oom = true;
        return;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t count;
        memcpy(&count, g->ents.p + off, 4);
        memcpy(&v[i].len, g->ents.p + off + 4, 2);
        v[i].name = g->ents.p + off + 6;
        v[i].count = count;
        off += 6 + v[i].len;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), chan_cmp);
    proto_buf_put(b, "{\"channels\":{", 13);
    bool first = true;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        uint64_t total = v[i].count;
        for (; j < n && chan_cmp(&v[i], &v[j]) == 0; j++)
            total += v[j].count;
        if (!first)
            proto_buf_put(b, ",", 1);
        first = false;
        proto_buf_jstr(b, v[i].name, v[i].len);
        char num[48];
        int w = snprintf(num, sizeof(num), ":{\"num_clients\":%" PRIu64 "}", total);
        proto_buf_put(b, num, (size_t)w);
        i = j;
    }
    proto_buf_put(b, "}}", 2);
    free(v);
}

/* `{"nodes":[{...}]}`: this one node, Centrifugo's NodeResult. */
static void put_info(struct shard *s, struct proto_buf *b, const struct api_gather *g)
{
    const struct engine *e = s->eng;
    char host[256];
    if (gethostname(host, sizeof(host)) != 0)
        strcpy(host, "ringcast");
    host[sizeof(host) - 1] = '\0';
    char name[300];
    /* Centrifugo names a node <hostname>_<port> unless told otherwise. */
    int n = snprintf(name, sizeof(name), "%s_%u", host, (unsigned)engine_port(e));
    proto_buf_put(b, "{\"nodes\":[{\"uid\":", 17);
    proto_buf_jstr(b, e->node_uid, strlen(e->node_uid));
    proto_buf_put(b, ",\"name\":", 8);
    proto_buf_jstr(b, name, (size_t)n < sizeof(name) ? (size_t)n : sizeof(name) - 1);
    proto_buf_put(b, ",\"version\":", 11);
    proto_buf_jstr(b, RINGCAST_VERSION, strlen(RINGCAST_VERSION));
    char tail[256];
    uint64_t uptime = (s->now_ns - e->started_ns) / 1000000000ull;
    /* num_clients: WebSocket connections, raw and protocol (the one namespace of the contract);
     * uptime is omitted when 0, as Centrifugo's encoder does. */
    n = snprintf(tail, sizeof(tail),
                 ",\"num_clients\":%" PRIu64 ",\"num_users\":%" PRIu32 ",\"num_channels\":%" PRIu64,
                 (uint64_t)atomic_load_explicit(&e->nr_conns, memory_order_relaxed), g->nr_users,
                 g->num_channels);
    proto_buf_put(b, tail, (size_t)n);
    if (uptime) {
        n = snprintf(tail, sizeof(tail), ",\"uptime\":%" PRIu64, uptime);
        proto_buf_put(b, tail, (size_t)n);
    }
    n = snprintf(tail, sizeof(tail), ",\"num_subs\":%" PRIu64 "}]}", g->num_subs);
    proto_buf_put(b, tail, (size_t)n);
}

/* Back on the asker's shard: answer if the connection still waits. Frees <g>. */
static void gather_done(struct shard *s, struct api_gather *g)
{
    struct conn *c = g->reply.slot < s->nr_slots ? &s->conns[g->reply.slot] : NULL;
    if (c && c->gen == g->reply.gen && http_is_deferred(c, g->ticket)) {
        if (g->oom || g->ents.oom) {
            answer_error(s, c, NULL, g->ticket, 100);
        } else {
            struct proto_buf b = {0};
            proto_buf_put(&b, "{\"result\":", 10);
            if (g->method == API_CHANNELS)
                put_channels(&b, g);
            else
                put_info(s, &b, g);
            proto_buf_put(&b, "}", 1);
            send_json(s, c, NULL, g->ticket, &b);
        }
    }
    gather_free(g);
}

/* This shard's part is in: on to the next shard, or home. */
static void gather_next(struct shard *s, struct api_gather *g)
{
    unsigned n = s->eng->nr_shards;
    bool last = ++g->nr_visited == n;
    if (last && g->reply.shard == s->id) {
        gather_done(s, g);
        return;
    }
    unsigned to = last ? g->reply.shard : (s->id + 1) % n;
    if (shard_push(s, to, last ? XS_API_GATHERED : XS_API_GATHER, g, 0) < 0) {
        /* The asker's deferred answer times out (504): it must survive that anyway. */
        log_warn("shard %u: api %s: lost for want of memory", s->id,
                 g->method == API_CHANNELS ? "channels" : "info");
        gather_free(g);
    }
}

static void api_gather_start(struct shard *s, struct conn *c, const struct http_request *req,
                             const struct api_req *r)
{
    struct api_gather *g = calloc(1, sizeof(*g) + r->pattern.len);
    if (!g) {
        answer_error(s, c, req, 0, 100);
        return;
    }
    g->method = r->method;
    g->reply = (struct reply_to){.shard = s->id, .slot = c->idx, .gen = c->gen};
    g->pattern_len = (uint32_t)r->pattern.len;
    if (r->pattern.len)
        memcpy(g->pattern, r->pattern.p, r->pattern.len);
    g->ticket = http_defer(s, c, req);
    gather_visit(s, g);
    gather_next(s, g);
}

/* ---- presence, presence_stats, history: asked of the channel's home -------------------------- */

/* Back on this shard with the home's answer (room.h: only while <c> is open). */
static void on_room_answer(struct shard *s, struct conn *c, const struct room_ask *a)
{
    uint32_t ticket = (uint32_t)a->cookie;
    if (!http_is_deferred(c, ticket))
        return;
    if (a->error || a->result.oom)
        answer_error(s, c, NULL, ticket, a->error ? a->error : 100);
    else
        answer_result(s, c, NULL, ticket, a->result.p, a->result.len);
}

static void api_room_question(struct shard *s, struct conn *c, const struct http_request *req,
                              const struct api_req *r)
{
    uint32_t q = r->method == API_PRESENCE         ? ROOM_Q_PRESENCE
                 : r->method == API_PRESENCE_STATS ? ROOM_Q_PRESENCE_STATS
                                                   : ROOM_Q_HISTORY;
    /* No stream ever has an epoch this long: the position cannot be in it. */
    if (r->since_epoch.len > HISTORY_EPOCH_MAX) {
        answer_error(s, c, req, 0, 112);
        return;
    }
    struct room_ask *a = room_ask_create(s, c, q, r->channel.p, r->channel.len, on_room_answer);
    if (!a) {
        answer_error(s, c, req, 0, 100);
        return;
    }
    a->client_info = proto_sub_client_info;
    a->hist.limit = r->limit;
    a->hist.reverse = r->reverse;
    a->hist.has_since = r->has_since;
    a->hist.since_offset = r->since_offset;
    if (r->since_epoch.len)
        memcpy(a->hist.since_epoch, r->since_epoch.p, r->since_epoch.len);
    a->hist.since_epoch[r->since_epoch.len] = '\0';
    uint32_t ticket = http_defer(s, c, req);
    a->cookie = ticket;
    /* When this shard is the home the answer may come before room_ask returns (http.h allows
     * a deferred answer inside the route). Out of memory, no answer will come: say so now. */
    if (room_ask(s, a) < 0)
        answer_error(s, c, NULL, ticket, 100);
}

/* ---- the route ---------------------------------------------------------------------------- */

/* Compares the secret <want> with <got> in time that depends on <want>'s length only. */
static bool key_equal(const char *want, const char *got, size_t got_len)
{
    size_t n = strlen(want);
    unsigned char d = got_len != n;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)((unsigned char)want[i] ^ (i < got_len ? (unsigned char)got[i] : 0));
    return d == 0;
}

static bool authorized(const struct config *cfg, const struct http_request *req)
{
    if (req->api_key.len)
        return key_equal(cfg->api_key, req->api_key.p, req->api_key.len);
    /* Centrifugo also takes `Authorization: apikey <key>`. */
    static const char scheme[] = "apikey ";
    struct http_str a = req->authorization;
    if (a.len > sizeof(scheme) - 1 && strncasecmp(a.p, scheme, sizeof(scheme) - 1) == 0)
        return key_equal(cfg->api_key, a.p + sizeof(scheme) - 1, a.len - (sizeof(scheme) - 1));
    return false;
}

void api_route(struct shard *s, struct conn *c, const struct http_request *req, const uint8_t *body,
               size_t body_len)
{
    static const char prefix[] = "/api/";
    const struct config *cfg = s->eng->cfg;
    if (!cfg->api_key) {
        http_respond(s, c, req, 404, NULL, NULL, "not found\n", 10);
        return;
    }
    if (!authorized(cfg, req)) {
        http_respond(s, c, req, 401, NULL, NULL, "unauthorized\n", 13);
        return;
    }
    enum api_method m =
        api_method_find(req->path.p + sizeof(prefix) - 1, req->path.len - (sizeof(prefix) - 1));
    if (!m) {
        http_respond(s, c, req, 404, NULL, NULL, "not found\n", 10);
        return;
    }
    struct api_req r;
    int e = api_req_decode(m, (const char *)body, body_len, &r);
    if (e == -EPROTO || e == -ENOMEM) {
        if (e == -EPROTO)
            http_respond(s, c, req, 400, NULL, NULL, "bad request\n", 12);
        else
            http_respond(s, c, req, 500, NULL, NULL, "out of memory\n", 14);
        return;
    }
    if (e > 0) {
        answer_error(s, c, req, 0, (uint32_t)e);
        return;
    }
    switch (m) {
    case API_PUBLISH:
        api_publish(s, c, req, &r);
        break;
    case API_BROADCAST:
        api_broadcast(s, c, req, &r);
        break;
    case API_SEND:
    case API_UNSUBSCRIBE:
    case API_DISCONNECT:
        api_user_action(s, c, req, &r);
        break;
    case API_CHANNELS:
    case API_INFO:
        api_gather_start(s, c, req, &r);
        break;
    case API_PRESENCE:
    case API_PRESENCE_STATS:
    case API_HISTORY:
        api_room_question(s, c, req, &r);
        break;
    }
    api_req_fini(&r);
}

/* ---- envelopes ---------------------------------------------------------------------------- */

void api_handle_envelope(struct shard *s, const struct xshard_env *env)
{
    switch (env->kind) {
    case XS_API_USER:
        user_op_run(s, env->ptr);
        free(env->ptr);
        return;
    case XS_API_GATHER:
        gather_visit(s, env->ptr);
        gather_next(s, env->ptr);
        return;
    case XS_API_GATHERED:
        gather_done(s, env->ptr);
        return;
    default:
        log_warn("shard %u: unknown envelope kind %u", s->id, env->kind);
        return;
    }
}

void api_envelope_drop(const struct xshard_env *env)
{
    if (env->kind == XS_API_USER)
        free(env->ptr);
    else if (env->kind == XS_API_GATHER || env->kind == XS_API_GATHERED)
        gather_free(env->ptr);
}
