/* SPDX-License-Identifier: MIT */
/*
 * shard: one thread, one io_uring, and everything that thread owns: its listener's accept,
 * its connection slots, its rooms, its timers, its send pools. Shards share nothing mutable
 * but the cross-shard queues (xshard), message reference counts (msg) and the few process-wide
 * counters in struct engine (atomics).
 *
 * This header is the engine's internal contract between shard.c (the loop and the CQE
 * dispatch), conn.c (a connection's life: receive, upgrade, frames, send queue, close),
 * room.c (rooms and fan-out) and engine.c (sizing, threads, drain). Every function taking a
 * struct shard must be called on that shard's thread; every function taking a struct conn on
 * the thread of the shard that owns it.
 */
#ifndef RINGCAST_SHARD_H
#define RINGCAST_SHARD_H

#include "bufring.h"
#include "config.h"
#include "msg.h"
#include "ring.h"
#include "timer.h"
#include "ws_frame.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SHARDS_MAX XSHARD_MAX_SHARDS
/* Single-shot accepts kept in flight when peer addresses are needed. */
#define ACCEPT_POOL 8

/* Request kinds, the <op> of ring_ud(). */
enum {
    OP_ACCEPT = 1, /* idx: listener << 8 | pooled entry; gen: 1 when pooled */
    OP_RECV,
    OP_SEND,
    OP_SHUTDOWN,
    OP_CANCEL,
    OP_CLOSE,
    OP_WAKE, /* MSG_RING doorbell from another shard or the main thread */
};

enum conn_state {
    CONN_FREE = 0,
    CONN_HTTP,      /* accepted, reading the request head */
    CONN_WS,        /* upgraded */
    CONN_CLOSING,   /* close frame or refusal queued: flush, half-close, await EOF */
    CONN_DEAD,      /* waiting for its requests to complete or be cancelled */
    CONN_RELEASING, /* descriptor close submitted; the slot is FREE when it completes */
};

enum conn_flag {
    CF_RECV_ARMED = 1u << 0,
    CF_SEND_BUSY = 1u << 1,
    CF_IN_FLUSH = 1u << 2,
    CF_ECHO_SELF = 1u << 3, /* raw room member with ?echo=1 */
    CF_ECHO = 1u << 4,      /* /echo endpoint */
    CF_SHUT_SENT = 1u << 5, /* our FIN was requested */
    CF_COUNTED = 1u << 6,   /* counted in engine.nr_conns (upgraded) */
    CF_IP_COUNTED = 1u << 7,
    CF_CLOSE_QUEUED = 1u << 8, /* a close frame or final HTTP answer is in the queue */
    CF_PEER_CLOSED = 1u << 9,  /* the peer's close frame arrived */
    CF_CANCEL_SENT = 1u << 10,
    CF_PEER_EOF = 1u << 11,   /* the peer half-closed; flush what it is owed, then close */
    CF_TLS_NOTIFY = 1u << 12, /* our close_notify is queued */
    CF_SHUT_BUSY = 1u << 13,  /* the shutdown request has not completed */
    CF_TLS_HS = 1u << 14,     /* counted in shard.hs_active: its TLS handshake is under way */
    CF_TLS_WAIT = 1u << 15,   /* on the shard's handshake wait list, receive not armed */
};

/* A queued outgoing frame: one reference to a shared msg. */
struct sq_node {
    struct sq_node *next;
    struct msg *msg;
};

/*
 * A contiguous send buffer: several small frames copied together, or TLS records sealed for one
 * recipient. Buffers of SENDBUF_CAP bytes are pooled per shard; larger ones (a big message over
 * TLS) are allocated to size and freed when their send completes.
 */
#define SENDBUF_CAP 16384
struct sendbuf {
    struct sendbuf *next_free;
    uint32_t len, cap;
    uint8_t data[];
};

/* Bytes set aside for a partial request head, frame or fragmented message. */
struct rxbuf {
    uint32_t len, cap;
    uint8_t data[];
};

struct room;
struct xshard_env;
struct tls_config;
struct tls_session;

struct conn {
    uint32_t gen;
    uint8_t state;
    uint8_t ctl_len;
    uint16_t flags;
    uint32_t idx;
    uint32_t peer_ip; /* IPv4, network order; 0 for others */
    uint32_t last_rx; /* shard second of the last byte received */
    uint32_t queued;  /* bytes in the send queue, not counting the send in flight */
    uint32_t tx_off;  /* bytes of the in-flight frame or buffer already sent */
    struct ws_parser parser;
    struct rxbuf *rx;
    uint8_t *ctl; /* a control frame split across receives (<= 125 bytes) */
    struct sq_node *sq_head, *sq_tail;
    struct msg *tx_msg;      /* in flight: a single frame sent from the shared msg */
    struct sendbuf *tx_buf;  /* in flight: several frames copied together */
    struct conn *flush_next; /* shard flush list */
    struct room *room;
    /* Room members: the room's list. TLS connections waiting for a handshake turn (never in a
     * room yet): the shard's wait list. */
    struct conn *room_next, *room_prev;
    struct tls_session *tls; /* NULL: plain TCP (tls/transport.h) */
    struct timer timer;
    uint32_t next_ping;
    float rl_tokens;     /* --rate-limit token bucket */
    uint32_t rl_last_ms; /* shard milliseconds at the last refill */
};

struct room_table {
    struct room **buckets;
    uint32_t mask;
    uint32_t nr;
};

#define LAT_NR_BUCKETS 16
/* Upper bounds of the latency buckets in ns (the 16th is +Inf), Prometheus style. */
extern const uint64_t LAT_BOUNDS_NS[LAT_NR_BUCKETS - 1];

/*
 * Counters a shard writes and /metrics reads. Each has one writer, its shard, so an update is a
 * relaxed load and store (no locked instruction on the hot path); readers use relaxed loads.
 */
#define STAT_ADD(s, field, v)                                                                      \
    atomic_store_explicit(&(s)->stats.field,                                                       \
                          atomic_load_explicit(&(s)->stats.field, memory_order_relaxed) + (v),     \
                          memory_order_relaxed)
#define STAT_SUB(s, field, v)                                                                      \
    atomic_store_explicit(&(s)->stats.field,                                                       \
                          atomic_load_explicit(&(s)->stats.field, memory_order_relaxed) - (v),     \
                          memory_order_relaxed)
struct shard_stats {
    atomic_uint_fast64_t conns;
    atomic_uint_fast64_t accepted;
    atomic_uint_fast64_t handshakes_failed;
    atomic_uint_fast64_t msgs_in;
    atomic_uint_fast64_t msgs_out;
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
    atomic_uint_fast64_t sends;
    atomic_uint_fast64_t slow_close;
    atomic_uint_fast64_t slow_drop;
    atomic_uint_fast64_t xshard_msgs;
    atomic_uint_fast64_t rooms;
    atomic_uint_fast64_t queued_bytes;
    atomic_uint_fast64_t stale_cqes;
    atomic_uint_fast64_t turns; /* loop iterations */
    /* ringcast_publish_latency_seconds: per delivery, from the publish's receipt to the
     * submission of the send that carries it; non-cumulative counts per LAT_BOUNDS_NS bucket,
     * the last one +Inf. */
    atomic_uint_fast64_t lat_buckets[LAT_NR_BUCKETS];
    atomic_uint_fast64_t lat_sum_ns;
    atomic_uint_fast64_t cqes;            /* completions handled */
    atomic_uint_fast64_t tls_handshaking; /* gauge: hs_active */
    atomic_uint_fast64_t tls_waiting;     /* gauge: hs_waiting */
};

struct engine;

struct shard {
    unsigned id;
    int cpu;
    struct engine *eng;
    struct io_uring ring;
    int listen_fd[2]; /* plain, TLS (-1: none) */
    bool accept_armed[2];
    uint32_t acc_busy; /* pooled single-shot accepts in flight (bit per entry) */
    struct sockaddr_in6 acc_addr[2 * ACCEPT_POOL];
    socklen_t acc_len[2 * ACCEPT_POOL];
    struct tls_config *tls_cfg;            /* this shard's reference; NULL without TLS */
    _Atomic(struct tls_config *) tls_next; /* a reloaded config waiting to be taken */
    struct bufring bufs;
    struct conn *conns; /* indexed by direct descriptor slot */
    uint32_t nr_slots;
    uint32_t nr_live;   /* slots not FREE */
    uint32_t slots_hwm; /* one past the highest slot ever used: scans stop here */
    struct room_table rooms;
    struct timer_wheel wheel;
    uint32_t now; /* cached second (CLOCK_MONOTONIC) of this loop iteration */
    uint64_t now_ns;
    uint64_t flush_ns;                    /* clock at the start of this turn's flush */
    struct conn *flush_head, *flush_tail; /* FIFO: the longest waiting is sent first */
    uint32_t nr_flush;                    /* connections in the FIFO */
    struct sq_node *node_free;
    struct sendbuf *sendbuf_free;
    uint32_t nr_sendbuf_free;
    bool draining;
    bool draining_done;
    uint64_t drain_deadline_ns;
    bool xs_pending;
    uint32_t trim_sec;  /* second of the last tls_thread_tick() */
    uint32_t hs_active; /* TLS handshakes under way (CF_TLS_HS) */
    uint32_t hs_waiting;
    struct conn *hs_wait_head, *hs_wait_tail; /* FIFO of CF_TLS_WAIT connections */
    struct shard_stats stats;
    pthread_t thread;
} __attribute__((aligned(64)));

struct engine {
    struct config *cfg;
    unsigned nr_shards;
    struct shard *shards;
    int ring_fds[SHARDS_MAX];
    struct xshard *xs;
    uint64_t max_conns;
    uint64_t room_seed;
    atomic_uint_fast64_t nr_conns; /* upgraded connections, all shards */
    atomic_bool draining;
    struct ip_table *ips;
    struct tls_config *tls; /* the current TLS config (main thread's reference) */
};

/* --- conn.c ----------------------------------------------------------------------------- */

/* A new connection in slot <idx>, from the TLS listener when <tls>: set it up and arm its
 * receive. */
void conn_accepted(struct shard *s, uint32_t idx, bool tls);
/* Completion handlers for a connection's own requests. */
void conn_handle_recv(struct shard *s, struct conn *c, struct io_uring_cqe *cqe);
void conn_handle_send(struct shard *s, struct conn *c, int res);
void conn_handle_shutdown(struct shard *s, struct conn *c);
void conn_handle_close(struct shard *s, struct conn *c);
/* Queues one reference to <m> on <c> (takes the reference) and schedules a flush. Applies the
 * slow-consumer policy. */
void conn_enqueue(struct shard *s, struct conn *c, struct msg *m);
/*
 * Sends connections from the head of the flush list what they have queued, one send each, at
 * most <budget> sends. Returns true when connections are still waiting.
 */
bool conn_flush(struct shard *s, unsigned budget);
/* Queues the final HTTP answer <m> (taken) and starts closing. */
void conn_close_http(struct shard *s, struct conn *c, struct msg *m);
/* Starts a WebSocket close with <code> (queued after pending frames). */
void conn_close_ws(struct shard *s, struct conn *c, uint16_t code, const char *reason);
/* Ends the connection now: cancel, close the descriptor, free the slot later. */
void conn_kill(struct shard *s, struct conn *c);
/* Arms an upgraded connection's timer for its next ping or idle deadline. */
void conn_arm_ws_timer(struct shard *s, struct conn *c);
/* The timer callback for connection timers. */
void conn_on_timer(struct timer *t, void *arg);
/* Frees the shard's pooled nodes and buffers. */
void conn_pools_fini(struct shard *s);

/* Starts the handshakes of TLS connections waiting for a turn, up to --tls-max-handshakes under
 * way. The loop calls it every turn that has a waiting one. */
void conn_admit_handshakes(struct shard *s);

static inline struct conn *conn_of_timer(struct timer *t)
{
    return (struct conn *)(void *)((char *)t - __builtin_offsetof(struct conn, timer));
}

/* --- room.c ----------------------------------------------------------------------------- */

/* Adds <c> to room <name> on this shard (telling the room's home shard when it is the first
 * local member). Returns 0 or -ENOMEM. */
int room_join(struct shard *s, struct conn *c, const char *name, size_t len);
/* Removes <c> from its room. Cannot fail. */
void room_leave(struct shard *s, struct conn *c);
/* Publishes a message from member <c> to its room, on every shard with members: the frame is
 * encoded once here. Returns 0 or -ENOMEM. */
int room_publish(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *p, size_t len);
/* Handles one cross-shard envelope addressed to this shard. */
void room_handle_envelope(struct shard *s, const struct xshard_env *env);
/* Frees every room of this shard (shutdown). */
void room_table_fini(struct shard *s);
/* Home shard of a room. */
unsigned room_home(const struct engine *e, uint64_t hash);
uint64_t room_hash(const struct engine *e, const char *name, size_t len);

/* --- http.c ----------------------------------------------------------------------------- */

/*
 * Handles the request head in <buf>[0..<len>) for <c>: answers plain HTTP endpoints and
 * refusals (queues the answer and starts closing), or upgrades (queues the 101, joins a room).
 * Returns the head length consumed (> 0), -EAGAIN when incomplete, or another negative errno
 * when the connection was refused (it is closing; stop reading its bytes).
 */
int http_handle(struct shard *s, struct conn *c, const uint8_t *buf, size_t len);

/* Queues a complete HTTP response on <c> and starts closing it. */
void http_refuse(struct shard *s, struct conn *c, int status, const char *reason);

/* --- engine.c --------------------------------------------------------------------------- */

/* Per-IP connection counting for --max-conns-per-ip; both return false when over the limit. */
bool ip_acquire(struct engine *e, uint32_t ip);
void ip_release(struct engine *e, uint32_t ip);

/* --- shard.c --------------------------------------------------------------------------- */

/* Receive buffers per shard: enough for a burst from many connections at once. */
#define SHARD_RECV_BUFS     512
#define SHARD_RECV_BUF_SIZE 4096

/* Creates the shard's ring, descriptor table, buffers and slots, on the shard's thread.
 * Returns 0 or a negative errno. */
int shard_setup(struct shard *s);
/* Runs the loop until a drain completes. */
void shard_run(struct shard *s);
/* Frees what shard_setup made and what connections still hold. Cannot fail. */
void shard_teardown(struct shard *s);
/* Frees what a live connection holds (shutdown only). */
void conn_release_memory(struct shard *s, struct conn *c);

/* Pushes an envelope to shard <to>. */
void shard_push(struct shard *s, unsigned to, uint32_t kind, void *ptr, uint64_t val);

/* Current monotonic time in ns. */
uint64_t mono_ns(void);

/* Cross-shard envelope kinds. */
enum {
    XS_PUBLISH = 1, /* member shard -> home: a message to fan out (ptr: msg, one ref) */
    XS_DELIVER,     /* home -> member shard: deliver to local members (ptr: msg, one ref) */
    XS_JOIN,        /* member shard -> home: first local member (ptr: msg carrying the name) */
    XS_LEAVE,       /* member shard -> home: last local member left (ptr: msg with the name) */
};

#endif
