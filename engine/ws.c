/* SPDX-License-Identifier: MIT */
/*
 * ws: the WebSocket layer (contract in ws.h).
 */
#include "ws.h"

#include "http.h"
#include "log.h"
#include "probes.h"
#include "shard.h"
#include "ws_handshake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct ws_state) <= CONN_PRIV_SIZE, "struct ws_state must fit conn_priv");

enum ws_flag {
    WSF_COUNTED = 1u << 0,    /* counted in engine.nr_conns and the shard's conns gauge */
    WSF_IP_COUNTED = 1u << 1, /* counted for --max-conns-per-ip */
};

static struct ws_state *ws_of(struct conn *c)
{
    return conn_priv(c);
}

static const struct ws_handler *app_of(const struct conn *c)
{
    return container_of(conn_handler(c), struct ws_handler, conn);
}

/* ---- upgrade ------------------------------------------------------------------------------ */

static bool str_eq(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static bool origin_allowed(const struct config *cfg, struct http_str origin)
{
    if (!cfg->allowed_origins || origin.len == 0)
        return true;
    for (size_t i = 0; i < cfg->nr_allowed_origins; i++)
        if (str_eq(origin, cfg->allowed_origins[i]))
            return true;
    return false;
}

/* Admission: drain, capacity, per-address limit. Returns true when <c> may upgrade; counts
 * are recorded in <flags>. */
static bool admit(struct shard *s, struct conn *c, uint8_t *flags)
{
    struct engine *e = s->eng;
    if (s->draining) {
        http_refuse(s, c, 503, NULL, "draining");
        return false;
    }
    if (atomic_fetch_add_explicit(&e->nr_conns, 1, memory_order_relaxed) >= e->max_conns) {
        atomic_fetch_sub_explicit(&e->nr_conns, 1, memory_order_relaxed);
        http_refuse(s, c, 503, NULL, "server full");
        return false;
    }
    *flags |= WSF_COUNTED;
    STAT_ADD(s, conns, 1);
    if (e->cfg->max_conns_per_ip && c->peer_ip) {
        if (!ip_acquire(e, c->peer_ip)) {
            http_refuse(s, c, 429, NULL, "too many connections from this address");
            return false;
        }
        *flags |= WSF_IP_COUNTED;
    }
    return true;
}

/* Gives back what admit() counted. */
static void release_counts(struct shard *s, struct conn *c, uint8_t flags)
{
    if (flags & WSF_COUNTED) {
        atomic_fetch_sub_explicit(&s->eng->nr_conns, 1, memory_order_relaxed);
        STAT_SUB(s, conns, 1);
    }
    if (flags & WSF_IP_COUNTED)
        ip_release(s->eng, c->peer_ip);
}

static void arm_timer(struct shard *s, struct conn *c)
{
    const struct config *cfg = s->eng->cfg;
    uint32_t next = UINT32_MAX;
    if (cfg->ping_interval)
        next = ws_of(c)->next_ping;
    if (cfg->idle_timeout && c->last_rx + cfg->idle_timeout + 1 < next)
        next = c->last_rx + cfg->idle_timeout + 1;
    if (app_of(c)->due) {
        uint32_t due = app_of(c)->due(c);
        if (due < next)
            next = due;
    }
    if (next != UINT32_MAX)
        conn_timer_arm(s, c, next);
    else
        conn_timer_disarm(s, c);
}

int ws_upgrade(struct shard *s, struct conn *c, const struct http_request *req, uint8_t handler)
{
    enum ws_upgrade_check chk = ws_upgrade_check(req);
    if (chk == WS_UPGRADE_NOT_WEBSOCKET) {
        http_refuse(s, c, 426, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
                    "this endpoint needs a WebSocket upgrade");
        return -EPROTO;
    }
    if (chk == WS_UPGRADE_BAD_VERSION) {
        http_refuse(s, c, 426, "Sec-WebSocket-Version: 13\r\n",
                    "unsupported WebSocket version (13 only)");
        return -EPROTO;
    }
    if (chk != WS_UPGRADE_OK) {
        http_refuse(s, c, 400, NULL, "bad WebSocket upgrade request");
        return -EPROTO;
    }
    if (!origin_allowed(s->eng->cfg, req->origin)) {
        http_refuse(s, c, 403, NULL, "origin not allowed");
        return -EPROTO;
    }
    uint8_t flags = 0;
    if (!admit(s, c, &flags)) {
        release_counts(s, c, flags);
        return -EPROTO;
    }
    struct msg *m = msg_create(256, 0);
    if (!m) {
        release_counts(s, c, flags);
        conn_kill(s, c);
        return -ENOMEM;
    }
    m->len = (uint32_t)ws_response_101((char *)m->data, req->ws_key.p, req->ws_key.len);
    conn_enqueue(s, c, m);
    /* The HTTP handler lets go of its state here; from now on the area is ours. */
    conn_set_handler(c, handler);
    memset(conn_priv(c), 0, CONN_PRIV_SIZE);
    struct ws_state *ws = ws_of(c);
    ws->parser.server = true;
    ws->parser.max_message = s->eng->cfg->max_message;
    ws->flags = flags;
    ws->next_ping = s->now + s->eng->cfg->ping_interval;
    arm_timer(s, c);
    STAT_ADD(s, upgrades, 1);
    PROBE3(upgrade, s->id, c->idx, handler);
    return 0;
}

/* ---- handler ------------------------------------------------------------------------------ */

struct msg *ws_farewell(uint16_t code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_CONTROL_MAX - 2)
        rlen = WS_CONTROL_MAX - 2;
    size_t plen = code == WS_CLOSE_NO_STATUS ? 0 : 2 + rlen;
    struct msg *m = msg_create(2 + plen, 0);
    if (!m)
        return NULL;
    size_t h = ws_frame_header(m->data, WS_OP_CLOSE, true, plen, NULL);
    if (plen) {
        m->data[h] = (uint8_t)(code >> 8);
        m->data[h + 1] = (uint8_t)code;
        if (rlen)
            memcpy(m->data + h + 2, reason, rlen);
    }
    m->len = (uint32_t)(h + plen);
    return m;
}

void ws_on_close(struct shard *s, struct conn *c)
{
    struct ws_state *ws = ws_of(c);
    if (app_of(c)->on_close)
        app_of(c)->on_close(s, c);
    free(ws->ctl);
    ws->ctl = NULL;
    STAT_ADD(s, closes, 1);
    release_counts(s, c, ws->flags);
    ws->flags = 0;
}

void ws_on_timer(struct shard *s, struct conn *c)
{
    const struct config *cfg = s->eng->cfg;
    struct ws_state *ws = ws_of(c);
    if (cfg->idle_timeout && s->now - c->last_rx > cfg->idle_timeout) {
        conn_close(s, c, WS_CLOSE_GOING_AWAY, "idle timeout");
        return;
    }
    if (cfg->ping_interval && s->now >= ws->next_ping) {
        struct msg *m;
        if (app_of(c)->ping) {
            m = app_of(c)->ping();
        } else {
            m = msg_create(2, 0);
            if (m)
                m->len = (uint32_t)ws_frame_header(m->data, WS_OP_PING, true, 0, NULL);
        }
        if (m)
            conn_enqueue(s, c, m);
        ws->next_ping = s->now + cfg->ping_interval;
    }
    if (conn_is_open(c) && app_of(c)->tick && s->now >= app_of(c)->due(c))
        app_of(c)->tick(s, c);
    if (conn_is_open(c))
        arm_timer(s, c);
}

void ws_rearm(struct shard *s, struct conn *c)
{
    if (conn_is_open(c))
        arm_timer(s, c);
}

/*
 * --rate-limit: a token bucket per connection holding one second's worth (at least one
 * message), refilled with the shard's clock. Returns false when the message is over the limit.
 */
static bool rate_ok(struct shard *s, struct ws_state *ws)
{
    double rate = s->eng->cfg->rate_limit;
    if (rate <= 0)
        return true;
    uint32_t now_ms = (uint32_t)(s->now_ns / 1000000u);
    float burst = rate < 1 ? 1.0f : (float)rate;
    if (ws->rl_last_ms == 0) {
        ws->rl_tokens = burst;
    } else {
        ws->rl_tokens += (float)((double)(now_ms - ws->rl_last_ms) * rate / 1000.0);
        if (ws->rl_tokens > burst)
            ws->rl_tokens = burst;
    }
    ws->rl_last_ms = now_ms ? now_ms : 1;
    if (ws->rl_tokens < 1.0f)
        return false;
    ws->rl_tokens -= 1.0f;
    return true;
}

static void on_message(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p,
                       size_t len)
{
    STAT_ADD(s, msgs_in, 1);
    if (!rate_ok(s, ws_of(c))) {
        conn_close(s, c, WS_CLOSE_POLICY, "rate limit exceeded");
        return;
    }
    app_of(c)->on_message(s, c, opcode, p, len);
}

static void on_control(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p,
                       size_t len)
{
    struct msg *m;
    switch (opcode) {
    case WS_OP_PING:
        /* RFC 6455 §5.5.2: answer with a pong carrying the same application data. */
        m = msg_frame(WS_OP_PONG, p, len, NULL, 0);
        if (m)
            conn_enqueue(s, c, m);
        return;
    case WS_OP_CLOSE: {
        uint16_t code;
        uint16_t bad = ws_close_payload_check(p, len, &code);
        if (bad) {
            conn_close(s, c, bad, "bad close frame");
            return;
        }
        /* RFC 6455 §5.5.1: reply with a close frame, echoing the status code. */
        conn_close(s, c, code, NULL);
        return;
    }
    default: /* PONG: its arrival already refreshed last_rx. */
        return;
    }
}

static void on_chunk(struct shard *s, struct conn *c, const struct ws_chunk *ch)
{
    struct ws_state *ws = ws_of(c);
    if (ch->control) {
        if (ch->frame_start && ch->frame_end) {
            on_control(s, c, ch->opcode, ch->data, ch->len);
            return;
        }
        /* A control frame split across receives: at most 125 bytes set aside. */
        if (ch->frame_start) {
            free(ws->ctl);
            ws->ctl = malloc(WS_CONTROL_MAX);
            ws->ctl_len = 0;
            if (!ws->ctl) {
                conn_close(s, c, WS_CLOSE_INTERNAL, "out of memory");
                return;
            }
        }
        memcpy(ws->ctl + ws->ctl_len, ch->data, ch->len);
        ws->ctl_len = (uint8_t)(ws->ctl_len + ch->len);
        if (ch->frame_end) {
            uint8_t *ctl = ws->ctl;
            ws->ctl = NULL;
            on_control(s, c, ch->opcode, ctl, ws->ctl_len);
            free(ctl);
        }
        return;
    }
    if (ch->msg_start && ch->msg_end) {
        /* The whole message in this receive buffer: hand it on in place. */
        on_message(s, c, ch->opcode, ch->data, ch->len);
        return;
    }
    if (ch->len || !c->rx) {
        int r = conn_rx_append(c, ch->data, ch->len, (size_t)s->eng->cfg->max_message + 1);
        if (r < 0) {
            conn_close(s, c, WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
    }
    if (ch->msg_end) {
        struct rxbuf *rx = conn_rx_take(c);
        on_message(s, c, ch->opcode, rx->data, rx->len);
        free(rx);
    }
}

void ws_on_input(struct shard *s, struct conn *c, uint8_t *p, size_t len)
{
    struct ws_state *ws = ws_of(c);
    while (conn_is_open(c)) {
        struct ws_chunk ch;
        bool got = false;
        ssize_t n = ws_parser_feed(&ws->parser, p, len, &ch, &got);
        if (n < 0) {
            log_debug("shard %u: conn %u: bad frame (%d)", s->id, c->idx, (int)n);
            conn_close(s, c, ws_close_code_for_error((int)n), "protocol error");
            return;
        }
        p += n;
        len -= (size_t)n;
        if (got)
            on_chunk(s, c, &ch);
        else if (n == 0)
            return;
    }
}
