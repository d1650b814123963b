/* SPDX-License-Identifier: MIT */
/*
 * client: one ringcast-bench connection, from socket to closed slot. See worker.h.
 *
 * Life of a client: socket(2) + options + bind to its source address, installed into its own
 * registered slot (the plain descriptor is closed at once) -> connect -> multishot receive
 * armed and the upgrade request sent -> the 101 answer checked (wsclient.c) -> frames decoded
 * with the engine's parser (server side: unmasked) -> closing handshake -> slot closed once no
 * request names the client any more (nr_ops == 0), so no late completion can hit a reused
 * slot. SO_LINGER {1, 0} makes that close a reset: no TIME_WAIT piles up on either side across
 * repeated runs (PLATFORM.md section 6, item 10).
 *
 * Sends: one in flight per client; whatever is queued meanwhile goes out together in the next
 * one (two buffers, swapped), so frames of one client never reorder and a slow server makes
 * the client batch instead of piling up requests.
 *
 * wss: after the connect comes the TLS handshake (CL_TLS), then the upgrade as above. Received
 * bytes go through tls_pump(), which feeds them to the session and hands the plaintext to the
 * same upgrade and frame code. <pend> holds plaintext; a send seals it (tls_seal) into the
 * session's ciphertext queue, which is swapped with <fly> and sent, so sealing also batches
 * whatever was queued during the send in flight. A full queue (-ENOBUFS) leaves the unsealed
 * plaintext, or a stopped handshake or read, for when the send completes.
 */
#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static inline uint64_t ud(unsigned op, uint32_t i)
{
    return (uint64_t)op << 56 | i;
}

static void grow(uint8_t **p, uint32_t *cap, uint64_t need)
{
    if (need <= *cap)
        return;
    uint64_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    uint8_t *q = realloc(*p, n);
    if (!q) {
        fputs("ringcast-bench: out of memory\n", stderr);
        _exit(3);
    }
    *p = q;
    *cap = (uint32_t)n;
}

/* ---------------------------------------------------------------------------------------------
 * State and teardown
 * -------------------------------------------------------------------------------------------*/

static bool is_pending(uint8_t s)
{
    return s == CL_CONNECTING || s == CL_TLS || s == CL_UPGRADING;
}

/* Moves a client between states, keeping the open and pending gauges right. */
static void set_state(struct worker *w, struct client *c, uint8_t s)
{
    if (c->state == CL_OPEN && s != CL_OPEN)
        STAT_ADD(w->st->open, -1);
    if (is_pending(c->state) && !is_pending(s)) {
        STAT_ADD(w->st->pending, -1);
        w->nr_pending--;
    }
    if (s == CL_OPEN)
        STAT_INC(w->st->open);
    if (is_pending(s) && !is_pending(c->state)) {
        STAT_INC(w->st->pending);
        w->nr_pending++;
    }
    c->state = s;
}

/* Closes the slot once nothing in flight names the client. */
static void maybe_release(struct worker *w, uint32_t i)
{
    struct client *c = &w->c[i];
    if (!(c->flags & CL_F_ENDING) || c->nr_ops || c->state == CL_DONE)
        return;
    struct io_uring_sqe *sqe = worker__sqe(w);
    io_uring_prep_close_direct(sqe, i);
    io_uring_sqe_set_data64(sqe, ud(UD_CLOSE, i));
    set_state(w, c, CL_DONE);
    w->nr_live--;
    w->last_done_t = w->now;
    free(c->aux);
    free(c->pend);
    free(c->fly);
    free(c->ctl);
    tlsc_destroy(c->tls);
    c->tls = NULL;
    c->aux = c->pend = c->fly = c->ctl = NULL;
    c->aux_cap = c->pend_cap = c->fly_cap = 0;
    c->aux_len = c->pend_len = c->fly_len = 0;
}

void client__abort(struct worker *w, uint32_t i)
{
    struct client *c = &w->c[i];
    if (c->state == CL_IDLE || c->state == CL_DONE || (c->flags & CL_F_ENDING))
        return;
    c->flags |= CL_F_ENDING;
    set_state(w, c, CL_CLOSING);
    if (c->nr_ops && !(c->flags & CL_F_CANCELLED)) {
        /* One request cancels everything on the slot: the receive, a send, a connect. */
        struct io_uring_sqe *sqe = worker__sqe(w);
        io_uring_prep_cancel_fd(sqe, (int)i,
                                IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
        io_uring_sqe_set_data64(sqe, ud(UD_CANCEL, i));
        c->flags |= CL_F_CANCELLED;
    }
    maybe_release(w, i);
}

static void client_fail(struct worker *w, uint32_t i, uint64_t *counter)
{
    STAT_INC(*counter);
    STAT_INC(w->st->failed);
    client__abort(w, i);
}

/* ---------------------------------------------------------------------------------------------
 * Sending
 * -------------------------------------------------------------------------------------------*/

/*
 * Seals the queued plaintext into the TLS session's ciphertext queue, a record at a time, until
 * all is sealed or the queue is full. Returns false when the client failed.
 */
static bool tls_seal(struct worker *w, uint32_t i)
{
    struct client *c = &w->c[i];
    uint32_t off = 0;
    if (!tlsc_established(c->tls))
        return true;
    while (off < c->pend_len) {
        int r = tlsc_write(c->tls, c->pend + off, c->pend_len - off);
        if (r == -ENOBUFS)
            break; /* the same bytes stay first in <pend>: tlsc_write()'s retry rule */
        if (r <= 0) {
            STAT_INC(w->st->dropped);
            client__abort(w, i);
            return false;
        }
        off += (uint32_t)r;
    }
    if (off) {
        memmove(c->pend, c->pend + off, c->pend_len - off);
        c->pend_len -= off;
    }
    return true;
}

static void tls_pump(struct worker *w, uint32_t i);
static void send_upgrade(struct worker *w, uint32_t i);

static void send_start(struct worker *w, uint32_t i)
{
    struct client *c = &w->c[i];
    if (c->flags & (CL_F_SENDING | CL_F_ENDING))
        return;
    if (c->tls) {
        if (!tls_seal(w, i) || tlsc_out_len(c->tls) == 0)
            return;
        c->fly_len = (uint32_t)tlsc_swap_out(c->tls, &c->fly, &c->fly_cap);
        c->fly_off = 0;
    } else {
        if (c->pend_len == 0)
            return;
        uint8_t *b = c->fly;
        uint32_t cap = c->fly_cap;
        c->fly = c->pend;
        c->fly_cap = c->pend_cap;
        c->fly_len = c->pend_len;
        c->fly_off = 0;
        c->pend = b;
        c->pend_cap = cap;
        c->pend_len = 0;
    }

    struct io_uring_sqe *sqe = worker__sqe(w);
    io_uring_prep_send(sqe, (int)i, c->fly, c->fly_len, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ud(UD_SEND, i));
    c->flags |= CL_F_SENDING;
    c->nr_ops++;
}

static void handle_send(struct worker *w, uint32_t i, int res)
{
    struct client *c = &w->c[i];
    c->flags &= ~CL_F_SENDING;
    c->nr_ops--;
    if (c->flags & CL_F_ENDING)
        return maybe_release(w, i);
    if (res < 0) {
        STAT_INC(w->st->dropped);
        return client__abort(w, i);
    }
    STAT_ADD(w->st->tx_bytes, (uint64_t)res);
    c->fly_off += (uint32_t)res;
    if (c->fly_off < c->fly_len) {
        /* A short send on a stream socket: the rest must go before anything queued. */
        struct io_uring_sqe *sqe = worker__sqe(w);
        io_uring_prep_send(sqe, (int)i, c->fly + c->fly_off, c->fly_len - c->fly_off, MSG_NOSIGNAL);
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, ud(UD_SEND, i));
        c->flags |= CL_F_SENDING;
        c->nr_ops++;
        return;
    }
    c->fly_len = c->fly_off = 0;
    if (c->tls && tlsc_blocked(c->tls)) {
        /* A handshake or read stopped on a full ciphertext queue, which is empty now. */
        tls_pump(w, i);
        if (c->flags & CL_F_ENDING)
            return;
        tlsc_feed_end(c->tls);
    }
    send_start(w, i);
}

/* Queues one masked frame. RFC 6455 §5.3: every client frame is masked with a fresh key. */
static void queue_frame(struct worker *w, uint32_t i, uint8_t opcode, const uint8_t *p, size_t n)
{
    struct client *c = &w->c[i];
    uint8_t mask[4];
    grow(&c->pend, &c->pend_cap, (uint64_t)c->pend_len + WS_HEADER_MAX + n);
    wsc_random_bytes(&w->rnd, mask, sizeof(mask));
    c->pend_len += (uint32_t)wsc_frame(c->pend + c->pend_len, opcode, p, n, mask);
    send_start(w, i);
}

static void queue_close(struct worker *w, uint32_t i, uint16_t code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    /* RFC 6455 §5.5.1: 1005 means "no code": answer it with an empty close. */
    queue_frame(w, i, WS_OP_CLOSE, p, code == WS_CLOSE_NO_STATUS ? 0 : 2);
    w->c[i].flags |= CL_F_CLOSE_SENT;
}

void client__publish(struct worker *w, uint32_t i, uint64_t due_ns)
{
    struct client *c = &w->c[i];
    struct worker_stats *st = w->st;
    if (c->state != CL_OPEN || !(c->flags & CL_F_JOINED)) {
        STAT_INC(st->skipped);
        return;
    }
    /*
     * The payload carries the time the frame is written (the send SQE goes to the kernel in
     * this same loop turn), so that the latency is the server's and the network's, not the
     * pacing wake-up of this tool; that lag is measured on its own below. --stamp schedule
     * puts the due time in instead, so that a tool falling behind shows up as latency.
     */
    uint64_t sent = bench_now();
    uint64_t lag = sent > due_ns ? sent - due_ns : 0;
    struct bench_msg m = {
        .pub = w->lo + i, .seq = ++c->seq, .ts_ns = w->o->stamp_schedule ? due_ns : sent};
    size_t n = w->proto->publish(w->o, &m, w->scratch, w->o->payload);
    queue_frame(w, i, w->opcode, w->scratch, n);
    STAT_INC(st->published);
    STAT_ADD(st->expected, plan_receivers(w->o, m.pub));
    if (due_ns >= w->ctl->t_measure)
        hist_record(&st->lag, lag);
    if (lag > st->max_lag_ns)
        STAT_SET(st->max_lag_ns, lag);
    if (lag > 1000000)
        STAT_INC(st->late);
}

void client__close(struct worker *w, uint32_t i)
{
    struct client *c = &w->c[i];
    switch (c->state) {
    case CL_CONNECTING:
    case CL_TLS:
    case CL_UPGRADING:
        STAT_INC(w->st->close_forced);
        client_fail(w, i, &w->st->hs_timeouts);
        break;
    case CL_OPEN:
        queue_close(w, i, WS_CLOSE_NORMAL);
        set_state(w, c, CL_CLOSING);
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Opening
 * -------------------------------------------------------------------------------------------*/

static void arm_recv(struct worker *w, uint32_t i)
{
    struct client *c = &w->c[i];
    struct io_uring_sqe *sqe = worker__sqe(w);
    io_uring_prep_recv_multishot(sqe, (int)i, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, ud(UD_RECV, i));
    c->flags |= CL_F_RECV;
    c->nr_ops++;
}

/* A configured, bound socket for global client <g>, or -errno. */
static int make_socket(const struct bench_opts *o, uint32_t g)
{
    static const int one = 1;
    static const struct linger lg = {.l_onoff = 1, .l_linger = 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Best effort: none of these is needed for correctness, so a refusal is not fatal. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    uint32_t src = plan_source_ip(o, g);
    if (src) {
        /* PLATFORM.md section 4: without this, bind() reserves the port for every
         * destination and one source address runs out after ~64k connections in total. */
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = src};
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    return fd;
}

static void note_errno(struct worker *w, int e)
{
    if (STAT_LOAD(w->st->first_errno) == 0)
        STAT_SET(w->st->first_errno, e);
}

/* Our own side ran out of something: not the server's limit. */
static bool client_side(int e)
{
    return e == EADDRNOTAVAIL || e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM ||
           e == EADDRINUSE;
}

uint32_t client__open_batch(struct worker *w, uint32_t count)
{
    int fds[64];
    uint32_t first = w->next_open;
    if (count > 64)
        count = 64;
    if (count > w->n - first)
        count = w->n - first;
    if (count == 0)
        return 0;
    for (uint32_t k = 0; k < count; k++)
        fds[k] = make_socket(w->o, w->lo + first + k);

    int r = io_uring_register_files_update(&w->ring, first, fds, count);
    for (uint32_t k = 0; k < count; k++) {
        uint32_t i = first + k;
        struct client *c = &w->c[i];
        int e = fds[k] < 0 ? -fds[k] : r < 0 ? -r : 0;
        if (fds[k] >= 0)
            close(fds[k]);
        STAT_INC(w->st->attempted);
        c->t_start = w->now;
        if (!w->st->t_first_attempt)
            STAT_SET(w->st->t_first_attempt, w->now);
        if (e) {
            /* No slot was filled: nothing to cancel or close. */
            note_errno(w, e);
            STAT_INC(w->st->failed);
            STAT_INC(*(client_side(e) ? &w->st->client_limit : &w->st->connect_errors));
            c->state = CL_DONE;
            continue;
        }
        c->parser.server = false;
        c->parser.max_message = 0;
        set_state(w, c, CL_CONNECTING);
        w->nr_live++;
        struct io_uring_sqe *sqe = worker__sqe(w);
        io_uring_prep_connect(sqe, (int)i, (const struct sockaddr *)&w->o->target,
                              sizeof(w->o->target));
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, ud(UD_CONNECT, i));
        c->flags |= CL_F_CONNECT;
        c->nr_ops++;
    }
    w->next_open = first + count;
    return count;
}

static void handle_connect(struct worker *w, uint32_t i, int res)
{
    struct client *c = &w->c[i];
    c->flags &= ~CL_F_CONNECT;
    c->nr_ops--;
    if (c->flags & CL_F_ENDING)
        return maybe_release(w, i);
    if (res < 0) {
        note_errno(w, -res);
        return client_fail(w, i, client_side(-res) ? &w->st->client_limit : &w->st->connect_errors);
    }
    arm_recv(w, i);
    if (w->tls_cfg) {
        c->tls = tlsc_create(w->tls_cfg, w->o->tls_resume);
        if (!c->tls)
            return client_fail(w, i, &w->st->client_limit);
        if (tlsc_offered(c->tls))
            STAT_INC(w->st->tls_offered);
        set_state(w, c, CL_TLS);
        c->t_tls = w->now;
        /* The ClientHello: no input yet, the handshake says what it has to and waits. */
        tls_pump(w, i);
        if (!(c->flags & CL_F_ENDING))
            send_start(w, i);
        return;
    }
    set_state(w, c, CL_UPGRADING);
    send_upgrade(w, i);
}

static void send_upgrade(struct worker *w, uint32_t i)
{
    struct client *c = &w->c[i];
    char path[600], req[1024];
    if (w->proto->path(w->o, w->lo + i, path, sizeof(path)) < 0)
        return client_fail(w, i, &w->st->client_limit);
    wsc_make_key(&w->rnd, c->key);
    int n = wsc_request(req, sizeof(req), w->o->host, path, c->key, NULL);
    if (n < 0)
        return client_fail(w, i, &w->st->client_limit);
    grow(&c->pend, &c->pend_cap, (uint64_t)c->pend_len + (uint32_t)n);
    memcpy(c->pend + c->pend_len, req, (size_t)n);
    c->pend_len += (uint32_t)n;
    send_start(w, i);
}

/* ---------------------------------------------------------------------------------------------
 * Receiving
 * -------------------------------------------------------------------------------------------*/

static void on_frames(struct worker *w, uint32_t i, uint8_t *buf, size_t len);

static void on_upgrade_bytes(struct worker *w, uint32_t i, const uint8_t *buf, size_t len)
{
    struct client *c = &w->c[i];
    struct worker_stats *st = w->st;
    grow(&c->aux, &c->aux_cap, (uint64_t)c->aux_len + len);
    memcpy(c->aux + c->aux_len, buf, len);
    c->aux_len += (uint32_t)len;

    int status;
    int r = wsc_response_check((const char *)c->aux, c->aux_len, c->key, &status);
    if (r == -EAGAIN)
        return;
    if (r == -ECONNREFUSED) {
        if (STAT_LOAD(st->first_status) == 0)
            STAT_SET(st->first_status, status);
        return client_fail(w, i, &st->refused);
    }
    if (r < 0)
        return client_fail(w, i, &st->proto_errors);

    set_state(w, c, CL_OPEN);
    STAT_INC(st->established);
    STAT_SET(st->t_last_established, w->now);
    hist_record(&st->hs, w->now > c->t_start ? w->now - c->t_start : 0);

    /* Frames may follow the head in the same bytes; move them out of <aux> first. */
    size_t rest = c->aux_len - (size_t)r;
    if (rest)
        memcpy(w->scratch, c->aux + r, rest);
    free(c->aux);
    c->aux = NULL;
    c->aux_len = c->aux_cap = 0;

    uint8_t hello[1024];
    uint32_t joins = 0;
    size_t hn = w->proto->hello(w->o, w->lo + i, hello, sizeof(hello), &joins);
    c->joins = (uint8_t)(joins < UINT8_MAX ? joins : UINT8_MAX);
    if (!c->joins)
        c->flags |= CL_F_JOINED;
    if (hn)
        queue_frame(w, i, WS_OP_TEXT, hello, hn);
    if (rest)
        on_frames(w, i, w->scratch, rest);
}

/* Protocol chatter that wants an answer (Engine.IO's ping): the answer goes out as a text
 * message, counted with the WebSocket pings answered. */
static void answer(struct worker *w, uint32_t i, const uint8_t *p, size_t have, size_t total)
{
    uint8_t out[PROTO_REPLY_MAX];
    size_t n = w->proto->reply ? w->proto->reply(w->o, p, have, total, out, sizeof(out)) : 0;
    STAT_INC(w->st->pings);
    /* RFC 6455 §5.5.1: nothing follows our close. */
    if (n && !(w->c[i].flags & CL_F_CLOSE_SENT))
        queue_frame(w, i, WS_OP_TEXT, out, n);
}

static void deliver_one(struct worker *w, uint32_t i, const uint8_t *p, size_t have, size_t total)
{
    struct client *c = &w->c[i];
    struct worker_stats *st = w->st;
    struct bench_msg m;
    uint32_t g = w->lo + i;

    switch (w->proto->rx(w->o, p, have, total, &m)) {
    case PROTO_RX_DELIVERY:
        break;
    case PROTO_RX_JOINED:
        /* Every subscription of the hello answered: a member now. */
        if (c->joins && --c->joins == 0)
            c->flags |= CL_F_JOINED;
        return;
    case PROTO_RX_IGNORE:
        return;
    case PROTO_RX_REPLY:
        answer(w, i, p, have, total);
        return;
    default:
        /* Before the client is a member, that was the answer to its hello: a refusal (a
         * Socket.IO CONNECT_ERROR) or nonsense, and it never will be one. */
        if (!(c->flags & CL_F_JOINED))
            return client_fail(w, i, &st->proto_errors);
        STAT_INC(st->malformed);
        return;
    }
    if (w->o->scenario == SC_FANOUT && g == 0) {
        /* The publisher's own copy: it measures the window, it is not a delivery. */
        STAT_INC(st->echoes);
        if (w->fan_inflight)
            w->fan_inflight--;
        return;
    }
    int64_t slot = plan_seq_slot(w->o, g, m.pub);
    if (slot < 0) {
        STAT_INC(st->unexpected);
        return;
    }
    if (w->last_seq) {
        uint32_t *last = &w->last_seq[(uint64_t)i * w->seq_slots + (uint64_t)slot];
        if (m.seq == *last) {
            STAT_INC(st->duplicates);
            return;
        }
        if (m.seq < *last)
            STAT_INC(st->reordered);
        else
            *last = m.seq;
    }
    STAT_INC(st->received);
    if (m.ts_ns >= w->ctl->t_measure)
        hist_record(&st->lat, w->now > m.ts_ns ? w->now - m.ts_ns : 0);
    if (w->o->scenario == SC_ECHO && c->inflight) {
        c->inflight--;
        /* Closed loop: the next round trip starts when this one ends. */
        if (w->o->rate == 0 && w->phase == PH_RUN && w->now < w->ctl->t_run_end) {
            client__publish(w, i, w->now);
            c->inflight++;
        }
    }
}

/*
 * A data message: one protocol message, or several where the adapter splits them (Centrifugo's
 * replies and pushes, newline-separated in one frame: PROTOCOL-CENTRIFUGO.md §2), each
 * classified and counted on its own. An empty part (a trailing separator) is skipped, as the
 * SDKs do.
 */
static void deliver(struct worker *w, uint32_t i, const uint8_t *p, size_t have, size_t total)
{
    if (!w->proto->split)
        return deliver_one(w, i, p, have, total);
    /* rx_need is SIZE_MAX for such an adapter: the whole message is here. */
    while (have) {
        size_t n = w->proto->split(p, have);
        if (n)
            deliver_one(w, i, p, n, n);
        if (w->c[i].flags & CL_F_ENDING)
            return;
        size_t skip = n < have ? n + 1 : n;
        p += skip;
        have -= skip;
    }
}

static void on_control(struct worker *w, uint32_t i, uint8_t op, const uint8_t *p, size_t n)
{
    struct client *c = &w->c[i];
    struct worker_stats *st = w->st;
    if (op == WS_OP_PING) {
        STAT_INC(st->pings);
        /* RFC 6455 §5.5.3: the pong carries the ping's payload. Not after our close. */
        if (!(c->flags & CL_F_CLOSE_SENT))
            queue_frame(w, i, WS_OP_PONG, p, n);
        return;
    }
    if (op != WS_OP_CLOSE)
        return;
    uint16_t code = WS_CLOSE_NO_STATUS;
    uint16_t fail_code = ws_close_payload_check(p, n, &code);
    bool bad = fail_code != 0;
    int k = bad            ? CC_OTHER
            : code == 1000 ? CC_1000
            : code == 1001 ? CC_1001
            : code == 1008 ? CC_1008
                           : CC_OTHER;
    c->flags |= CL_F_CLOSE_RCVD;
    if (c->flags & CL_F_CLOSE_SENT) {
        /* The answer to our close (RFC 6455 §7.1.2); the server closes TCP next. */
        STAT_INC(st->close_clean);
        w->last_done_t = w->now;
        return;
    }
    STAT_INC(st->close_codes[k]);
    if (c->state == CL_OPEN)
        STAT_INC(st->dropped);
    set_state(w, c, CL_CLOSING);
    /* RFC 6455 §5.5.1: answer a close with a close, echoing the status code. */
    queue_close(w, i, bad ? fail_code : code);
}

static void on_chunk(struct worker *w, uint32_t i, const struct ws_chunk *ch)
{
    struct client *c = &w->c[i];
    if (ch->frame_end)
        STAT_INC(w->st->rx_frames);
    if (ch->control) {
        if (ch->frame_start && ch->frame_end)
            return on_control(w, i, ch->opcode, ch->data, ch->len);
        /* A control frame split across receives (at most 125 bytes, RFC 6455 §5.5): rare,
         * so its buffer is allocated on first use. */
        if (!c->ctl) {
            c->ctl = malloc(WS_CONTROL_MAX);
            if (!c->ctl) {
                fputs("ringcast-bench: out of memory\n", stderr);
                _exit(3);
            }
        }
        if (ch->frame_start)
            c->ctl_len = 0;
        size_t room = WS_CONTROL_MAX - c->ctl_len;
        size_t take = ch->len < room ? ch->len : room;
        if (take) /* an empty chunk may carry no pointer at all */
            memcpy(c->ctl + c->ctl_len, ch->data, take);
        c->ctl_len = (uint8_t)(c->ctl_len + take);
        if (ch->frame_end)
            on_control(w, i, ch->opcode, c->ctl, c->ctl_len);
        return;
    }
    if (ch->msg_start) {
        c->msg_len = 0;
        c->hdr_len = 0;
        c->aux_len = 0;
    }
    c->msg_len += (uint32_t)ch->len;
    if (ch->msg_start && ch->msg_end)
        return deliver(w, i, ch->data, ch->len, ch->len);

    size_t need = w->proto->rx_need;
    if (need <= sizeof(c->hdr)) {
        size_t take = need - c->hdr_len;
        if (take > ch->len)
            take = ch->len;
        if (take)
            memcpy(c->hdr + c->hdr_len, ch->data, take);
        c->hdr_len = (uint8_t)(c->hdr_len + take);
        if (ch->msg_end)
            deliver(w, i, c->hdr, c->hdr_len, c->msg_len);
        return;
    }
    grow(&c->aux, &c->aux_cap, (uint64_t)c->aux_len + ch->len);
    if (ch->len)
        memcpy(c->aux + c->aux_len, ch->data, ch->len);
    c->aux_len += (uint32_t)ch->len;
    if (ch->msg_end)
        deliver(w, i, c->aux, c->aux_len, c->msg_len);
}

static void on_frames(struct worker *w, uint32_t i, uint8_t *buf, size_t len)
{
    struct client *c = &w->c[i];
    for (;;) {
        struct ws_chunk ch;
        bool got = false;
        ssize_t n = ws_parser_feed(&c->parser, buf, len, &ch, &got);
        if (n < 0)
            return client_fail(w, i, &w->st->proto_errors);
        buf += n;
        len -= (size_t)n;
        if (got) {
            on_chunk(w, i, &ch);
            if (c->flags & CL_F_ENDING)
                return;
        } else if (n == 0) {
            return;
        }
    }
}

/* The peer closed TCP (<res> 0) or the receive failed. */
static void on_eof(struct worker *w, uint32_t i, int res)
{
    struct client *c = &w->c[i];
    struct worker_stats *st = w->st;
    if (c->flags & CL_F_ENDING)
        return;
    switch (c->state) {
    case CL_TLS:
    case CL_UPGRADING:
        note_errno(w, res ? -res : ECONNRESET);
        return client_fail(w, i, &st->connect_errors);
    case CL_OPEN:
        STAT_INC(st->dropped);
        break;
    case CL_CLOSING:
        if (!(c->flags & CL_F_CLOSE_RCVD))
            STAT_INC(st->close_forced);
        break;
    default:
        break;
    }
    client__abort(w, i);
}

/* ---------------------------------------------------------------------------------------------
 * TLS (wss://)
 * -------------------------------------------------------------------------------------------*/

static void tls_fail(struct worker *w, uint32_t i)
{
    int code = tlsc_error(w->c[i].tls);
    if (STAT_LOAD(w->st->first_tls_error) == 0)
        STAT_SET(w->st->first_tls_error, code ? code : -1);
    client_fail(w, i, &w->st->tls_errors);
}

static void on_tls_established(struct worker *w, uint32_t i)
{
    struct client *c = &w->c[i];
    struct worker_stats *st = w->st;
    uint64_t d = w->now > c->t_tls ? w->now - c->t_tls : 0;
    if (tlsc_resumed(c->tls)) {
        hist_record(&st->hs_resumed, d);
        if (!st->t_resumed_first || c->t_tls < st->t_resumed_first)
            STAT_SET(st->t_resumed_first, c->t_tls);
        STAT_SET(st->t_resumed_last, w->now);
        STAT_INC(st->tls_resumed);
    } else {
        hist_record(&st->hs_full, d);
        if (!st->t_full_first || c->t_tls < st->t_full_first)
            STAT_SET(st->t_full_first, c->t_tls);
        STAT_SET(st->t_full_last, w->now);
        STAT_INC(st->tls_full);
    }
    if (!st->tls_suite[0])
        snprintf(st->tls_suite, sizeof(st->tls_suite), "%s", tlsc_suite(c->tls));
    if (w->o->tls_resume && !w->tls_primed) {
        /* A server without tickets or a session cache leaves nothing to offer: the rest then
         * handshake in full, and the summary shows it. */
        (void)tlsc_config_save_session(w->tls_cfg, c->tls);
        w->tls_primed = true;
    }
    set_state(w, c, CL_UPGRADING);
    send_upgrade(w, i);
}

/*
 * Runs the TLS session of client <i> over the input fed so far: the handshake while it lasts,
 * then decrypted bytes to the upgrade check or the frame parser. Stops when the input is used
 * up or the ciphertext queue is full (handle_send() calls again), and returns at once, without
 * touching the session again, when the client is torn down on the way (the session may be gone).
 */
static void tls_pump(struct worker *w, uint32_t i)
{
    struct client *c = &w->c[i];
    if (c->state == CL_TLS) {
        int r = tlsc_handshake(c->tls);
        if (r == -EAGAIN || r == -ENOBUFS)
            return;
        if (r < 0)
            return tls_fail(w, i);
        on_tls_established(w, i);
        if (c->flags & CL_F_ENDING)
            return;
    }
    for (;;) {
        int n = tlsc_read(c->tls, w->tls_plain, TLSC_PLAIN_MAX);
        if (n > 0) {
            if (c->state == CL_UPGRADING)
                on_upgrade_bytes(w, i, w->tls_plain, (size_t)n);
            else
                on_frames(w, i, w->tls_plain, (size_t)n);
            if (c->flags & CL_F_ENDING)
                return;
            continue;
        }
        if (n == -EAGAIN || n == -ENOBUFS)
            return;
        if (n < 0 && c->state == CL_UPGRADING)
            return tls_fail(w, i);
        /* close_notify, or a record that failed: as the server closing TCP. */
        return on_eof(w, i, n < 0 ? -EPROTO : 0);
    }
}

static void recycle(struct worker *w, unsigned bid)
{
    io_uring_buf_ring_add(w->br, w->bufs + (size_t)bid * w->buf_size, w->buf_size,
                          (unsigned short)bid, (int)(w->nr_bufs - 1), (int)w->br_added++);
}

static void handle_recv(struct worker *w, uint32_t i, const struct io_uring_cqe *cqe)
{
    struct client *c = &w->c[i];
    int res = cqe->res;
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) {
        c->flags &= ~CL_F_RECV;
        c->nr_ops--;
    }
    if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        STAT_ADD(w->st->rx_bytes, (uint64_t)res);
        if (!(c->flags & CL_F_ENDING)) {
            uint8_t *b = w->bufs + (size_t)bid * w->buf_size;
            if (c->tls) {
                if (c->state == CL_OPEN || c->state == CL_CLOSING)
                    STAT_INC(w->st->recvs);
                tlsc_feed(c->tls, b, (size_t)res);
                tls_pump(w, i);
                /* The buffer goes back to the ring below: keep what the session did not take. */
                if (c->tls)
                    tlsc_feed_end(c->tls);
                if (!(c->flags & CL_F_ENDING))
                    send_start(w, i);
            } else if (c->state == CL_UPGRADING) {
                on_upgrade_bytes(w, i, b, (size_t)res);
            } else {
                STAT_INC(w->st->recvs);
                on_frames(w, i, b, (size_t)res);
            }
        }
        recycle(w, bid);
    } else if (res == -ENOBUFS) {
        STAT_INC(w->st->nobufs);
    } else if (res <= 0) {
        on_eof(w, i, res);
    }
    /* A multishot receive also stops on its own (no buffers, a full CQ): start it again. */
    if (!(c->flags & (CL_F_RECV | CL_F_ENDING)) && (res > 0 || res == -ENOBUFS) &&
        c->state != CL_DONE)
        arm_recv(w, i);
    maybe_release(w, i);
}

void client__handle_cqe(struct worker *w, const struct io_uring_cqe *cqe)
{
    uint64_t u = io_uring_cqe_get_data64(cqe);
    uint32_t i = (uint32_t)u;
    if (i >= w->n)
        return;
    switch (u >> 56) {
    case UD_CONNECT:
        return handle_connect(w, i, cqe->res);
    case UD_RECV:
        return handle_recv(w, i, cqe);
    case UD_SEND:
        return handle_send(w, i, cqe->res);
    default:
        /* Cancel and close results: the client is already accounted for. */
        return;
    }
}
