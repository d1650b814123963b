/* SPDX-License-Identifier: MIT */
/*
 * conn: the transport connection (contract in conn.h).
 *
 * Receive: a multishot recv picks buffers from the shard's ring; bytes are handed to the
 * handler while the completion is processed and the buffer goes straight back, so only what a
 * handler sets aside (a partial request head, frame or fragmented message) is ever copied.
 *
 * Send: a queue of references to shared, pre-encoded frames; one send in flight per
 * connection. When it completes, everything queued meanwhile leaves in the next send: small
 * frames are copied into one contiguous buffer (a contiguous send is cheaper in the kernel
 * than a vectored one, PLATFORM.md section 7), a large frame goes out from the shared msg
 * itself. That self-clocking is the flush policy: under light load each frame leaves at once,
 * under heavy load the frames that piled up during a send share the next one.
 */
#include "conn.h"

#include "log.h"
#include "probes.h"
#include "shard.h"
#include "tls.h"
#include "ws_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/*
 * Closing: once everything owed is sent (farewell, FIN), the peer has CLOSE_LINGER_S seconds
 * to close its side (CLOSE_LINGER_DRAIN_S while draining). While frames are still going out, a
 * closing connection keeps its slot for up to CLOSE_FLUSH_S seconds (the drain's flush time), so a
 * drain delivers what was queued. The shard clock counts whole seconds, so every deadline gets one
 * more second than asked and a timer never fires early.
 */
#define CLOSE_LINGER_S       2
#define CLOSE_LINGER_DRAIN_S 0
#define CLOSE_FLUSH_S        10

/*
 * A contiguous send buffer: several small frames copied together, or TLS records sealed for one
 * recipient. Buffers of SENDBUF_CAP bytes are pooled per shard (SENDBUF_KEEP at most); larger
 * ones (a big message over TLS) are allocated to size and freed when their send completes.
 */
#define SENDBUF_CAP  16384
#define SENDBUF_KEEP 64
struct sendbuf {
    struct sendbuf *next_free;
    uint32_t len, cap;
    uint8_t data[];
};

static void schedule_flush(struct shard *s, struct conn *c);

/* A draining broker waits less for peers to close their side: it is about to exit anyway. */
static uint32_t linger_s(const struct shard *s)
{
    return s->draining ? CLOSE_LINGER_DRAIN_S : CLOSE_LINGER_S;
}

/* ---- pools ---------------------------------------------------------------------------- */

/* Free queue nodes are chained through their msg field. */
static struct sq_node *node_get(struct shard *s)
{
    struct sq_node *n = s->node_free;
    if (n) {
        s->node_free = (struct sq_node *)(void *)n->msg;
        return n;
    }
    return malloc(sizeof(*n));
}

static void node_put(struct shard *s, struct sq_node *n)
{
    n->msg = (struct msg *)(void *)s->node_free;
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
        s->node_free = (struct sq_node *)(void *)n->msg;
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
    /* Still linked in the flush or wait FIFO: whoever pops it finishes it, since a reused slot
     * must not inherit the link. */
    if (c->state != CONN_DEAD ||
        (c->flags & (CF_RECV_ARMED | CF_SEND_BUSY | CF_IN_FLUSH | CF_SHUT_BUSY | CF_TLS_WAIT)))
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
 * buffer. Its handshake timeout runs from accept, the wait included. A waiting connection that
 * dies stays in the FIFO (CF_TLS_WAIT keeps its slot) until admission pops and finishes it.
 */
static void hs_begin(struct shard *s, struct conn *c)
{
    s->hs_active++;
    STAT_ADD(s, tls_handshaking, 1);
    c->flags |= CF_TLS_HS;
    arm_recv(s, c);
}

/* The connection's handshake is over (established, failed or gone), or it never started. */
static void hs_end(struct shard *s, struct conn *c)
{
    if (c->flags & CF_TLS_HS) {
        c->flags &= (uint16_t)~CF_TLS_HS;
        s->hs_active--;
        STAT_SUB(s, tls_handshaking, 1);
    } else if ((c->flags & CF_TLS_WAIT) && c->state < CONN_DEAD) {
        /* Still linked: counted out now, popped later. */
        s->hs_waiting--;
        STAT_SUB(s, tls_waiting, 1);
    }
}

void conn_admit_handshakes(struct shard *s)
{
    unsigned max = s->eng->cfg->tls_max_handshakes;
    while (!fifo_empty(&s->hs_wait)) {
        struct conn *c = container_of(fifo_head(&s->hs_wait), struct conn, flush_link);
        bool dead = c->state >= CONN_DEAD;
        if (!dead && max && s->hs_active >= max)
            return;
        fifo_pop(&s->hs_wait);
        c->flags &= (uint16_t)~CF_TLS_WAIT;
        if (dead) {
            try_finish(s, c);
            continue;
        }
        s->hs_waiting--;
        STAT_SUB(s, tls_waiting, 1);
        hs_begin(s, c);
    }
}

/* ---- accept --------------------------------------------------------------------------- */

void conn_accepted(struct shard *s, uint32_t idx, bool tls, uint8_t h)
{
    struct conn *c = &s->conns[idx];
    uint32_t gen = (c->gen + 1) & RING_GEN_MASK;
    if (c->state != CONN_FREE) {
        /* The close of the slot's last connection completed from io-wq and its completion is
         * still to come (it will be stale): count that connection gone now. */
        log_debug("shard %u: slot %u reused before its close completed", s->id, idx);
        tls_session_destroy(c->tls);
        s->nr_live--;
    }
    memset(c, 0, sizeof(*c));
    c->gen = gen;
    c->idx = idx;
    c->state = CONN_OPEN;
    c->handler = h;
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
        conn_kill(s, c);
        return;
    }
    unsigned max = s->eng->cfg->tls_max_handshakes;
    if (max && (s->hs_active >= max || !fifo_empty(&s->hs_wait))) {
        fifo_push(&s->hs_wait, &c->flush_link);
        s->hs_waiting++;
        STAT_ADD(s, tls_waiting, 1);
        c->flags |= CF_TLS_WAIT;
    } else {
        hs_begin(s, c);
    }
}

void conn_handle_shutdown(struct shard *s, struct conn *c)
{
    c->flags &= (uint16_t)~CF_SHUT_BUSY;
    try_finish(s, c);
}

void conn_handle_close(struct shard *s, struct conn *c)
{
    /* Nothing can use the session any more: its completions have all come. */
    tls_session_destroy(c->tls);
    c->tls = NULL;
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
    if (c->flags & (CF_IN_FLUSH | CF_SEND_BUSY | CF_TLS_WAIT))
        return;
    c->flags |= CF_IN_FLUSH;
    fifo_push(&s->flush, &c->flush_link);
    s->nr_flush++;
}

static struct sq_node *sq_first(const struct conn *c)
{
    return container_of(fifo_head(&c->sq), struct sq_node, link);
}

static void queue_append(struct shard *s, struct conn *c, struct msg *m)
{
    struct sq_node *n = node_get(s);
    if (!n) {
        msg_unref(m);
        return;
    }
    n->msg = m;
    if (fifo_empty(&c->sq) && !(c->flags & CF_SEND_BUSY))
        c->last_tx = s->now; /* an idle queue starts moving now */
    fifo_push(&c->sq, &n->link);
    c->queued += m->len;
    STAT_ADD(s, queued_bytes, m->len);
    schedule_flush(s, c);
}

/* Takes the oldest queued frame off the queue and gives its reference. */
static struct msg *queue_pop(struct shard *s, struct conn *c)
{
    struct sq_node *n = container_of(fifo_pop(&c->sq), struct sq_node, link);
    struct msg *m = n->msg;
    c->queued -= m->len;
    STAT_SUB(s, queued_bytes, m->len);
    node_put(s, n);
    return m;
}

static void queue_clear(struct shard *s, struct conn *c)
{
    while (!fifo_empty(&c->sq))
        msg_unref(queue_pop(s, c));
}

void conn_enqueue(struct shard *s, struct conn *c, struct msg *m)
{
    if (c->state != CONN_OPEN) {
        msg_unref(m);
        return;
    }
    /*
     * The slow-consumer policy acts when the queue, not counting the send in flight, would
     * pass --send-queue. A single message always fits an empty queue, so a limit below
     * --max-message never stops an echo of a large message.
     */
    uint64_t limit = s->eng->cfg->send_queue;
    if (!fifo_empty(&c->sq) && (uint64_t)c->queued + m->len > limit) {
        if (s->eng->cfg->slow_consumer == SLOW_CLOSE || !conn_handler(c)->lossy) {
            msg_unref(m);
            conn_close_slow(s, c);
            return;
        }
        unsigned dropped = 0;
        while (!fifo_empty(&c->sq) && (uint64_t)c->queued + m->len > limit) {
            msg_unref(queue_pop(s, c));
            dropped++;
        }
        STAT_ADD(s, slow_drop, dropped);
        PROBE3(slow_consumer, s->id, c->idx, 2);
    }
    queue_append(s, c, m);
}

void conn_close_slow(struct shard *s, struct conn *c)
{
    STAT_ADD(s, slow_close, 1);
    PROBE3(slow_consumer, s->id, c->idx, 1);
    queue_clear(s, c);
    conn_close(s, c, WS_CLOSE_POLICY, "slow consumer");
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

static void send_buf(struct shard *s, struct conn *c, struct sendbuf *b)
{
    c->tx = b;
    c->tx_off = 0;
    c->flags |= CF_TX_BUF;
    STAT_ADD(s, sends, 1);
    submit_send(s, c, b->data, b->len);
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
    if (fifo_empty(&c->sq) && (c->flags & CF_CLOSE_QUEUED) && !(c->flags & CF_TLS_NOTIFY)) {
        c->flags |= CF_TLS_NOTIFY;
        tls_session_close(c->tls);
    }
    size_t pend = tls_session_pending(c->tls);
    struct iovec iov[TLS_IOV_MAX];
    int n = 0;
    size_t plain = 0;
    if (tls_session_established(c->tls)) {
        for (struct fifo_link *l = fifo_head(&c->sq); l && n < TLS_IOV_MAX;
             l = fifo_next(&c->sq, l)) {
            const struct msg *m = container_of(l, struct sq_node, link)->msg;
            if (n && plain + m->len > TLS_FLUSH_BYTES)
                break;
            iov[n].iov_base = (void *)(uintptr_t)m->data;
            iov[n].iov_len = m->len;
            plain += m->len;
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
        struct msg *m = queue_pop(s, c);
        observe_latency(s, m);
        msg_unref(m);
    }
    b->len = (uint32_t)w;
    STAT_ADD(s, msgs_out, (uint64_t)n);
    send_buf(s, c, b);
}

/* Starts the next send of <c>: everything queued, in one send. */
static void conn_send(struct shard *s, struct conn *c)
{
    if (c->tls) {
        conn_send_tls(s, c);
        return;
    }
    if (fifo_empty(&c->sq)) {
        send_idle(s, c);
        return;
    }
    struct sq_node *n = sq_first(c);
    if (c->sq.tail == &n->link || n->msg->len >= SENDBUF_CAP / 2) {
        /* One frame, or a large one: send from the shared msg, no copy. */
        struct msg *m = queue_pop(s, c);
        observe_latency(s, m);
        c->tx = m;
        c->tx_off = 0;
        STAT_ADD(s, msgs_out, 1);
        STAT_ADD(s, sends, 1);
        submit_send(s, c, m->data, m->len);
        return;
    }
    struct sendbuf *b = sendbuf_get(s, SENDBUF_CAP);
    if (!b) {
        conn_kill(s, c);
        return;
    }
    b->len = 0;
    unsigned frames = 0;
    while (!fifo_empty(&c->sq) && b->len + sq_first(c)->msg->len <= SENDBUF_CAP) {
        struct msg *m = queue_pop(s, c);
        observe_latency(s, m);
        memcpy(b->data + b->len, m->data, m->len);
        b->len += m->len;
        msg_unref(m);
        frames++;
    }
    STAT_ADD(s, msgs_out, frames);
    send_buf(s, c, b);
}

bool conn_flush(struct shard *s, unsigned budget)
{
    if (!fifo_empty(&s->flush))
        s->flush_ns = mono_ns();
    while (!fifo_empty(&s->flush) && budget) {
        struct conn *c = container_of(fifo_pop(&s->flush), struct conn, flush_link);
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
    return !fifo_empty(&s->flush);
}

static void release_tx(struct shard *s, struct conn *c)
{
    if (!c->tx)
        return;
    if (c->flags & CF_TX_BUF)
        sendbuf_put(s, c->tx);
    else
        msg_unref(c->tx);
    c->tx = NULL;
    c->flags &= (uint16_t)~CF_TX_BUF;
}

/* Frees what a connection holds besides the send in flight (the kernel may still read that)
 * and its TLS session, which goes with the slot (conn_handle_close): a handler may kill the
 * connection while the session is still decrypting the receive that carried its input. */
static void free_buffers(struct shard *s, struct conn *c)
{
    queue_clear(s, c);
    free(c->rx);
    c->rx = NULL;
    hs_end(s, c);
}

void conn_release_memory(struct shard *s, struct conn *c)
{
    if (c->state == CONN_OPEN && conn_handler(c)->on_close)
        conn_handler(c)->on_close(s, c);
    free_buffers(s, c);
    release_tx(s, c);
    tls_session_destroy(c->tls);
    c->tls = NULL;
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
    c->last_tx = s->now;
    const struct sendbuf *b = c->tx;
    const struct msg *m = c->tx;
    const uint8_t *p = (c->flags & CF_TX_BUF) ? b->data : m->data;
    uint32_t total = (c->flags & CF_TX_BUF) ? b->len : m->len;
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

/* OPEN -> CLOSING: the handler lets go, then <last> (taken; may be NULL) is the last frame. */
static void enter_closing(struct shard *s, struct conn *c, struct msg *last)
{
    if (conn_handler(c)->on_close)
        conn_handler(c)->on_close(s, c);
    c->state = CONN_CLOSING;
    c->last_rx = s->now; /* closing since */
    timer_arm(&s->wheel, &c->timer, s->now + linger_s(s) + 1);
    if (last)
        queue_append(s, c, last);
    c->flags |= CF_CLOSE_QUEUED;
    schedule_flush(s, c);
}

void conn_close(struct shard *s, struct conn *c, uint16_t code, const char *reason)
{
    if (c->state != CONN_OPEN)
        return;
    struct msg *m = NULL;
    if (conn_handler(c)->farewell) {
        m = conn_handler(c)->farewell(code, reason);
        if (!m) {
            conn_kill(s, c);
            return;
        }
    }
    PROBE3(close, s->id, c->idx, code);
    enter_closing(s, c, m);
}

void conn_close_after(struct shard *s, struct conn *c, struct msg *last)
{
    if (c->state != CONN_OPEN) {
        msg_unref(last);
        return;
    }
    enter_closing(s, c, last);
}

void conn_kill(struct shard *s, struct conn *c)
{
    if (c->state == CONN_FREE || c->state >= CONN_DEAD)
        return;
    if (c->state == CONN_OPEN && conn_handler(c)->on_close) {
        PROBE3(close, s->id, c->idx, 0);
        conn_handler(c)->on_close(s, c);
    }
    free_buffers(s, c);
    c->state = CONN_DEAD;
    timer_disarm(&s->wheel, &c->timer);
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

/* ---- backpressure ---------------------------------------------------------------------- */

static uint32_t now_ms(const struct shard *s)
{
    return (uint32_t)(s->now_ns / 1000000u);
}

/* The index of <c>'s paused-list entry, or UINT32_MAX. */
static uint32_t paused_find(const struct shard *s, const struct conn *c)
{
    for (uint32_t i = 0; i < s->paused.nr; i++)
        if (s->paused.v[i].idx == c->idx && s->paused.v[i].gen == c->gen)
            return i;
    return UINT32_MAX;
}

void conn_pause(struct shard *s, struct conn *c, uint32_t ms)
{
    if (c->state != CONN_OPEN)
        return;
    uint32_t until = now_ms(s) + ms;
    struct paused_list *pl = &s->paused;
    if (c->flags & CF_PAUSED) {
        uint32_t i = paused_find(s, c);
        if (i != UINT32_MAX && (int32_t)(until - pl->v[i].until) > 0)
            pl->v[i].until = until; /* extended, never shortened */
        return;
    }
    if (pl->nr == pl->cap) {
        uint32_t cap = pl->cap ? pl->cap * 2 : 16;
        void *v = realloc(pl->v, cap * sizeof(*pl->v));
        if (!v)
            return;
        pl->v = v;
        pl->cap = cap;
    }
    pl->v[pl->nr].idx = c->idx;
    pl->v[pl->nr].gen = c->gen;
    pl->v[pl->nr].until = until;
    pl->v[pl->nr].held = NULL;
    pl->nr++;
    c->flags |= CF_PAUSED;
    STAT_ADD(s, paused, 1);
    if ((c->flags & CF_RECV_ARMED) && !(c->flags & CF_CANCEL_SENT)) {
        /* By user_data, like conn_kill: never a later connection's receive. The receive ends
         * with -ECANCELED (conn_handle_recv); what it read before that is handled as usual. */
        struct io_uring_sqe *sqe = ring_sqe(&s->ring);
        io_uring_prep_cancel64(sqe, ring_ud(OP_RECV, c->gen, c->idx), 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, ring_ud(OP_CANCEL, c->gen, c->idx));
    }
}

int conn_hold(struct shard *s, struct conn *c, const uint8_t *p, size_t len)
{
    uint32_t i = paused_find(s, c);
    if (i == UINT32_MAX || rxbuf_append(&s->paused.v[i].held, p, len, SIZE_MAX) < 0) {
        log_warn("shard %u: conn %u: no memory for the input of a paused publisher", s->id, c->idx);
        conn_kill(s, c);
        return -ENOMEM;
    }
    return 0;
}

/* Handler input, kept aside while <c> is paused. */
static void input(struct shard *s, struct conn *c, uint8_t *p, size_t len)
{
    if (c->flags & CF_PAUSED)
        conn_hold(s, c, p, len);
    else
        conn_handler(c)->on_input(s, c, p, len);
}

uint32_t conn_resume_due(struct shard *s)
{
    struct paused_list *pl = &s->paused;
    uint32_t now = now_ms(s), next = UINT32_MAX;
    /* Handlers run below may pause connections again (appended, so met later in this loop). */
    for (uint32_t i = 0; i < pl->nr;) {
        struct conn *c = &s->conns[pl->v[i].idx];
        bool same = c->gen == pl->v[i].gen;
        /* A slot keeps its generation until it is reused: a FREE or RELEASING one with the
         * same generation is the paused connection gone. */
        bool live = same && (c->state == CONN_OPEN || c->state == CONN_CLOSING);
        int32_t left = (int32_t)(pl->v[i].until - now);
        if (live && left > 0) {
            if ((uint32_t)left < next)
                next = (uint32_t)left;
            i++;
            continue;
        }
        struct rxbuf *held = pl->v[i].held;
        pl->v[i] = pl->v[--pl->nr];
        if (!same) { /* the slot went to another connection */
            free(held);
            continue;
        }
        c->flags &= (uint16_t)~CF_PAUSED;
        if (held && c->state == CONN_OPEN)
            conn_handler(c)->on_input(s, c, held->data, held->len);
        free(held);
        if ((c->state == CONN_OPEN || c->state == CONN_CLOSING) &&
            !(c->flags & (CF_RECV_ARMED | CF_PAUSED)))
            arm_recv(s, c);
        /* Paused again by its own input: its new entry is later in the list (and met there). */
    }
    return next;
}

/* ---- timer and set-aside bytes --------------------------------------------------------- */

void conn_timer_arm(struct shard *s, struct conn *c, uint32_t when)
{
    timer_arm(&s->wheel, &c->timer, when);
}

void conn_timer_disarm(struct shard *s, struct conn *c)
{
    timer_disarm(&s->wheel, &c->timer);
}

void conn_on_timer(struct timer *t, void *arg)
{
    struct shard *s = arg;
    struct conn *c = container_of(t, struct conn, timer);
    switch (c->state) {
    case CONN_OPEN:
        conn_handler(c)->on_timer(s, c);
        return;
    case CONN_CLOSING:
        /* Still sending what it is owed, and not for too long: let it finish. */
        if ((!fifo_empty(&c->sq) || (c->flags & CF_SEND_BUSY)) &&
            s->now - c->last_rx <= CLOSE_FLUSH_S) {
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
                if (!tls_session_established(c->tls))
                    STAT_HS_FAIL(s, HS_FAIL_TLS);
            }
            if (c->state == CONN_OPEN)
                enter_closing(s, c, NULL);
            /* The session is closed for writing application data now: frames still queued
             * could not be sealed and would take our close_notify down with them. */
            queue_clear(s, c);
            c->flags |= CF_PEER_EOF | CF_TLS_NOTIFY;
            break;
        }
        /* Decrypted in place inside our receive buffer (or the session's): writable. */
        if (c->state == CONN_OPEN)
            input(s, c, (uint8_t *)(uintptr_t)plain, (size_t)n);
        /* Killed by the handler (out of memory, say): the session lives until the slot is
         * freed, but nothing more is read from it. */
        if (c->state >= CONN_DEAD)
            return;
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
        if (c->state == CONN_OPEN)
            c->last_rx = s->now;
        if (c->tls)
            tls_input(s, c, p, (size_t)res);
        else if (c->state == CONN_OPEN)
            input(s, c, p, (size_t)res);
        /* CLOSING: what the peer sends after our close is read and dropped (RFC 6455 §1.4). */
        bufring_recycle(&s->bufs, bid);
        if (!(c->flags & (CF_RECV_ARMED | CF_PAUSED)) && c->state <= CONN_CLOSING)
            arm_recv(s, c);
    } else if (res == -ENOBUFS && c->state <= CONN_CLOSING) {
        /* Every buffer is in use for a moment; they come back within this loop turn. */
        if (!(c->flags & (CF_RECV_ARMED | CF_PAUSED)))
            arm_recv(s, c);
    } else if (res == -ECANCELED && (c->flags & CF_PAUSED) && c->state <= CONN_CLOSING) {
        /* conn_pause cancelled it; conn_resume_due arms it again. */
    } else if (res == 0 && c->state <= CONN_CLOSING &&
               (!fifo_empty(&c->sq) || (c->flags & CF_SEND_BUSY))) {
        /*
         * The peer half-closed with bytes still owed to it (a close reply, say, when its
         * close frame and FIN came in one segment, or the answer to its last request): it can
         * still read, so flush them, then close (RFC 6455 §5.5.1). The linger timer bounds the
         * wait.
         */
        if (c->state == CONN_OPEN)
            enter_closing(s, c, NULL);
        c->flags |= CF_PEER_EOF;
    } else if (res <= 0) {
        /* EOF, reset or cancellation. */
        conn_kill(s, c);
    }
    try_finish(s, c);
}
