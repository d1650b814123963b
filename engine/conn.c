/* SPDX-License-Identifier: MIT */
/*
 * conn: one connection's life on its shard.
 *
 *   accept -> HTTP (request head) -> WS (frames) -> CLOSING (close frame or refusal queued,
 *   then our FIN, then the peer's EOF) -> DEAD (requests cancelled, descriptor closed) -> FREE
 *
 * Receive: a multishot recv picks buffers from the shard's ring; bytes are handled while the
 * completion is processed and the buffer goes straight back, so only a partial request head,
 * a partial control frame or a fragmented message is ever copied aside (struct rxbuf).
 *
 * Send: a queue of references to shared, pre-encoded frames; one send in flight per
 * connection. When it completes, everything queued meanwhile leaves in the next send: small
 * frames are copied into one contiguous buffer (a contiguous send is cheaper in the kernel
 * than a vectored one, PLATFORM.md section 7), a large frame goes out from the shared msg
 * itself. That self-clocking is the flush policy: under light load each frame leaves at once,
 * under heavy load the frames that piled up during a send share the next one.
 */
#include "log.h"
#include "probes.h"
#include "shard.h"
#include "tls.h"
#include "ws_handshake.h"
#include "xshard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/*
 * Closing: once everything owed is sent (close frame, FIN), the peer has CLOSE_LINGER_S seconds
 * to close its side (CLOSE_LINGER_DRAIN_S while draining). While frames are still going out, a
 * closing connection keeps its slot for up to CLOSE_FLUSH_S seconds (the drain's flush time), so a
 * drain delivers what was queued. The shard clock counts whole seconds, so every deadline gets one
 * more second than asked and a timer never fires early.
 */
#define CLOSE_LINGER_S       2
#define CLOSE_LINGER_DRAIN_S 0
#define CLOSE_FLUSH_S        10
/* Free send buffers kept per shard; more are returned to the allocator. */
#define SENDBUF_KEEP 64

/* A draining broker waits less for peers to close their side: it is about to exit anyway. */
static uint32_t linger_s(const struct shard *s)
{
    return s->draining ? CLOSE_LINGER_DRAIN_S : CLOSE_LINGER_S;
}

/* ---- pools ---------------------------------------------------------------------------- */

static struct sq_node *node_get(struct shard *s)
{
    struct sq_node *n = s->node_free;
    if (n) {
        s->node_free = n->next;
        return n;
    }
    return malloc(sizeof(*n));
}

static void node_put(struct shard *s, struct sq_node *n)
{
    n->next = s->node_free;
    s->node_free = n;
}

/* A send buffer of at least <need> bytes. */
static struct sendbuf *sendbuf_get(struct shard *s, size_t need)
{
    struct sendbuf *b;
    if (need > SENDBUF_CAP) {
        b = malloc(sizeof(*b) + need);
        if (b)
            b->cap = (uint32_t)need;
        return b;
    }
    b = s->sendbuf_free;
    if (b) {
        s->sendbuf_free = b->next_free;
        s->nr_sendbuf_free--;
        return b;
    }
    b = malloc(sizeof(*b) + SENDBUF_CAP);
    if (b)
        b->cap = SENDBUF_CAP;
    return b;
}

static void sendbuf_put(struct shard *s, struct sendbuf *b)
{
    if (b->cap != SENDBUF_CAP || s->nr_sendbuf_free >= SENDBUF_KEEP) {
        free(b);
        return;
    }
    b->next_free = s->sendbuf_free;
    s->sendbuf_free = b;
    s->nr_sendbuf_free++;
}

void conn_pools_fini(struct shard *s)
{
    while (s->node_free) {
        struct sq_node *n = s->node_free;
        s->node_free = n->next;
        free(n);
    }
    while (s->sendbuf_free) {
        struct sendbuf *b = s->sendbuf_free;
        s->sendbuf_free = b->next_free;
        free(b);
    }
    s->nr_sendbuf_free = 0;
}

/* ---- requests ------------------------------------------------------------------------- */

static void arm_recv(struct shard *s, struct conn *c)
{
    struct io_uring_sqe *sqe = ring_sqe(&s->ring);
    io_uring_prep_recv_multishot(sqe, (int)c->idx, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = s->bufs.bgid;
    io_uring_sqe_set_data64(sqe, ring_ud(OP_RECV, c->gen, c->idx));
    c->flags |= CF_RECV_ARMED;
}

static void submit_send(struct shard *s, struct conn *c, const uint8_t *p, size_t len)
{
    struct io_uring_sqe *sqe = ring_sqe(&s->ring);
    io_uring_prep_send(sqe, (int)c->idx, p, len, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ring_ud(OP_SEND, c->gen, c->idx));
    c->flags |= CF_SEND_BUSY;
}

static void submit_shutdown(struct shard *s, struct conn *c)
{
    struct io_uring_sqe *sqe = ring_sqe(&s->ring);
    io_uring_prep_shutdown(sqe, (int)c->idx, SHUT_WR);
    /*
     * The kernel runs a shutdown from io-wq and resolves the descriptor slot only there, so
     * the slot must not be closed (and handed to a new connection) before it completes: a
     * late shutdown would half-close the new connection. try_finish waits for it.
     */
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ring_ud(OP_SHUTDOWN, c->gen, c->idx));
    c->flags |= CF_SHUT_SENT | CF_SHUT_BUSY;
}

/* The slot is freed when every request of the connection has completed. */
static void try_finish(struct shard *s, struct conn *c)
{
    /* Still linked in the flush FIFO: conn_flush finishes it when it pops it, since a reused
     * slot must not inherit the link. */
    if (c->state != CONN_DEAD ||
        (c->flags & (CF_RECV_ARMED | CF_SEND_BUSY | CF_IN_FLUSH | CF_SHUT_BUSY)))
        return;
    struct io_uring_sqe *sqe = ring_sqe(&s->ring);
    io_uring_prep_close_direct(sqe, c->idx);
    io_uring_sqe_set_data64(sqe, ring_ud(OP_CLOSE, c->gen, c->idx));
    /* Not FREE until the close completes: the descriptor slot is still the kernel's. */
    c->state = CONN_RELEASING;
}

/* ---- TLS handshake admission ------------------------------------------------------------ */

/*
 * At most --tls-max-handshakes TLS handshakes run at once per shard. Each holds ~40 KiB of
 * mbedtls state until it completes (then the record layer is offloaded and that memory goes),
 * so without a bound a reconnect storm costs 40 KiB times the storm, and the CPU goes to all of
 * them at once, finishing none early, instead of to the first ones. A connection past the limit
 * waits in a FIFO with its receive not armed: its ClientHello stays in the kernel's socket
 * buffer. Its handshake timeout runs from accept, the wait included.
 */
static void hs_begin(struct shard *s, struct conn *c)
{
    s->hs_active++;
    STAT_ADD(s, tls_handshaking, 1);
    c->flags |= CF_TLS_HS;
    arm_recv(s, c);
}

static void hs_wait(struct shard *s, struct conn *c)
{
    c->room_next = NULL;
    c->room_prev = s->hs_wait_tail;
    if (s->hs_wait_tail)
        s->hs_wait_tail->room_next = c;
    else
        s->hs_wait_head = c;
    s->hs_wait_tail = c;
    s->hs_waiting++;
    STAT_ADD(s, tls_waiting, 1);
    c->flags |= CF_TLS_WAIT;
}

static void hs_unwait(struct shard *s, struct conn *c)
{
    if (c->room_prev)
        c->room_prev->room_next = c->room_next;
    else
        s->hs_wait_head = c->room_next;
    if (c->room_next)
        c->room_next->room_prev = c->room_prev;
    else
        s->hs_wait_tail = c->room_prev;
    c->room_next = c->room_prev = NULL;
    s->hs_waiting--;
    STAT_SUB(s, tls_waiting, 1);
    c->flags &= (uint16_t)~CF_TLS_WAIT;
}

/* The connection's handshake is over (established, failed or gone), or it never started. */
static void hs_end(struct shard *s, struct conn *c)
{
    if (c->flags & CF_TLS_HS) {
        c->flags &= (uint16_t)~CF_TLS_HS;
        s->hs_active--;
        STAT_SUB(s, tls_handshaking, 1);
    } else if (c->flags & CF_TLS_WAIT) {
        hs_unwait(s, c);
    }
}

void conn_admit_handshakes(struct shard *s)
{
    unsigned max = s->eng->cfg->tls_max_handshakes;
    while (s->hs_wait_head && (max == 0 || s->hs_active < max)) {
        struct conn *c = s->hs_wait_head;
        hs_unwait(s, c);
        hs_begin(s, c);
    }
}

/* ---- accept --------------------------------------------------------------------------- */

void conn_accepted(struct shard *s, uint32_t idx, bool tls)
{
    struct conn *c = &s->conns[idx];
    uint32_t gen = (c->gen + 1) & RING_GEN_MASK;
    if (c->state != CONN_FREE) {
        /* The close of the slot's last connection completed from io-wq and its completion is
         * still to come (it will be stale): count that connection gone now. */
        log_debug("shard %u: slot %u reused before its close completed", s->id, idx);
        s->nr_live--;
    }
    memset(c, 0, sizeof(*c));
    c->gen = gen;
    c->idx = idx;
    c->state = CONN_HTTP;
    c->parser.server = true;
    c->parser.max_message = s->eng->cfg->max_message;
    c->last_rx = s->now;
    s->nr_live++;
    if (idx >= s->slots_hwm)
        s->slots_hwm = idx + 1;
    STAT_ADD(s, accepted, 1);
    PROBE2(accept, s->id, idx);
    timer_arm(&s->wheel, &c->timer, s->now + s->eng->cfg->handshake_timeout + 1);
    if (!tls) {
        arm_recv(s, c);
        return;
    }
    c->tls = tls_session_create(s->tls_cfg);
    if (!c->tls) {
        timer_disarm(&s->wheel, &c->timer);
        c->state = CONN_DEAD;
        try_finish(s, c);
        return;
    }
    unsigned max = s->eng->cfg->tls_max_handshakes;
    if (max && (s->hs_active >= max || s->hs_wait_head))
        hs_wait(s, c);
    else
        hs_begin(s, c);
}

void conn_handle_shutdown(struct shard *s, struct conn *c)
{
    c->flags &= (uint16_t)~CF_SHUT_BUSY;
    try_finish(s, c);
}

void conn_handle_close(struct shard *s, struct conn *c)
{
    c->state = CONN_FREE;
    s->nr_live--;
}

/* ---- send queue ----------------------------------------------------------------------- */

const uint64_t LAT_BOUNDS_NS[LAT_NR_BUCKETS - 1] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000,
};

/* A publish's frame is leaving: record how long it took from receipt. */
static void observe_latency(struct shard *s, const struct msg *m)
{
    if (!m->t_recv_ns)
        return;
    uint64_t d = s->flush_ns > m->t_recv_ns ? s->flush_ns - m->t_recv_ns : 0;
    unsigned b = 0;
    while (b < LAT_NR_BUCKETS - 1 && d > LAT_BOUNDS_NS[b])
        b++;
    STAT_ADD(s, lat_buckets[b], 1);
    STAT_ADD(s, lat_sum_ns, d);
}

static void schedule_flush(struct shard *s, struct conn *c)
{
    if (c->flags & (CF_IN_FLUSH | CF_SEND_BUSY))
        return;
    c->flags |= CF_IN_FLUSH;
    c->flush_next = NULL;
    if (s->flush_tail)
        s->flush_tail->flush_next = c;
    else
        s->flush_head = c;
    s->flush_tail = c;
    s->nr_flush++;
}

static void queue_append(struct shard *s, struct conn *c, struct msg *m)
{
    struct sq_node *n = node_get(s);
    if (!n) {
        msg_unref(m);
        return;
    }
    n->next = NULL;
    n->msg = m;
    if (c->sq_tail)
        c->sq_tail->next = n;
    else
        c->sq_head = n;
    c->sq_tail = n;
    c->queued += m->len;
    STAT_ADD(s, queued_bytes, m->len);
    schedule_flush(s, c);
}

/* Drops the oldest queued frame. Returns its length. */
static uint32_t queue_drop_head(struct shard *s, struct conn *c)
{
    struct sq_node *n = c->sq_head;
    uint32_t len = n->msg->len;
    c->sq_head = n->next;
    if (!c->sq_head)
        c->sq_tail = NULL;
    c->queued -= len;
    STAT_SUB(s, queued_bytes, len);
    msg_unref(n->msg);
    node_put(s, n);
    return len;
}

static void queue_clear(struct shard *s, struct conn *c)
{
    while (c->sq_head)
        queue_drop_head(s, c);
}

void conn_enqueue(struct shard *s, struct conn *c, struct msg *m)
{
    if (c->state == CONN_DEAD || (c->flags & CF_CLOSE_QUEUED)) {
        msg_unref(m);
        return;
    }
    /*
     * The slow-consumer policy acts when the queue, not counting the send in flight, would
     * pass --send-queue. A single message always fits an empty queue, so a limit below
     * --max-message never stops an echo of a large message.
     */
    uint64_t limit = s->eng->cfg->send_queue;
    if (c->sq_head && (uint64_t)c->queued + m->len > limit) {
        if (s->eng->cfg->slow_consumer == SLOW_CLOSE) {
            STAT_ADD(s, slow_close, 1);
            PROBE3(slow_consumer, s->id, c->idx, 1);
            msg_unref(m);
            queue_clear(s, c);
            conn_close_ws(s, c, WS_CLOSE_POLICY, "slow consumer");
            return;
        }
        unsigned dropped = 0;
        while (c->sq_head && (uint64_t)c->queued + m->len > limit) {
            queue_drop_head(s, c);
            dropped++;
        }
        STAT_ADD(s, slow_drop, dropped);
        PROBE3(slow_consumer, s->id, c->idx, 2);
    }
    queue_append(s, c, m);
}

/* Nothing left to send: finish a close in progress. */
static void send_idle(struct shard *s, struct conn *c)
{
    if (c->flags & CF_PEER_EOF) {
        conn_kill(s, c);
    } else if (c->state == CONN_CLOSING && (c->flags & CF_CLOSE_QUEUED) &&
               !(c->flags & CF_SHUT_SENT)) {
        submit_shutdown(s, c);
        /* Everything is out: the peer now has CLOSE_LINGER_S to close its side. */
        timer_arm(&s->wheel, &c->timer, s->now + linger_s(s) + 1);
    }
}

/* Frames per TLS send at most, and plaintext bytes per send beyond the first frame. */
#define TLS_IOV_MAX     64
#define TLS_FLUSH_BYTES 65536

/*
 * TLS: seal the queued frames for this recipient, straight into one send buffer, behind
 * whatever the session has to say on its own (handshake flight, alerts, close_notify).
 */
static void conn_send_tls(struct shard *s, struct conn *c)
{
    if (!c->sq_head && (c->flags & CF_CLOSE_QUEUED) && !(c->flags & CF_TLS_NOTIFY)) {
        c->flags |= CF_TLS_NOTIFY;
        tls_session_close(c->tls);
    }
    size_t pend = tls_session_pending(c->tls);
    struct iovec iov[TLS_IOV_MAX];
    int n = 0;
    size_t plain = 0;
    if (tls_session_established(c->tls)) {
        for (struct sq_node *q = c->sq_head; q && n < TLS_IOV_MAX; q = q->next) {
            if (n && plain + q->msg->len > TLS_FLUSH_BYTES)
                break;
            iov[n].iov_base = q->msg->data;
            iov[n].iov_len = q->msg->len;
            plain += q->msg->len;
            n++;
        }
    }
    if (!n && !pend) {
        send_idle(s, c);
        return;
    }
    size_t bound = pend + (n ? tls_session_seal_bound(c->tls, plain) : 0);
    struct sendbuf *b = sendbuf_get(s, bound);
    if (!b) {
        conn_kill(s, c);
        return;
    }
    ssize_t w = n ? tls_session_seal(c->tls, iov, n, b->data, b->cap)
                  : (ssize_t)tls_session_take(c->tls, b->data, b->cap);
    if (w <= 0) {
        log_debug("shard %u: conn %u: TLS seal failed: %s", s->id, c->idx,
                  tls_reason_name(tls_session_reason(c->tls)));
        sendbuf_put(s, b);
        conn_kill(s, c);
        return;
    }
    for (int i = 0; i < n; i++) {
        observe_latency(s, c->sq_head->msg);
        queue_drop_head(s, c);
    }
    b->len = (uint32_t)w;
    c->tx_off = 0;
    c->tx_buf = b;
    STAT_ADD(s, msgs_out, (uint64_t)n);
    STAT_ADD(s, sends, 1);
    submit_send(s, c, b->data, b->len);
}

/* Starts the next send of <c>: everything queued, in one send. */
static void conn_send(struct shard *s, struct conn *c)
{
    if (c->tls) {
        conn_send_tls(s, c);
        return;
    }
    struct sq_node *n = c->sq_head;
    if (!n) {
        send_idle(s, c);
        return;
    }
    c->tx_off = 0;
    if (!n->next || n->msg->len >= SENDBUF_CAP / 2) {
        /* One frame, or a large one: send from the shared msg, no copy. */
        c->tx_msg = n->msg;
        observe_latency(s, c->tx_msg);
        c->sq_head = n->next;
        if (!c->sq_head)
            c->sq_tail = NULL;
        c->queued -= c->tx_msg->len;
        STAT_SUB(s, queued_bytes, c->tx_msg->len);
        node_put(s, n);
        STAT_ADD(s, msgs_out, 1);
        submit_send(s, c, c->tx_msg->data, c->tx_msg->len);
    } else {
        struct sendbuf *b = sendbuf_get(s, SENDBUF_CAP);
        if (!b) {
            conn_kill(s, c);
            return;
        }
        b->len = 0;
        unsigned frames = 0;
        while (c->sq_head && b->len + c->sq_head->msg->len <= SENDBUF_CAP) {
            struct msg *m = c->sq_head->msg;
            observe_latency(s, m);
            memcpy(b->data + b->len, m->data, m->len);
            b->len += m->len;
            queue_drop_head(s, c);
            frames++;
        }
        c->tx_buf = b;
        STAT_ADD(s, msgs_out, frames);
        submit_send(s, c, b->data, b->len);
    }
    STAT_ADD(s, sends, 1);
}

bool conn_flush(struct shard *s, unsigned budget)
{
    if (s->flush_head)
        s->flush_ns = mono_ns();
    while (s->flush_head && budget) {
        struct conn *c = s->flush_head;
        s->flush_head = c->flush_next;
        if (!s->flush_head)
            s->flush_tail = NULL;
        s->nr_flush--;
        c->flags &= (uint16_t)~CF_IN_FLUSH;
        if (c->state == CONN_DEAD) {
            try_finish(s, c);
            continue;
        }
        if (c->flags & CF_SEND_BUSY)
            continue;
        conn_send(s, c);
        budget--;
    }
    return s->flush_head != NULL;
}

static void release_tx(struct shard *s, struct conn *c)
{
    if (c->tx_msg) {
        msg_unref(c->tx_msg);
        c->tx_msg = NULL;
    }
    if (c->tx_buf) {
        sendbuf_put(s, c->tx_buf);
        c->tx_buf = NULL;
    }
}

/* Frees what a connection holds besides the send in flight (the kernel may still read that). */
static void free_buffers(struct shard *s, struct conn *c)
{
    queue_clear(s, c);
    free(c->rx);
    c->rx = NULL;
    free(c->ctl);
    c->ctl = NULL;
    hs_end(s, c);
    tls_session_destroy(c->tls);
    c->tls = NULL;
}

void conn_release_memory(struct shard *s, struct conn *c)
{
    free_buffers(s, c);
    release_tx(s, c);
}

void conn_handle_send(struct shard *s, struct conn *c, int res)
{
    c->flags &= (uint16_t)~CF_SEND_BUSY;
    if (res <= 0 && c->state != CONN_DEAD)
        log_debug("shard %u: conn %u: send failed (%d)", s->id, c->idx, res);
    if (res <= 0 || c->state == CONN_DEAD) {
        release_tx(s, c);
        conn_kill(s, c);
        try_finish(s, c);
        return;
    }
    STAT_ADD(s, bytes_out, (uint64_t)res);
    const uint8_t *p = c->tx_msg ? c->tx_msg->data : c->tx_buf->data;
    uint32_t total = c->tx_msg ? c->tx_msg->len : c->tx_buf->len;
    c->tx_off += (uint32_t)res;
    if (c->tx_off < total) {
        /* A short send: the socket buffer filled. The rest goes first, as it must. */
        submit_send(s, c, p + c->tx_off, total - c->tx_off);
        return;
    }
    release_tx(s, c);
    /*
     * Not now: at the end of this loop turn, once every publish of the turn has been queued,
     * so that the next send carries all of them (PLATFORM.md section 7: frames per send are
     * the CPU and the latency at load).
     */
    schedule_flush(s, c);
}

/* ---- closing -------------------------------------------------------------------------- */

static void enter_closing(struct shard *s, struct conn *c)
{
    room_leave(s, c);
    c->state = CONN_CLOSING;
    c->next_ping = s->now; /* closing since, in CLOSING */
    timer_arm(&s->wheel, &c->timer, s->now + linger_s(s) + 1);
}

void conn_close_ws(struct shard *s, struct conn *c, uint16_t code, const char *reason)
{
    if (c->state != CONN_WS)
        return;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_CONTROL_MAX - 2)
        rlen = WS_CONTROL_MAX - 2;
    size_t plen = code == WS_CLOSE_NO_STATUS ? 0 : 2 + rlen;
    struct msg *m = msg_create(2 + plen, 0);
    enter_closing(s, c);
    if (!m) {
        conn_kill(s, c);
        return;
    }
    size_t h = ws_frame_header(m->data, WS_OP_CLOSE, true, plen, NULL);
    if (plen) {
        m->data[h] = (uint8_t)(code >> 8);
        m->data[h + 1] = (uint8_t)code;
        if (rlen)
            memcpy(m->data + h + 2, reason, rlen);
    }
    m->len = (uint32_t)(h + plen);
    queue_append(s, c, m);
    c->flags |= CF_CLOSE_QUEUED;
    PROBE3(close, s->id, c->idx, code);
}

void conn_close_http(struct shard *s, struct conn *c, struct msg *m)
{
    enter_closing(s, c);
    queue_append(s, c, m);
    c->flags |= CF_CLOSE_QUEUED;
}

void conn_kill(struct shard *s, struct conn *c)
{
    if (c->state == CONN_FREE || c->state >= CONN_DEAD)
        return;
    if (c->state == CONN_WS || c->state == CONN_CLOSING)
        room_leave(s, c);
    if (c->state == CONN_WS)
        PROBE3(close, s->id, c->idx, 0);
    c->state = CONN_DEAD;
    timer_disarm(&s->wheel, &c->timer);
    free_buffers(s, c);
    if (c->flags & CF_COUNTED) {
        atomic_fetch_sub_explicit(&s->eng->nr_conns, 1, memory_order_relaxed);
        STAT_SUB(s, conns, 1);
    }
    if (c->flags & CF_IP_COUNTED)
        ip_release(s->eng, c->peer_ip);
    c->flags &= (uint16_t) ~(CF_COUNTED | CF_IP_COUNTED);
    /*
     * Cancel by user_data, which carries the generation, never by descriptor slot: a
     * cancellation can run late (from io-wq), after this slot was closed and handed to a new
     * connection, and must not hit that one's requests.
     */
    if ((c->flags & (CF_RECV_ARMED | CF_SEND_BUSY)) && !(c->flags & CF_CANCEL_SENT)) {
        static const unsigned ops[] = {OP_RECV, OP_SEND};
        static const uint16_t busy[] = {CF_RECV_ARMED, CF_SEND_BUSY};
        for (unsigned i = 0; i < 2; i++) {
            if (!(c->flags & busy[i]))
                continue;
            struct io_uring_sqe *sqe = ring_sqe(&s->ring);
            io_uring_prep_cancel64(sqe, ring_ud(ops[i], c->gen, c->idx), 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data64(sqe, ring_ud(OP_CANCEL, c->gen, c->idx));
        }
        c->flags |= CF_CANCEL_SENT;
    }
    try_finish(s, c);
}

void conn_arm_ws_timer(struct shard *s, struct conn *c)
{
    const struct config *cfg = s->eng->cfg;
    uint32_t next = UINT32_MAX;
    if (cfg->ping_interval)
        next = c->next_ping;
    if (cfg->idle_timeout && c->last_rx + cfg->idle_timeout + 1 < next)
        next = c->last_rx + cfg->idle_timeout + 1;
    if (next != UINT32_MAX)
        timer_arm(&s->wheel, &c->timer, next);
    else
        timer_disarm(&s->wheel, &c->timer);
}

void conn_on_timer(struct timer *t, void *arg)
{
    struct shard *s = arg;
    struct conn *c = conn_of_timer(t);
    const struct config *cfg = s->eng->cfg;
    switch (c->state) {
    case CONN_HTTP:
        STAT_ADD(s, handshakes_failed, 1);
        log_debug("shard %u: conn %u: handshake timeout", s->id, c->idx);
        conn_kill(s, c);
        return;
    case CONN_WS:
        if (cfg->idle_timeout && s->now - c->last_rx > cfg->idle_timeout) {
            conn_close_ws(s, c, WS_CLOSE_GOING_AWAY, "idle timeout");
            return;
        }
        if (cfg->ping_interval && s->now >= c->next_ping) {
            struct msg *m = msg_create(2, 0);
            if (m) {
                m->len = (uint32_t)ws_frame_header(m->data, WS_OP_PING, true, 0, NULL);
                conn_enqueue(s, c, m);
            }
            c->next_ping = s->now + cfg->ping_interval;
        }
        conn_arm_ws_timer(s, c);
        return;
    case CONN_CLOSING:
        /* Still sending what it is owed, and not for too long: let it finish. */
        if ((c->sq_head || (c->flags & CF_SEND_BUSY)) && s->now - c->next_ping <= CLOSE_FLUSH_S) {
            timer_arm(&s->wheel, &c->timer, s->now + 1);
            return;
        }
        conn_kill(s, c);
        return;
    default:
        conn_kill(s, c);
        return;
    }
}

/* ---- receive -------------------------------------------------------------------------- */

static struct rxbuf *rx_append(struct rxbuf *rx, const uint8_t *p, size_t len, size_t limit)
{
    size_t have = rx ? rx->len : 0;
    if (have + len > limit)
        return NULL;
    if (!rx || rx->cap < have + len) {
        size_t cap = rx ? rx->cap : 0;
        if (cap < 256)
            cap = 256;
        while (cap < have + len)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        struct rxbuf *n = realloc(rx, sizeof(*n) + cap);
        if (!n)
            return NULL;
        if (!rx)
            n->len = 0;
        n->cap = (uint32_t)cap;
        rx = n;
    }
    memcpy(rx->data + rx->len, p, len);
    rx->len += (uint32_t)len;
    return rx;
}

/*
 * --rate-limit: a token bucket per connection holding one second's worth (at least one
 * message), refilled with the shard's clock. Returns false when the message is over the limit.
 */
static bool rate_ok(struct shard *s, struct conn *c)
{
    double rate = s->eng->cfg->rate_limit;
    if (rate <= 0)
        return true;
    uint32_t now_ms = (uint32_t)(s->now_ns / 1000000u);
    float burst = rate < 1 ? 1.0f : (float)rate;
    if (c->rl_last_ms == 0) {
        c->rl_tokens = burst;
    } else {
        c->rl_tokens += (float)((double)(now_ms - c->rl_last_ms) * rate / 1000.0);
        if (c->rl_tokens > burst)
            c->rl_tokens = burst;
    }
    c->rl_last_ms = now_ms ? now_ms : 1;
    if (c->rl_tokens < 1.0f)
        return false;
    c->rl_tokens -= 1.0f;
    return true;
}

static void on_message(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p,
                       size_t len)
{
    STAT_ADD(s, msgs_in, 1);
    if (!rate_ok(s, c)) {
        conn_close_ws(s, c, WS_CLOSE_POLICY, "rate limit exceeded");
        return;
    }
    if (c->flags & CF_ECHO) {
        struct msg *m = msg_frame(opcode, p, len, NULL, 0);
        if (!m) {
            conn_close_ws(s, c, WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
        conn_enqueue(s, c, m);
        return;
    }
    if (c->room && room_publish(s, c, opcode, p, len) < 0)
        conn_close_ws(s, c, WS_CLOSE_INTERNAL, "out of memory");
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
        c->flags |= CF_PEER_CLOSED;
        if (bad) {
            conn_close_ws(s, c, bad, "bad close frame");
            return;
        }
        /* RFC 6455 §5.5.1: reply with a close frame, echoing the status code. */
        conn_close_ws(s, c, code, NULL);
        return;
    }
    default: /* PONG: its arrival already refreshed last_rx. */
        return;
    }
}

static void on_chunk(struct shard *s, struct conn *c, const struct ws_chunk *ch)
{
    if (ch->control) {
        if (ch->frame_start && ch->frame_end) {
            on_control(s, c, ch->opcode, ch->data, ch->len);
            return;
        }
        /* A control frame split across receives: at most 125 bytes set aside. */
        if (ch->frame_start) {
            free(c->ctl);
            c->ctl = malloc(WS_CONTROL_MAX);
            c->ctl_len = 0;
            if (!c->ctl) {
                conn_close_ws(s, c, WS_CLOSE_INTERNAL, "out of memory");
                return;
            }
        }
        memcpy(c->ctl + c->ctl_len, ch->data, ch->len);
        c->ctl_len = (uint8_t)(c->ctl_len + ch->len);
        if (ch->frame_end) {
            uint8_t *ctl = c->ctl;
            c->ctl = NULL;
            on_control(s, c, ch->opcode, ctl, c->ctl_len);
            free(ctl);
        }
        return;
    }
    if (ch->msg_start && ch->msg_end) {
        /* The whole message in this receive buffer: publish it in place. */
        on_message(s, c, ch->opcode, ch->data, ch->len);
        return;
    }
    if (ch->len || !c->rx) {
        struct rxbuf *rx = rx_append(c->rx, ch->data, ch->len, s->eng->cfg->max_message + 1);
        if (!rx) {
            conn_close_ws(s, c, WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
        c->rx = rx;
    }
    if (ch->msg_end) {
        struct rxbuf *rx = c->rx;
        c->rx = NULL;
        on_message(s, c, ch->opcode, rx->data, rx->len);
        free(rx);
    }
}

static void ws_input(struct shard *s, struct conn *c, uint8_t *p, size_t len)
{
    while (c->state == CONN_WS) {
        struct ws_chunk ch;
        bool got = false;
        ssize_t n = ws_parser_feed(&c->parser, p, len, &ch, &got);
        if (n < 0) {
            log_debug("shard %u: conn %u: bad frame (%d)", s->id, c->idx, (int)n);
            conn_close_ws(s, c, ws_close_code_for_error((int)n), "protocol error");
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

static void http_input(struct shard *s, struct conn *c, uint8_t *p, size_t len)
{
    struct rxbuf *rx = NULL;
    if (c->rx) {
        /* The head arrived in pieces: gather it (HTTP_HEAD_MAX bounds it). */
        rx = rx_append(c->rx, p, len, HTTP_HEAD_MAX + 1);
        if (!rx) {
            http_refuse(s, c, 431, "request head too large");
            return;
        }
        c->rx = NULL;
        p = rx->data;
        len = rx->len;
    }
    int r = http_handle(s, c, p, len);
    if (r == -EAGAIN) {
        if (rx) {
            c->rx = rx;
        } else {
            c->rx = rx_append(NULL, p, len, HTTP_HEAD_MAX + 1);
            if (!c->rx)
                http_refuse(s, c, 431, "request head too large");
        }
        return;
    }
    /* Frames pipelined right behind the head. */
    if (r > 0 && c->state == CONN_WS && (size_t)r < len)
        ws_input(s, c, p + r, len - (size_t)r);
    free(rx);
}

static void plain_input(struct shard *s, struct conn *c, uint8_t *p, size_t len)
{
    if (c->state == CONN_HTTP)
        http_input(s, c, p, len);
    else if (c->state == CONN_WS)
        ws_input(s, c, p, len);
    /* CLOSING: what the peer sends after our close is read and dropped (RFC 6455 §1.4). */
}

/*
 * TLS: decrypt in place and hand each plaintext chunk on. The session may have something to
 * send on its own afterwards (a handshake flight, an alert, a close_notify answer).
 */
static void tls_input(struct shard *s, struct conn *c, uint8_t *p, size_t len)
{
    struct tls_input in = {.data = p, .len = len};
    for (;;) {
        const uint8_t *plain;
        ssize_t n = tls_session_read(c->tls, &in, &plain);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            /* close_notify (0) or a failure: send what the session owes, then close. */
            if (n < 0) {
                log_debug("shard %u: conn %u: TLS: %s", s->id, c->idx,
                          tls_reason_name(tls_session_reason(c->tls)));
                if (c->state == CONN_HTTP)
                    STAT_ADD(s, handshakes_failed, 1);
            }
            if (c->state == CONN_WS || c->state == CONN_HTTP)
                enter_closing(s, c);
            c->flags |= CF_PEER_EOF | CF_TLS_NOTIFY;
            break;
        }
        /* Decrypted in place inside our receive buffer (or the session's): writable. */
        plain_input(s, c, (uint8_t *)(uintptr_t)plain, (size_t)n);
    }
    if ((c->flags & CF_TLS_HS) && tls_session_established(c->tls))
        hs_end(s, c); /* offloaded by now: the next one may start */
    if (tls_session_pending(c->tls) || (c->flags & CF_PEER_EOF))
        schedule_flush(s, c);
}

void conn_handle_recv(struct shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->flags &= (uint16_t)~CF_RECV_ARMED;
    if (res > 0) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *p = bufring_addr(&s->bufs, bid);
        STAT_ADD(s, bytes_in, (uint64_t)res);
        c->last_rx = s->now;
        if (c->tls)
            tls_input(s, c, p, (size_t)res);
        else
            plain_input(s, c, p, (size_t)res);
        /* CLOSING: what the peer sends after our close is read and dropped (RFC 6455 §1.4). */
        bufring_recycle(&s->bufs, bid);
        if (!(c->flags & CF_RECV_ARMED) && c->state <= CONN_CLOSING)
            arm_recv(s, c);
    } else if (res == -ENOBUFS && c->state <= CONN_CLOSING) {
        /* Every buffer is in use for a moment; they come back within this loop turn. */
        if (!(c->flags & CF_RECV_ARMED))
            arm_recv(s, c);
    } else if (res == 0 && (c->state == CONN_WS || c->state == CONN_CLOSING) &&
               (c->sq_head || (c->flags & CF_SEND_BUSY))) {
        /*
         * The peer half-closed with frames still owed to it (a close reply, say, when its
         * close frame and FIN came in one segment): it can still read, so flush them, then
         * close (RFC 6455 §5.5.1). The linger timer bounds the wait.
         */
        if (c->state == CONN_WS)
            enter_closing(s, c);
        c->flags |= CF_PEER_EOF;
    } else if (res <= 0) {
        /* EOF, reset or cancellation. */
        if (c->state == CONN_HTTP)
            log_debug("shard %u: conn %u: receive ended during the handshake (%d)", s->id, c->idx,
                      res);
        conn_kill(s, c);
    }
    try_finish(s, c);
}
