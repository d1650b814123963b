/* SPDX-License-Identifier: MIT */
/*
 * proto_conn: protocol mode, the Centrifugo client protocol over WebSocket (contract in
 * proto_conn.h). Section numbers (§) are PROTOCOL-CENTRIFUGO.md's.
 */
#include "proto_conn.h"

#include "channel.h"
#include "jwt.h"
#include "log.h"
#include "proto.h"
#include "room.h"
#include "routes.h"
#include "shard.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- types -------------------------------------------------------------------------------- */

/* Close codes of §7 this module sends. */
enum {
    PROTO_CLOSE_INTERNAL = 3004,
    PROTO_CLOSE_EXPIRED = 3005,
    PROTO_CLOSE_INVALID_TOKEN = 3500,
    PROTO_CLOSE_BAD_REQUEST = 3501,
    PROTO_CLOSE_STALE = 3502,
};

/* Seconds from the upgrade to a successful connect before close 3502 "stale" (Centrifugo's
 * default client_stale_close_delay). */
#define PROTO_STALE_S 10
/* Seconds a connection or subscription is left past its token's expiry for the refresh the SDK
 * sends at `ttl` (Centrifugo waits 25 s; the SDK refreshes at once, so 5 s is plenty). */
#define PROTO_EXPIRED_GRACE_S 5

/* Channels one connection may hold at once: Centrifugo's default client_channel_limit, which
 * also keeps the linear search of a session's subscriptions short. More: error 106. */
#define PROTO_MAX_SUBS 128

/* Subscription serials fit in the 29 bits a subscribe's question leaves them (sub_cookie). */
#define SERIAL_MASK 0x1fffffffu

/* One subscribed channel: a room membership, the channel's name to find it by, and the
 * subscription token's `info` (chan_info), which presence and join/leave show. */
struct proto_sub {
    struct sub sub;
    uint32_t serial; /* tells a later subscription to the same channel from this one */
    uint32_t exp_at; /* shard second after which it is unsubscribed (2501); 0: never */
    uint32_t chan_info_len;
    uint16_t name_len;
    char name[]; /* the name, then chan_info */
};

struct frame_ctx;

/* A connection's protocol state, on the heap (the private area holds its pointer). */
struct proto_session {
    char client[PROTO_CLIENT_ID_LEN + 1];
    bool connected;
    bool refused;    /* connect was answered with an error: any further command closes 3501 (§3) */
    char *user;      /* "" when anonymous */
    char *conn_info; /* the connection token's `info` JSON; NULL when none */
    uint32_t conn_info_len;
    uint32_t serial;
    uint32_t stale_at;       /* shard second: not connected by then closes 3502 */
    uint32_t exp_at;         /* shard second: not refreshed by then closes 3005; 0: never */
    struct frame_ctx *frame; /* the frame being handled, NULL between frames */
    struct proto_sub **subs;
    uint32_t nr_subs, subs_cap;
    struct users_link by_user; /* in the shard's index of users (server actions, below) */
};

static int session_index(struct shard *s, struct conn *c, struct proto_session *ps);

_Static_assert(sizeof(struct proto_session *) <= WS_APP_PRIV,
               "the session pointer must fit conn_priv");

/* The user of every anonymous session. */
static char anonymous[] = "";

static struct proto_session **session_slot(struct conn *c)
{
    return ws_app_priv(c);
}

static struct proto_session *session_of(const struct conn *c)
{
    return *(struct proto_session **)ws_app_priv((struct conn *)c);
}

/* What one incoming frame is answered with: its replies, gathered into one text frame. */
struct frame_ctx {
    struct shard *s;
    struct conn *c;
    struct proto_session *ps;
    struct proto_buf out;
};

/* ---- pure helpers ------------------------------------------------------------------------- */

void proto_client_id(char out[PROTO_CLIENT_ID_LEN + 1], const uint8_t rnd[16])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    memcpy(b, rnd, sizeof(b));
    /* RFC 9562 §5.4: version 4 in the high nibble of byte 6, variant 10 in byte 8. */
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
}

/* ---- session ------------------------------------------------------------------------------ */

static struct proto_sub *find_sub(const struct proto_session *ps, struct proto_str ch)
{
    for (uint32_t i = 0; i < ps->nr_subs; i++) {
        struct proto_sub *x = ps->subs[i];
        if (x->name_len == ch.len && memcmp(x->name, ch.p, ch.len) == 0)
            return x;
    }
    return NULL;
}

static struct proto_client_info client_info(const struct proto_session *ps,
                                            const struct proto_sub *x)
{
    return (struct proto_client_info){
        .user = {ps->user, strlen(ps->user)},
        .client = {ps->client, PROTO_CLIENT_ID_LEN},
        .conn_info = {ps->conn_info, ps->conn_info_len},
        .chan_info = {x ? x->name + x->name_len : NULL, x ? x->chan_info_len : 0},
    };
}

void proto_sub_client_info(const struct sub *sub, struct proto_client_info *ci)
{
    const struct proto_sub *x = container_of(sub, struct proto_sub, sub);
    *ci = client_info(session_of(sub->conn), x);
}

/* Tells the channel's subscribers that asked for it that <x> joined or left. Out of memory
 * the push is lost, nothing else (presence is counted from the members themselves). */
static void join_leave(struct shard *s, const struct proto_session *ps, const struct proto_sub *x,
                       bool join)
{
    struct proto_buf b = {0};
    struct proto_client_info ci = client_info(ps, x);
    if (proto_encode_join_leave(&b, (struct proto_str){x->name, x->name_len}, join, &ci) < 0 ||
        room_push_join_leave(s, x->name, x->name_len, b.p, b.len) < 0)
        log_warn("shard %u: a %s push was lost: out of memory", s->id, join ? "join" : "leave");
    proto_buf_fini(&b);
}

static void drop_sub(struct shard *s, struct proto_session *ps, uint32_t i)
{
    struct proto_sub *x = ps->subs[i];
    bool announced = !(x->sub.flags & SUB_PENDING);
    room_unsubscribe(s, &x->sub);
    if (announced)
        join_leave(s, ps, x, false);
    free(x);
    ps->subs[i] = ps->subs[--ps->nr_subs];
}

static void session_destroy(struct shard *s, struct proto_session *ps)
{
    users_del(&s->users, &ps->by_user);
    while (ps->nr_subs)
        drop_sub(s, ps, ps->nr_subs - 1);
    free(ps->subs);
    if (ps->user != anonymous)
        free(ps->user);
    free(ps->conn_info);
    free(ps);
}

/* The shard second of the session's next deadline; UINT32_MAX when none. */
static uint32_t session_due(const struct proto_session *ps)
{
    uint32_t due = UINT32_MAX;
    if (!ps->connected && !ps->refused)
        due = ps->stale_at;
    if (ps->exp_at && ps->exp_at < due)
        due = ps->exp_at;
    for (uint32_t i = 0; i < ps->nr_subs; i++)
        if (ps->subs[i]->exp_at && ps->subs[i]->exp_at < due)
            due = ps->subs[i]->exp_at;
    return due;
}

/* ---- replies ------------------------------------------------------------------------------ */

/* Queues the replies gathered so far as one text frame. Returns false when <c> is no longer
 * open afterwards (the slow-consumer policy, or no memory): stop touching the session. */
static bool flush_replies(struct frame_ctx *f)
{
    if (f->out.len) {
        struct msg *m = msg_frame(WS_OP_TEXT, (const uint8_t *)f->out.p, f->out.len, NULL, 0);
        f->out.len = 0;
        if (!m) {
            conn_close(f->s, f->c, PROTO_CLOSE_INTERNAL, proto_close_reason(PROTO_CLOSE_INTERNAL));
            return false;
        }
        conn_enqueue(f->s, f->c, m);
    }
    return conn_is_open(f->c);
}

static void close_with(struct frame_ctx *f, uint16_t code)
{
    conn_close(f->s, f->c, code, proto_close_reason(code));
}

/* Ends an encoder call: out of memory closes 3004. Returns false when closed. */
static bool encoded(struct frame_ctx *f, int r)
{
    if (r < 0 || f->out.oom) {
        close_with(f, PROTO_CLOSE_INTERNAL);
        return false;
    }
    return true;
}

static bool reply_error(struct frame_ctx *f, uint32_t id, uint32_t code)
{
    if (proto_buf_sep(&f->out) < 0)
        return encoded(f, -ENOMEM);
    return encoded(f, proto_encode_error(&f->out, id, code, NULL));
}

static bool reply_empty(struct frame_ctx *f, uint32_t id, enum proto_method method)
{
    if (proto_buf_sep(&f->out) < 0)
        return encoded(f, -ENOMEM);
    return encoded(f, proto_encode_empty(&f->out, id, method));
}

/* `{"id":<id>,"<method>":<result>}` with a result already encoded (by the room's home). */
static bool reply_result(struct frame_ctx *f, uint32_t id, const char *method,
                         const struct proto_buf *result)
{
    char head[64];
    int n = snprintf(head, sizeof(head), "{\"id\":%u,\"%s\":", id, method);
    if (proto_buf_sep(&f->out) < 0 || proto_buf_put(&f->out, head, (size_t)n) < 0 ||
        proto_buf_put(&f->out, result->p, result->len) < 0 || proto_buf_put(&f->out, "}", 1) < 0)
        return encoded(f, -ENOMEM);
    return true;
}

/* Seconds from <now> to the expiry <exp> for the `ttl` field, at least 1. */
static uint32_t ttl_of(int64_t exp, int64_t now)
{
    int64_t d = exp - now;
    if (d < 1)
        return 1;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* The shard second at which an expiry <exp> (unix s, 0: none) is enforced, or 0. */
static uint32_t deadline_of(const struct shard *s, int64_t exp, int64_t now)
{
    if (!exp)
        return 0;
    uint32_t ttl = ttl_of(exp, now);
    if (ttl > UINT32_MAX - PROTO_EXPIRED_GRACE_S - s->now)
        return 0; /* beyond the shard clock's range: as good as never */
    return s->now + ttl + PROTO_EXPIRED_GRACE_S;
}

static bool key_of(const struct config *cfg, struct jwt_key *key)
{
    if (!cfg->jwt_secret)
        return false;
    *key = (struct jwt_key){.secret = (const uint8_t *)cfg->jwt_secret,
                            .secret_len = strlen(cfg->jwt_secret)};
    return true;
}

/*
 * The context answers are written in, for an answer from a room's home: the frame being handled
 * when the answer came at once (this shard is the home), else a fresh one that the caller
 * finishes with end_answer_ctx().
 */
static struct frame_ctx *answer_ctx(struct shard *s, struct conn *c, struct frame_ctx *own)
{
    struct proto_session *ps = session_of(c);
    if (ps->frame)
        return ps->frame;
    *own = (struct frame_ctx){.s = s, .c = c, .ps = ps};
    return own;
}

static void end_answer_ctx(struct frame_ctx *f, struct frame_ctx *own)
{
    if (f == own) {
        if (conn_is_open(f->c))
            flush_replies(f);
        proto_buf_fini(&f->out);
    }
}

/* ---- subscriptions ------------------------------------------------------------------------ */

static struct proto_sub *find_serial(const struct proto_session *ps, const char *name, size_t len,
                                     uint32_t serial)
{
    for (uint32_t i = 0; i < ps->nr_subs; i++) {
        struct proto_sub *x = ps->subs[i];
        if (x->serial == serial && x->name_len == len && memcmp(x->name, name, len) == 0)
            return x;
    }
    return NULL;
}

/* Adds a subscription to <name> with <flags>. Returns it, or NULL: the error code in *<code>. */
static struct proto_sub *add_sub(struct shard *s, struct conn *c, struct proto_session *ps,
                                 struct proto_str name, struct proto_str chan_info, uint32_t flags,
                                 uint32_t *code)
{
    /* A connection holds at most one subscription per room (room.h). */
    if (find_sub(ps, name)) {
        *code = 105;
        return NULL;
    }
    if (ps->nr_subs == PROTO_MAX_SUBS) {
        *code = 106;
        return NULL;
    }
    *code = 100;
    if (ps->nr_subs == ps->subs_cap) {
        uint32_t cap = ps->subs_cap ? ps->subs_cap * 2 : 2;
        struct proto_sub **n = realloc(ps->subs, cap * sizeof(*n));
        if (!n)
            return NULL;
        ps->subs = n;
        ps->subs_cap = cap;
    }
    struct proto_sub *x = calloc(1, sizeof(*x) + name.len + chan_info.len);
    if (!x)
        return NULL;
    x->serial = ++ps->serial & SERIAL_MASK;
    x->name_len = (uint16_t)name.len;
    memcpy(x->name, name.p, name.len);
    if (chan_info.len)
        memcpy(x->name + name.len, chan_info.p, chan_info.len);
    x->chan_info_len = (uint32_t)chan_info.len;
    if (room_subscribe(s, &x->sub, c, x->name, x->name_len, SUB_PROTO | flags) < 0) {
        free(x);
        return NULL;
    }
    ps->subs[ps->nr_subs++] = x;
    *code = 0;
    return x;
}

/* What a subscribe asked of its answer, kept in the ask's cookie. */
enum {
    ASK_RECOVERABLE = 1u << 0,
    ASK_POSITIONED = 1u << 1,
    ASK_RECOVER = 1u << 2,
};

static uint64_t sub_cookie(uint32_t id, uint32_t serial, uint32_t opts)
{
    return (uint64_t)id | (uint64_t)serial << 32 | (uint64_t)opts << 61;
}

/*
 * The home's answer to a positioned subscribe: the stream's epoch and top, and the missed
 * publications when recovering. The subscription got nothing while it waited (SUB_PENDING), so
 * every publication up to the answer's top is in it or before the client's position, and every
 * later one comes as a push after this reply.
 */
static void on_subscribe_answer(struct shard *s, struct conn *c, const struct room_ask *a)
{
    struct proto_session *ps = session_of(c);
    uint32_t id = (uint32_t)a->cookie, serial = (uint32_t)(a->cookie >> 32) & SERIAL_MASK;
    uint32_t opts = (uint32_t)(a->cookie >> 61);
    struct proto_sub *x = find_serial(ps, a->name, a->name_len, serial);
    struct frame_ctx own, *f = answer_ctx(s, c, &own);
    if (!x) {
        /* Unsubscribed meanwhile: the reply is still owed. */
        reply_empty(f, id, PROTO_SUBSCRIBE);
        end_answer_ctx(f, &own);
        return;
    }
    if (a->error) {
        uint32_t i = 0;
        while (ps->subs[i] != x)
            i++;
        drop_sub(s, ps, i);
        reply_error(f, id, a->error);
        end_answer_ctx(f, &own);
        return;
    }
    x->sub.flags &= ~(uint32_t)SUB_PENDING;
    struct proto_subscribe_result res = {
        .recoverable = opts & ASK_RECOVERABLE,
        .positioned = true,
        .epoch = {a->epoch, strlen(a->epoch)},
        .offset = a->top,
        .was_recovering = opts & ASK_RECOVER,
    };
    struct proto_str pubs = {a->result.p, a->result.len};
    if ((opts & ASK_RECOVER) && a->recovery == HISTORY_RECOVERED) {
        res.recovered = true;
        res.offset = a->hist.since_offset;
        if (pubs.len) {
            res.pubs = &pubs; /* one string: the publications, already comma-separated */
            res.nr_pubs = 1;
        }
    }
    if (x->exp_at) {
        res.expires = true;
        res.ttl = x->exp_at - s->now > PROTO_EXPIRED_GRACE_S
                      ? x->exp_at - s->now - PROTO_EXPIRED_GRACE_S
                      : 1;
    }
    bool ok = proto_buf_sep(&f->out) == 0 && encoded(f, proto_encode_subscribe(&f->out, id, &res));
    /* The reply goes out before the join, so that the joiner hears its own join. */
    if (ok && flush_replies(f))
        join_leave(s, ps, x, true);
    end_answer_ctx(f, &own);
}

/* ---- commands ----------------------------------------------------------------------------- */

/* Server-side subscriptions of a connection token (§9 `channels`, `subs`), before the connect
 * reply; each gets `{}` in its `subs` map (their channels need no token of their own). */
static bool server_subs(struct frame_ctx *f, const struct jwt_claims *claims,
                        struct proto_server_sub *out, uint32_t *nr)
{
    static const struct proto_subscribe_result empty;
    *nr = 0;
    for (uint32_t i = 0; claims && i < claims->nr_subs && *nr < PROTO_MAX_SUBS; i++) {
        const struct jwt_sub *js = &claims->subs[i];
        struct proto_str name = {js->channel, strlen(js->channel)};
        if (!channel_name_valid(name.p, name.len))
            continue;
        uint32_t code;
        struct proto_sub *x = add_sub(f->s, f->c, f->ps, name,
                                      (struct proto_str){js->info.p, js->info.len}, 0, &code);
        if (!x) {
            if (code == 100) {
                close_with(f, PROTO_CLOSE_INTERNAL);
                return false;
            }
            continue;
        }
        out[(*nr)++] = (struct proto_server_sub){.channel = {x->name, x->name_len}, .res = &empty};
    }
    return true;
}

/*
 * connect (§3). Returns false when the rest of the frame must not be handled: the connection
 * closed, or connect failed (Centrifugo drops the commands after a failed connect, §2).
 */
static bool cmd_connect(struct frame_ctx *f, const struct proto_cmd *cmd)
{
    struct proto_session *ps = f->ps;
    const struct config *cfg = f->s->eng->cfg;
    if (ps->connected) {
        close_with(f, PROTO_CLOSE_BAD_REQUEST);
        return false;
    }
    struct proto_connect_result res = {.client = {ps->client, PROTO_CLIENT_ID_LEN},
                                       .version = {RINGCAST_VERSION, strlen(RINGCAST_VERSION)}};
    const char *user = "";
    struct jwt_claims *claims = NULL;
    int64_t now = (int64_t)time(NULL), exp = 0;
    if (cmd->token.len) {
        struct jwt_key key;
        /* Without a secret no token can be verified: an invalid token, as Centrifugo says. */
        int r = key_of(cfg, &key)
                    ? jwt_verify_connect(&key, cmd->token.p, cmd->token.len, now, &claims)
                    : -EKEYREJECTED;
        if (r < 0) {
            uint32_t code;
            uint16_t close;
            jwt_answer(JWT_USE_CONNECT, r, &code, &close);
            if (close) {
                close_with(f, close);
            } else if (reply_error(f, cmd->id, code)) {
                ps->refused = true;
            }
            return false;
        }
        user = claims->sub;
        exp = jwt_expiry(claims);
        if (exp) {
            res.expires = true;
            res.ttl = ttl_of(exp, now);
        }
    } else if (!cfg->allow_anonymous) {
        close_with(f, PROTO_CLOSE_BAD_REQUEST);
        return false;
    }
    /* Most connections of an anonymous chat have no user: no copy for them. */
    ps->user = *user ? strdup(user) : anonymous;
    if (claims && claims->info.len) {
        ps->conn_info = malloc(claims->info.len);
        if (ps->conn_info) {
            memcpy(ps->conn_info, claims->info.p, claims->info.len);
            ps->conn_info_len = (uint32_t)claims->info.len;
        }
    }
    if (!ps->user || (claims && claims->info.len && !ps->conn_info)) {
        jwt_claims_free(claims);
        close_with(f, PROTO_CLOSE_INTERNAL);
        return false;
    }
    if (session_index(f->s, f->c, ps) < 0) {
        close_with(f, PROTO_CLOSE_INTERNAL);
        return false;
    }
    ps->connected = true;
    ps->exp_at = deadline_of(f->s, exp, now);
    ws_rearm(f->s, f->c);
    struct proto_server_sub *subs = NULL;
    uint32_t nr_subs = 0;
    if (claims && claims->nr_subs) {
        subs = calloc(claims->nr_subs, sizeof(*subs));
        if (!subs || !server_subs(f, claims, subs, &nr_subs)) {
            free(subs);
            jwt_claims_free(claims);
            if (conn_is_open(f->c))
                close_with(f, PROTO_CLOSE_INTERNAL);
            return false;
        }
    }
    /* §7: the client must answer each ping `{}` with `{}`; idle-timeout closes the silent. */
    res.ping = cfg->ping_interval;
    res.pong = cfg->ping_interval != 0;
    bool ok = proto_buf_sep(&f->out) == 0 &&
              encoded(f, proto_encode_connect(&f->out, cmd->id, &res, subs, nr_subs));
    free(subs);
    jwt_claims_free(claims);
    if (!ok)
        return false;
    /* The joins of the server-side subscriptions go after the reply. */
    if (nr_subs && !flush_replies(f))
        return false;
    for (uint32_t i = 0; i < ps->nr_subs; i++)
        join_leave(f->s, ps, ps->subs[i], true);
    return true;
}

/* Checks a subscription token, if any. Returns 1 (verified), 0 (none given), or -1 when the
 * command has been answered (error reply or close); *<claims> gets the token's claims (free
 * them with jwt_claims_free). */
static int sub_token(struct frame_ctx *f, const struct proto_cmd *cmd, int64_t now,
                     struct jwt_claims **claims)
{
    struct proto_session *ps = f->ps;
    struct jwt_key key;
    *claims = NULL;
    if (!cmd->token.len)
        return 0;
    int r = key_of(f->s->eng->cfg, &key)
                ? jwt_verify_subscribe(&key, cmd->token.p, cmd->token.len, now, cmd->channel.p,
                                       cmd->channel.len, ps->user, ps->client, claims)
                : -EKEYREJECTED;
    if (r < 0) {
        uint32_t code;
        uint16_t close;
        jwt_answer(cmd->method == PROTO_SUB_REFRESH ? JWT_USE_SUB_REFRESH : JWT_USE_SUBSCRIBE, r,
                   &code, &close);
        if (close)
            close_with(f, close);
        else
            reply_error(f, cmd->id, code);
        return -1;
    }
    return 1;
}

/* subscribe (§4). Returns false when the connection closed. */
static bool cmd_subscribe(struct frame_ctx *f, const struct proto_cmd *cmd)
{
    struct proto_session *ps = f->ps;
    int64_t now = (int64_t)time(NULL);
    struct jwt_claims *claims;
    int tok = sub_token(f, cmd, now, &claims);
    if (tok < 0)
        return conn_is_open(f->c);
    int64_t exp = claims ? jwt_expiry(claims) : 0;
    uint32_t code = channel_can_subscribe(cmd->channel.p, cmd->channel.len, ps->user,
                                          strlen(ps->user), tok == 1);
    if (code) {
        jwt_claims_free(claims);
        return reply_error(f, cmd->id, code);
    }
    /* Positioning and recovery need a history (§4: given when asked and the channel has one). */
    bool positioned =
        f->s->eng->cfg->history_size && (cmd->positioned || cmd->recoverable || cmd->recover);
    uint32_t flags = (cmd->join_leave ? SUB_JOIN_LEAVE : 0) | (positioned ? SUB_PENDING : 0);
    struct proto_str chan_info = {claims ? claims->info.p : NULL, claims ? claims->info.len : 0};
    struct proto_sub *x = add_sub(f->s, f->c, ps, cmd->channel, chan_info, flags, &code);
    jwt_claims_free(claims);
    if (!x)
        return reply_error(f, cmd->id, code);
    x->exp_at = deadline_of(f->s, exp, now);
    if (x->exp_at)
        ws_rearm(f->s, f->c);
    if (positioned) {
        struct room_ask *a = room_ask_create(f->s, f->c, ROOM_Q_SUBSCRIBE, x->name, x->name_len,
                                             on_subscribe_answer);
        if (!a) {
            drop_sub(f->s, ps, ps->nr_subs - 1);
            return reply_error(f, cmd->id, 100);
        }
        uint32_t opts = (cmd->recoverable ? ASK_RECOVERABLE : 0) |
                        (cmd->positioned ? ASK_POSITIONED : 0) | (cmd->recover ? ASK_RECOVER : 0);
        a->cookie = sub_cookie(cmd->id, x->serial, opts);
        if (cmd->recover) {
            a->hist.has_since = true;
            a->hist.since_offset = cmd->offset;
            size_t el = cmd->epoch.len < HISTORY_EPOCH_MAX ? cmd->epoch.len : HISTORY_EPOCH_MAX;
            memcpy(a->hist.since_epoch, cmd->epoch.p ? cmd->epoch.p : "", el);
        }
        /* The answer may come at once (this shard is the home): it then writes into f. */
        if (room_ask(f->s, a) < 0) {
            uint32_t i = 0;
            while (ps->subs[i] != x)
                i++;
            drop_sub(f->s, ps, i);
            return reply_error(f, cmd->id, 100);
        }
        return conn_is_open(f->c);
    }
    /* No history asked for: `{}` unless the token expires. */
    struct proto_subscribe_result res = {0};
    if (exp) {
        res.expires = true;
        res.ttl = ttl_of(exp, now);
    }
    if (proto_buf_sep(&f->out) < 0 || !encoded(f, proto_encode_subscribe(&f->out, cmd->id, &res)))
        return false;
    if (!flush_replies(f))
        return false;
    join_leave(f->s, ps, x, true);
    return true;
}

/* unsubscribe (§4): succeeds whether subscribed or not. */
static bool cmd_unsubscribe(struct frame_ctx *f, const struct proto_cmd *cmd)
{
    struct proto_session *ps = f->ps;
    for (uint32_t i = 0; i < ps->nr_subs; i++) {
        struct proto_sub *x = ps->subs[i];
        if (x->name_len == cmd->channel.len && memcmp(x->name, cmd->channel.p, x->name_len) == 0) {
            drop_sub(f->s, ps, i);
            break;
        }
    }
    return reply_empty(f, cmd->id, PROTO_UNSUBSCRIBE);
}

/* The client may use (publish, presence, history) the channel of <cmd>: 0, or the error. */
static uint32_t may_use(const struct frame_ctx *f, const struct proto_cmd *cmd)
{
    bool subscribed = find_sub(f->ps, cmd->channel) != NULL;
    return channel_can_use(cmd->channel.p, cmd->channel.len, f->ps->user, strlen(f->ps->user),
                           subscribed);
}

/*
 * publish (§5): the `data` JSON text goes to the room as a text frame, so raw members get it
 * verbatim, and every protocol subscriber, the publisher included, gets its pub push with the
 * publisher's ClientInfo. The replies so far are queued first: a subscribe reply earlier in
 * this frame must reach the client before the push this publish may deliver to it right now
 * (§2, ordering rule).
 */
static bool cmd_publish(struct frame_ctx *f, const struct proto_cmd *cmd)
{
    struct proto_session *ps = f->ps;
    uint32_t code = may_use(f, cmd);
    if (code)
        return reply_error(f, cmd->id, code);
    if (!flush_replies(f))
        return false;
    struct proto_buf info = {0};
    struct proto_sub *x = find_sub(ps, cmd->channel);
    struct proto_client_info ci = client_info(ps, x);
    int rc = proto_encode_client_info(&info, &ci);
    if (rc == 0)
        rc = room_publish_info(f->s, cmd->channel.p, cmd->channel.len, WS_OP_TEXT,
                               (const uint8_t *)cmd->data.p, cmd->data.len, info.p, info.len);
    proto_buf_fini(&info);
    if (rc < 0)
        return reply_error(f, cmd->id, 100);
    /* Delivering to ourselves may have closed us (slow consumer). */
    if (!conn_is_open(f->c))
        return false;
    return reply_empty(f, cmd->id, PROTO_PUBLISH);
}

static const char *method_name(uint32_t q)
{
    switch (q) {
    case ROOM_Q_PRESENCE:
        return "presence";
    case ROOM_Q_PRESENCE_STATS:
        return "presence_stats";
    default:
        return "history";
    }
}

/* The answer to presence, presence_stats or history, from the room's home. */
static void on_query_answer(struct shard *s, struct conn *c, const struct room_ask *a)
{
    struct frame_ctx own, *f = answer_ctx(s, c, &own);
    uint32_t id = (uint32_t)a->cookie;
    if (a->error)
        reply_error(f, id, a->error);
    else
        reply_result(f, id, method_name(a->question), &a->result);
    end_answer_ctx(f, &own);
}

/* presence, presence_stats, history (§5): asked of the room's home. */
static bool cmd_query(struct frame_ctx *f, const struct proto_cmd *cmd, uint32_t q)
{
    uint32_t code = may_use(f, cmd);
    if (code)
        return reply_error(f, cmd->id, code);
    if (q == ROOM_Q_HISTORY && !f->s->eng->cfg->history_size)
        return reply_error(f, cmd->id, 108);
    if (q == ROOM_Q_HISTORY && cmd->reverse && cmd->has_since && cmd->since_offset == 0)
        return reply_error(f, cmd->id, 107);
    struct room_ask *a =
        room_ask_create(f->s, f->c, q, cmd->channel.p, cmd->channel.len, on_query_answer);
    if (!a)
        return reply_error(f, cmd->id, 100);
    a->cookie = cmd->id;
    a->client_info = proto_sub_client_info;
    a->hist.limit = cmd->limit;
    a->hist.reverse = cmd->reverse;
    a->hist.has_since = cmd->has_since;
    a->hist.since_offset = cmd->since_offset;
    if (cmd->since_epoch.len) {
        size_t el =
            cmd->since_epoch.len < HISTORY_EPOCH_MAX ? cmd->since_epoch.len : HISTORY_EPOCH_MAX;
        memcpy(a->hist.since_epoch, cmd->since_epoch.p, el);
    }
    if (room_ask(f->s, a) < 0)
        return reply_error(f, cmd->id, 100);
    return conn_is_open(f->c);
}

/* refresh (§9): a new connection token for the same user moves the expiry. */
static bool cmd_refresh(struct frame_ctx *f, const struct proto_cmd *cmd)
{
    struct proto_session *ps = f->ps;
    struct jwt_key key;
    struct jwt_claims *claims = NULL;
    int64_t now = (int64_t)time(NULL);
    int r = key_of(f->s->eng->cfg, &key)
                ? jwt_verify_connect(&key, cmd->token.p, cmd->token.len, now, &claims)
                : -EKEYREJECTED;
    if (r == 0 && strcmp(claims->sub, ps->user) != 0)
        r = -EKEYREJECTED; /* another user: an invalid token (close 3500) */
    if (r < 0) {
        jwt_claims_free(claims);
        uint32_t code;
        uint16_t close;
        jwt_answer(JWT_USE_REFRESH, r, &code, &close);
        if (close) {
            close_with(f, close);
            return false;
        }
        return reply_error(f, cmd->id, code);
    }
    int64_t exp = jwt_expiry(claims);
    jwt_claims_free(claims);
    struct proto_connect_result res = {.client = {ps->client, PROTO_CLIENT_ID_LEN},
                                       .version = {RINGCAST_VERSION, strlen(RINGCAST_VERSION)}};
    if (exp) {
        res.expires = true;
        res.ttl = ttl_of(exp, now);
    }
    ps->exp_at = deadline_of(f->s, exp, now);
    ws_rearm(f->s, f->c);
    if (proto_buf_sep(&f->out) < 0)
        return encoded(f, -ENOMEM);
    return encoded(f, proto_encode_refresh(&f->out, cmd->id, &res));
}

/* sub_refresh (§9): a new subscription token moves the subscription's expiry. */
static bool cmd_sub_refresh(struct frame_ctx *f, const struct proto_cmd *cmd)
{
    struct proto_sub *x = find_sub(f->ps, cmd->channel);
    if (!x)
        return reply_error(f, cmd->id, 103); /* not subscribed: permission denied */
    int64_t now = (int64_t)time(NULL);
    struct jwt_claims *claims;
    if (sub_token(f, cmd, now, &claims) < 0)
        return conn_is_open(f->c);
    int64_t exp = jwt_expiry(claims);
    jwt_claims_free(claims);
    x->exp_at = deadline_of(f->s, exp, now);
    ws_rearm(f->s, f->c);
    if (proto_buf_sep(&f->out) < 0)
        return encoded(f, -ENOMEM);
    return encoded(
        f, proto_encode_sub_refresh(&f->out, cmd->id, exp != 0, exp ? ttl_of(exp, now) : 0));
}

/* One command. Returns false when the rest of the frame must not be handled. */
static bool handle(struct frame_ctx *f, const struct proto_cmd *cmd)
{
    struct proto_session *ps = f->ps;
    /* §2: the first command must be connect; after a refused connect nothing else goes. */
    if (ps->refused || (!ps->connected && cmd->method != PROTO_CONNECT)) {
        close_with(f, PROTO_CLOSE_BAD_REQUEST);
        return false;
    }
    if (cmd->error)
        return reply_error(f, cmd->id, cmd->error);
    switch (cmd->method) {
    case PROTO_CONNECT:
        return cmd_connect(f, cmd);
    case PROTO_SUBSCRIBE:
        return cmd_subscribe(f, cmd);
    case PROTO_UNSUBSCRIBE:
        return cmd_unsubscribe(f, cmd);
    case PROTO_PUBLISH:
        return cmd_publish(f, cmd);
    case PROTO_PRESENCE:
        return cmd_query(f, cmd, ROOM_Q_PRESENCE);
    case PROTO_PRESENCE_STATS:
        return cmd_query(f, cmd, ROOM_Q_PRESENCE_STATS);
    case PROTO_HISTORY:
        return cmd_query(f, cmd, ROOM_Q_HISTORY);
    case PROTO_REFRESH:
        return cmd_refresh(f, cmd);
    case PROTO_SUB_REFRESH:
        return cmd_sub_refresh(f, cmd);
    case PROTO_PONG: /* its arrival refreshed last_rx, which is all a pong is for */
    case PROTO_SEND: /* no application to hand it to: accepted and ignored */
        return true;
    case PROTO_RPC: /* no application to answer it */
    case PROTO_PING:
        return reply_error(f, cmd->id, 108);
    }
    return reply_error(f, cmd->id, 104);
}

/* ---- handler ------------------------------------------------------------------------------ */

static void proto_message(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p,
                          size_t len)
{
    struct frame_ctx f = {.s = s, .c = c, .ps = session_of(c)};
    /* §1: every frame is text in JSON mode; a binary one is a bad request. */
    if (opcode != WS_OP_TEXT) {
        close_with(&f, PROTO_CLOSE_BAD_REQUEST);
        return;
    }
    struct proto_reader r;
    struct proto_cmd cmd = {0};
    proto_reader_init(&r, (const char *)p, len, 0);
    int n = 0;
    bool go = true;
    f.ps->frame = &f;
    while (go && (n = proto_read(&r, &cmd)) > 0) {
        go = handle(&f, &cmd);
        proto_cmd_fini(&cmd);
    }
    if (go && n < 0) {
        /* The commands before the bad one are answered first, as Centrifugo does. */
        uint16_t code = proto_close_code(n);
        if (flush_replies(&f))
            close_with(&f, code);
    } else if (conn_is_open(c)) {
        flush_replies(&f);
    }
    /* Closing freed the session (proto_close). */
    if (conn_is_open(c))
        f.ps->frame = NULL;
    proto_buf_fini(&f.out);
}

static void proto_close(struct shard *s, struct conn *c)
{
    struct proto_session **slot = session_slot(c);
    if (*slot)
        session_destroy(s, *slot);
    *slot = NULL;
}

/* §7: the application-level ping is the empty object, in a text frame. */
static struct msg *proto_ping(void)
{
    return msg_frame(WS_OP_TEXT, (const uint8_t *)"{}", 2, NULL, 0);
}

static uint32_t proto_due(const struct conn *c)
{
    const struct proto_session *ps = session_of(c);
    return ps ? session_due(ps) : UINT32_MAX;
}

/* A deadline came: no connect in time (3502), an expired connection (3005), expired
 * subscriptions (unsubscribe push 2501: the SDK resubscribes with a fresh token). */
static void proto_tick(struct shard *s, struct conn *c)
{
    struct proto_session *ps = session_of(c);
    if (!ps->connected && !ps->refused && s->now >= ps->stale_at) {
        conn_close(s, c, PROTO_CLOSE_STALE, proto_close_reason(PROTO_CLOSE_STALE));
        return;
    }
    if (ps->exp_at && s->now >= ps->exp_at) {
        conn_close(s, c, PROTO_CLOSE_EXPIRED, proto_close_reason(PROTO_CLOSE_EXPIRED));
        return;
    }
    struct proto_buf b = {0};
    for (uint32_t i = 0; i < ps->nr_subs;) {
        struct proto_sub *x = ps->subs[i];
        if (!x->exp_at || s->now < x->exp_at) {
            i++;
            continue;
        }
        proto_buf_sep(&b);
        proto_encode_unsubscribe_push(&b, (struct proto_str){x->name, x->name_len}, 2501,
                                      "subscription expired");
        drop_sub(s, ps, i);
    }
    if (b.oom) {
        conn_close(s, c, PROTO_CLOSE_INTERNAL, proto_close_reason(PROTO_CLOSE_INTERNAL));
    } else if (b.len) {
        struct msg *m = msg_frame(WS_OP_TEXT, (const uint8_t *)b.p, b.len, NULL, 0);
        if (m)
            conn_enqueue(s, c, m);
        else
            conn_close(s, c, PROTO_CLOSE_INTERNAL, proto_close_reason(PROTO_CLOSE_INTERNAL));
    }
    proto_buf_fini(&b);
}

const struct ws_handler proto_handler = {
    .conn = WS_HANDLER_BASE("proto"),
    .on_message = proto_message,
    .on_close = proto_close,
    .ping = proto_ping,
    .due = proto_due,
    .tick = proto_tick,
};

void proto_route(struct shard *s, struct conn *c, const struct http_request *req,
                 const uint8_t *body, size_t body_len)
{
    (void)body;
    (void)body_len;
    if (ws_upgrade(s, c, req, HANDLER_PROTO) < 0)
        return;
    struct proto_session *ps = calloc(1, sizeof(*ps));
    uint8_t rnd[16];
    if (!ps || getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        free(ps);
        conn_close(s, c, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    proto_client_id(ps->client, rnd);
    ps->stale_at = s->now + PROTO_STALE_S;
    *session_slot(c) = ps;
    ws_rearm(s, c);
}

/* ---- server actions (api.c) --------------------------------------------------------------- */

/* Indexes a connection whose connect succeeded under its user (anonymous ones are not). */
static int session_index(struct shard *s, struct conn *c, struct proto_session *ps)
{
    if (!*ps->user)
        return 0;
    ps->by_user.owner = c;
    return users_add(&s->users, &ps->by_user, ps->user, strlen(ps->user));
}

struct for_user {
    struct shard *s;
    proto_user_fn fn;
    void *arg;
};

static void for_user_link(void *arg, struct users_link *l)
{
    struct for_user *fu = arg;
    fu->fn(fu->s, l->owner, fu->arg);
}

uint32_t proto_for_user(struct shard *s, const char *user, size_t len, proto_user_fn fn, void *arg)
{
    struct for_user fu = {.s = s, .fn = fn, .arg = arg};
    return users_each_link(&s->users, user, len, for_user_link, &fu);
}

/* PROTOCOL-CENTRIFUGO.md §6: 2000 "server unsubscribe" ends the subscription for good. */
#define PROTO_UNSUB_SERVER 2000

int proto_server_unsubscribe(struct shard *s, struct conn *c, const char *channel, size_t len)
{
    struct proto_session *ps = *session_slot(c);
    if (!ps || !conn_is_open(c))
        return 0;
    struct frame_ctx f = {.s = s, .c = c, .ps = ps};
    int n = 0;
    for (uint32_t i = ps->nr_subs; i-- > 0;) {
        struct proto_sub *x = ps->subs[i];
        if (len && (x->name_len != len || memcmp(x->name, channel, len) != 0))
            continue;
        /* The push names the channel: encode it before the subscription (and its name) goes. */
        int r = proto_buf_sep(&f.out);
        if (r == 0)
            r = proto_encode_unsubscribe_push(&f.out, (struct proto_str){x->name, x->name_len},
                                              PROTO_UNSUB_SERVER, "server unsubscribe");
        drop_sub(s, ps, i);
        n++;
        if (!encoded(&f, r))
            break;
    }
    /* One frame for all the pushes; the room's later messages are not delivered any more. */
    flush_replies(&f);
    proto_buf_fini(&f.out);
    return n;
}
