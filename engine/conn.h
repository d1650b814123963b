/* SPDX-License-Identifier: MIT */
/*
 * conn: the transport connection. A slot in its shard's table (indexed by direct descriptor)
 * with a generation, a receive path (multishot recv, TLS decryption when the listener was TLS),
 * a send queue of shared messages (one send in flight, queued frames leave together), close
 * (flush, FIN, linger), kill, and one timer.
 *
 * What the bytes mean is the business of the connection's handler (struct conn_handler): set
 * to HTTP at accept, swapped at a WebSocket upgrade for echo, raw room or, next, protocol mode,
 * the way nginx and h2o choose a connection's handler once. The transport calls the handler
 * for input, for its timer and once when the connection stops being open; it knows nothing of
 * rooms, routes or WebSocket beyond asking the handler for a farewell frame. Each handler keeps
 * its per-connection state in the connection's private area (conn_priv), so an idle connection
 * costs one slot and nothing on the heap.
 *
 *   FREE -> OPEN (handler) -> CLOSING (farewell queued: flush, FIN, await EOF) -> DEAD
 *   (requests cancelled) -> RELEASING (descriptor close submitted) -> FREE
 *
 * Shard rule: every function must be called on the thread of the shard that owns <c>.
 */
#ifndef RINGCAST_CONN_H
#define RINGCAST_CONN_H

#include "list.h"
#include "msg.h"
#include "rxbuf.h"
#include "timer.h"

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct shard;
struct sendbuf;
struct tls_session;

enum conn_state {
    CONN_FREE = 0,
    CONN_OPEN,      /* the handler reads and writes */
    CONN_CLOSING,   /* farewell queued: flush, half-close, await EOF */
    CONN_DEAD,      /* waiting for its requests to complete or be cancelled */
    CONN_RELEASING, /* descriptor close submitted; the slot is FREE when it completes */
};

/* Transport flags (struct conn.flags). Handlers keep theirs in their private area. */
enum conn_flag {
    CF_RECV_ARMED = 1u << 0,
    CF_SEND_BUSY = 1u << 1,
    CF_IN_FLUSH = 1u << 2,
    CF_SHUT_SENT = 1u << 3,    /* our FIN was requested */
    CF_CLOSE_QUEUED = 1u << 4, /* the last bytes (farewell) are in the queue */
    CF_CANCEL_SENT = 1u << 5,
    CF_PEER_EOF = 1u << 6,   /* the peer half-closed; flush what it is owed, then close */
    CF_TLS_NOTIFY = 1u << 7, /* our close_notify is queued */
    CF_SHUT_BUSY = 1u << 8,  /* the shutdown request has not completed */
    CF_TLS_HS = 1u << 9,     /* counted in shard.hs_active: its TLS handshake is under way */
    CF_TLS_WAIT = 1u << 10,  /* on the shard's handshake wait FIFO, receive not armed */
    CF_TX_BUF = 1u << 11,    /* conn.tx is a struct sendbuf */
    CF_PAUSED = 1u << 12,    /* reading paused (conn_pause): receive not re-armed until then */
};

struct conn;

/*
 * A connection handler: what a connection's bytes mean. Every callback runs on the owning shard
 * and may close or kill <c>; after a callback the transport looks at c->state again.
 */
struct conn_handler {
    const char *name;
    /* Plaintext received while OPEN, at <p>[0..<len>), writable in place and borrowed for the
     * call only. */
    void (*on_input)(struct shard *s, struct conn *c, uint8_t *p, size_t len);
    /* The connection's timer fired while OPEN. */
    void (*on_timer)(struct shard *s, struct conn *c);
    /* The connection stops being OPEN (closing or killed): called once, before the farewell is
     * queued. Leave rooms, release counts, free what the private area points to. May be NULL. */
    void (*on_close)(struct shard *s, struct conn *c);
    /* The last bytes to send when conn_close() is asked to close with <code> and <reason> (a
     * WebSocket close frame), given with one reference; NULL: nothing, just the FIN. May be
     * NULL. */
    struct msg *(*farewell)(uint16_t code, const char *reason);
    /* Whether --slow-consumer drop may drop queued frames (WebSocket messages); otherwise (HTTP
     * answers, which a client matches to its requests in order) an overflow closes. */
    bool lossy;
    /* The broker starts draining (SIGTERM): NULL closes <c> with 1001 "server shutting down";
     * a handler with a request under way may let it finish. */
    void (*on_drain)(struct shard *s, struct conn *c);
};

/* A queued outgoing frame: one reference to a shared msg. */
struct sq_node {
    struct fifo_link link;
    struct msg *msg;
};

/* Bytes of per-connection handler state (conn_priv): the largest handler's, checked by each
 * handler with a static assertion. */
#define CONN_PRIV_SIZE 104

/*
 * The handler registry: a connection names its handler by a one-byte index into this table
 * (a pointer would cost 8 bytes in every slot). The engine's wiring defines it (routes.c,
 * with the indexes in routes.h); a new handler is one more row there.
 */
#define CONN_HANDLERS_MAX 16
extern const struct conn_handler *const conn_handlers[CONN_HANDLERS_MAX];

struct conn {
    uint32_t gen;
    uint32_t idx;
    uint8_t state;
    uint8_t handler; /* index into conn_handlers */
    uint16_t flags;
    uint32_t peer_ip; /* IPv4, network order; 0 for others */
    uint32_t last_rx; /* shard second of the last byte received; in CLOSING: closing since */
    uint32_t queued;  /* bytes in the send queue, not counting the send in flight */
    uint32_t tx_off;  /* bytes of the in-flight frame or buffer already sent */
    uint32_t last_tx; /* shard second the send queue last moved: a send completed, or the
                         first frame came to an idle queue (conn_stalled) */
    struct rxbuf *rx; /* the handler's bytes set aside (conn_rx_*) */
    struct fifo sq;   /* of struct sq_node */
    /* In flight: a struct sendbuf (CF_TX_BUF: several frames copied together, or TLS records)
     * or a struct msg (a single frame sent from the shared msg); NULL when none. */
    void *tx;
    /* The shard's flush FIFO; a TLS connection waiting for its handshake turn (CF_TLS_WAIT)
     * uses it for the shard's wait FIFO instead: it has nothing to send then. */
    struct fifo_link flush_link;
    struct tls_session *tls; /* NULL: plain TCP */
    struct timer timer;
    _Alignas(8) unsigned char priv[CONN_PRIV_SIZE];
};

/* The handler of <c>. */
static inline const struct conn_handler *conn_handler(const struct conn *c)
{
    return conn_handlers[c->handler];
}

/* The handler's private area of <c>, CONN_PRIV_SIZE bytes, zeroed at accept. */
static inline void *conn_priv(struct conn *c)
{
    return c->priv;
}

static inline bool conn_is_open(const struct conn *c)
{
    return c->state == CONN_OPEN;
}

/* ---- life ------------------------------------------------------------------------------- */

/* A new connection in slot <idx>, from the TLS listener when <tls>, handled by conn_handlers[<h>]:
 * set it up and arm its receive. */
void conn_accepted(struct shard *s, uint32_t idx, bool tls, uint8_t h);

/* Swaps the handler of an OPEN <c> to conn_handlers[<h>] (a WebSocket upgrade). The new handler
 * initialises the private area itself. Cannot fail. */
static inline void conn_set_handler(struct conn *c, uint8_t h)
{
    c->handler = h;
}

/*
 * Closes <c> gracefully: the handler's on_close runs, its farewell for <code>/<reason> is
 * queued behind what is already queued, then the FIN, then up to a few seconds for the peer's
 * EOF. A no-op unless OPEN. Cannot fail (without memory for the farewell the connection is
 * killed).
 */
void conn_close(struct shard *s, struct conn *c, uint16_t code, const char *reason);

/* Closes <c> after sending <last> (taken; an HTTP answer): as conn_close with <last> as the
 * farewell. */
void conn_close_after(struct shard *s, struct conn *c, struct msg *last);

/* Ends <c> now: on_close if still OPEN, cancel its requests, close the descriptor, free the slot
 * once every request has completed. Cannot fail. */
void conn_kill(struct shard *s, struct conn *c);

/*
 * Backpressure: stops reading from <c> for <ms> milliseconds from now (a later call extends
 * it): its receive is cancelled, so what it sends waits in its socket and TCP slows it down.
 * Used on publishers whose messages meet receivers with more than half of --send-queue queued
 * (room.c), so that a flood is paced by the room instead of closing its readers. Cannot fail:
 * without memory to record it, <c> is simply not paused.
 */
void conn_pause(struct shard *s, struct conn *c, uint32_t ms);

/*
 * Keeps <p>[0..<len>), received by paused <c>, for its handler to get when the pause ends (the
 * WebSocket layer stops at the message that paused it). Bounded by what the kernel had read
 * before the receive was cancelled. Out of memory <c> is killed. Returns 0, or -ENOMEM.
 */
int conn_hold(struct shard *s, struct conn *c, const uint8_t *p, size_t len);

/* Whether <c> holds unsent bytes and its sends have not moved for <secs> seconds: a reader that
 * stopped, not one that is merely behind. */
static inline bool conn_stalled(const struct conn *c, uint32_t now, uint32_t secs)
{
    return c->queued && now - c->last_tx >= secs;
}

/* Closes <c> as a slow consumer (1008), counted as such; its queue is dropped. */
void conn_close_slow(struct shard *s, struct conn *c);

/* Resumes reading from the connections whose pause is over. Returns the milliseconds until the
 * next pause ends, or UINT32_MAX when none is paused. Once per loop turn. */
uint32_t conn_resume_due(struct shard *s);

/* ---- send -------------------------------------------------------------------------------- */

/*
 * Queues one reference to <m> on <c> (takes the reference) and schedules a flush at the end of
 * the loop turn. Applies the slow-consumer policy, which may close <c> (synchronously: the
 * handler's on_close runs inside this call). Dropped when <c> is no longer OPEN.
 */
void conn_enqueue(struct shard *s, struct conn *c, struct msg *m);

/*
 * Sends connections from the head of the flush list what they have queued, one send each, at
 * most <budget> sends. Returns true when connections are still waiting.
 */
bool conn_flush(struct shard *s, unsigned budget);

/* ---- timer and set-aside bytes ---------------------------------------------------------- */

/* Arms the timer of <c> for shard second <when> (on_timer fires then), or disarms it. */
void conn_timer_arm(struct shard *s, struct conn *c, uint32_t when);
void conn_timer_disarm(struct shard *s, struct conn *c);

/* Appends <p>[0..<len>) to the set-aside bytes of <c>, which may hold at most <limit> bytes.
 * Returns 0, or -EMSGSIZE (over the limit) or -ENOMEM; the bytes already there stay. */
static inline int conn_rx_append(struct conn *c, const uint8_t *p, size_t len, size_t limit)
{
    return rxbuf_append(&c->rx, p, len, limit);
}

/* Gives the set-aside bytes away (the caller frees them with free()); NULL when none. */
static inline struct rxbuf *conn_rx_take(struct conn *c)
{
    struct rxbuf *rx = c->rx;
    c->rx = NULL;
    return rx;
}

/* ---- for the shard loop ------------------------------------------------------------------ */

/* Completion handlers for a connection's own requests. */
void conn_handle_recv(struct shard *s, struct conn *c, struct io_uring_cqe *cqe);
void conn_handle_send(struct shard *s, struct conn *c, int res);
void conn_handle_shutdown(struct shard *s, struct conn *c);
void conn_handle_close(struct shard *s, struct conn *c);
/* The timer callback of the shard's wheel for connection timers (<arg>: the shard). */
void conn_on_timer(struct timer *t, void *arg);
/* Starts the handshakes of TLS connections waiting for a turn, up to --tls-max-handshakes. */
void conn_admit_handshakes(struct shard *s);
/* Frees what a live connection holds (shutdown only). */
void conn_release_memory(struct shard *s, struct conn *c);
/* Frees the shard's pooled nodes and buffers. */
void conn_pools_fini(struct shard *s);

#endif
