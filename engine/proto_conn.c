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

/* Close codes of §7 this slice sends. */
enum {
    PROTO_CLOSE_INTERNAL = 3004,
    PROTO_CLOSE_INVALID_TOKEN = 3500,
    PROTO_CLOSE_BAD_REQUEST = 3501,
};

/* Channels one connection may hold at once: Centrifugo's default client_channel_limit, which
 * also keeps the linear search of a session's subscriptions short. More: error 106. */
#define PROTO_MAX_SUBS 128

/* One subscribed channel: a room membership, and the channel's name to find it by. */
struct proto_sub {
    struct sub sub;
    uint16_t name_len;
    char name[];
};

/* A connection's protocol state, on the heap (the private area holds its pointer). */
struct proto_session {
    char client[PROTO_CLIENT_ID_LEN + 1];
    bool connected;
    bool refused; /* connect was answered with an error: any further command closes 3501 (§3) */
    char *user;   /* "" when anonymous */
    struct proto_sub **subs;
    uint32_t nr_subs, subs_cap;
    struct users_link by_user; /* in the shard's index of users (server actions, below) */
};

static int session_index(struct shard *s, struct conn *c, struct proto_session *ps);

_Static_assert(sizeof(struct proto_session *) <= WS_APP_PRIV,
               "the session pointer must fit conn_priv");

static struct proto_session **session_slot(struct conn *c)
{
    return ws_app_priv(c);
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

static void drop_sub(struct shard *s, struct proto_session *ps, uint32_t i)
{
    room_unsubscribe(s, &ps->subs[i]->sub);
    free(ps->subs[i]);
    ps->subs[i] = ps->subs[--ps->nr_subs];
}

static void session_destroy(struct shard *s, struct proto_session *ps)
{
    users_del(&s->users, &ps->by_user);
    while (ps->nr_subs)
        drop_sub(s, ps, ps->nr_subs - 1);
    free(ps->subs);
    free(ps->user);
    free(ps);
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

/* Seconds from <now> to the expiry <exp> for the `ttl` field, at least 1. */
static uint32_t ttl_of(int64_t exp, int64_t now)
{
    int64_t d = exp - now;
    if (d < 1)
        return 1;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static bool key_of(const struct config *cfg, struct jwt_key *key)
{
    if (!cfg->jwt_secret)
        return false;
    *key = (struct jwt_key){.secret = (const uint8_t *)cfg->jwt_secret,
                            .secret_len = strlen(cfg->jwt_secret)};
    return true;
}

/* ---- commands ----------------------------------------------------------------------------- */

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
    int64_t now = (int64_t)time(NULL);
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
        int64_t exp = jwt_expiry(claims);
        if (exp) {
            res.expires = true;
            res.ttl = ttl_of(exp, now);
        }
    } else if (!cfg->allow_anonymous) {
        close_with(f, PROTO_CLOSE_BAD_REQUEST);
        return false;
    }
    ps->user = strdup(user);
    jwt_claims_free(claims);
    if (!ps->user) {
        close_with(f, PROTO_CLOSE_INTERNAL);
        return false;
    }
    if (session_index(f->s, f->c, ps) < 0) {
        close_with(f, PROTO_CLOSE_INTERNAL);
        return false;
    }
    ps->connected = true;
    /* §7: the client must answer each ping `{}` with `{}`; idle-timeout closes the silent. */
    res.ping = cfg->ping_interval;
    res.pong = cfg->ping_interval != 0;
    if (proto_buf_sep(&f->out) < 0)
        return encoded(f, -ENOMEM);
    return encoded(f, proto_encode_connect(&f->out, cmd->id, &res, NULL, 0));
}

/* Checks a subscription token, if any. Returns 1 (verified), 0 (none given), or -1 when the
 * command has been answered (error reply or close); *<exp> gets the token's expiry. */
static int sub_token(struct frame_ctx *f, const struct proto_cmd *cmd, int64_t now, int64_t *exp)
{
    struct proto_session *ps = f->ps;
    struct jwt_key key;
    struct jwt_claims *claims = NULL;
    if (!cmd->token.len)
        return 0;
    int r = key_of(f->s->eng->cfg, &key)
                ? jwt_verify_subscribe(&key, cmd->token.p, cmd->token.len, now, cmd->channel.p,
                                       cmd->channel.len, ps->user, ps->client, &claims)
                : -EKEYREJECTED;
    if (r < 0) {
        uint32_t code;
        uint16_t close;
        jwt_answer(JWT_USE_SUBSCRIBE, r, &code, &close);
        if (close)
            close_with(f, close);
        else
            reply_error(f, cmd->id, code);
        return -1;
    }
    *exp = jwt_expiry(claims);
    jwt_claims_free(claims);
    return 1;
}

/* subscribe (§4). Returns false when the connection closed. */
static bool cmd_subscribe(struct frame_ctx *f, const struct proto_cmd *cmd)
{
    struct proto_session *ps = f->ps;
    int64_t now = (int64_t)time(NULL), exp = 0;
    int tok = sub_token(f, cmd, now, &exp);
    if (tok < 0)
        return conn_is_open(f->c);
    uint32_t code = channel_can_subscribe(cmd->channel.p, cmd->channel.len, ps->user,
                                          strlen(ps->user), tok == 1);
    if (code)
        return reply_error(f, cmd->id, code);
    /* A connection holds at most one subscription per room (room.h). */
    if (find_sub(ps, cmd->channel))
        return reply_error(f, cmd->id, 105);
    if (ps->nr_subs == PROTO_MAX_SUBS)
        return reply_error(f, cmd->id, 106);
    if (ps->nr_subs == ps->subs_cap) {
        uint32_t cap = ps->subs_cap ? ps->subs_cap * 2 : 4;
        struct proto_sub **n = realloc(ps->subs, cap * sizeof(*n));
        if (!n)
            return reply_error(f, cmd->id, 100);
        ps->subs = n;
        ps->subs_cap = cap;
    }
    struct proto_sub *x = calloc(1, sizeof(*x) + cmd->channel.len);
    if (!x)
        return reply_error(f, cmd->id, 100);
    x->name_len = (uint16_t)cmd->channel.len;
    memcpy(x->name, cmd->channel.p, cmd->channel.len);
    if (room_subscribe(f->s, &x->sub, f->c, x->name, x->name_len, SUB_PROTO) < 0) {
        free(x);
        return reply_error(f, cmd->id, 100);
    }
    ps->subs[ps->nr_subs++] = x;
    /* No history in this slice: no position, no recovery; `{}` unless the token expires. */
    struct proto_subscribe_result res = {0};
    if (exp) {
        res.expires = true;
        res.ttl = ttl_of(exp, now);
    }
    if (proto_buf_sep(&f->out) < 0)
        return encoded(f, -ENOMEM);
    return encoded(f, proto_encode_subscribe(&f->out, cmd->id, &res));
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

/*
 * publish (§5): the `data` JSON text goes to the room as a text frame, so raw members get it
 * verbatim, and every protocol subscriber, the publisher included, gets its pub push. The
 * replies so far are queued first: a subscribe reply earlier in this frame must reach the
 * client before the push this publish may deliver to it right now (§2, ordering rule).
 */
static bool cmd_publish(struct frame_ctx *f, const struct proto_cmd *cmd)
{
    struct proto_session *ps = f->ps;
    bool subscribed = find_sub(ps, cmd->channel) != NULL;
    uint32_t code =
        channel_can_use(cmd->channel.p, cmd->channel.len, ps->user, strlen(ps->user), subscribed);
    if (code)
        return reply_error(f, cmd->id, code);
    if (!flush_replies(f))
        return false;
    if (room_publish_by_name(f->s, cmd->channel.p, cmd->channel.len, WS_OP_TEXT,
                             (const uint8_t *)cmd->data.p, cmd->data.len) < 0)
        return reply_error(f, cmd->id, 100);
    /* Delivering to ourselves may have closed us (slow consumer). */
    if (!conn_is_open(f->c))
        return false;
    return reply_empty(f, cmd->id, PROTO_PUBLISH);
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
    case PROTO_PONG: /* its arrival refreshed last_rx, which is all a pong is for */
    case PROTO_SEND: /* no application to hand it to: accepted and ignored */
        return true;
    case PROTO_PRESENCE:
    case PROTO_PRESENCE_STATS:
    case PROTO_HISTORY:
    case PROTO_REFRESH:
    case PROTO_SUB_REFRESH:
    case PROTO_RPC:
    case PROTO_PING:
        /* TODO(#10): presence, history and refresh come with the rest of protocol mode. */
        return reply_error(f, cmd->id, 108);
    }
    return reply_error(f, cmd->id, 104);
}

/* ---- handler ------------------------------------------------------------------------------ */

static void proto_message(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p,
                          size_t len)
{
    struct frame_ctx f = {.s = s, .c = c, .ps = *session_slot(c)};
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

const struct ws_handler proto_handler = {
    .conn = WS_HANDLER_BASE("proto"),
    .on_message = proto_message,
    .on_close = proto_close,
    .ping = proto_ping,
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
    *session_slot(c) = ps;
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
