/* SPDX-License-Identifier: MIT */
/*
 * shard: one thread, one io_uring, and everything that thread owns: its listener's accept,
 * its connection slots, its rooms, its timers, its send pools. Shards share nothing mutable
 * but the cross-shard queues (xshard), message reference counts (msg) and the few process-wide
 * counters in struct engine (atomics).
 *
 * This header is the one the engine's modules share for struct shard and struct engine; each
 * module declares its own functions in its own header (conn.h, room.h, http.h, ws.h, ...).
 * Every function taking a struct shard must be called on that shard's thread.
 */
#ifndef RINGCAST_SHARD_H
#define RINGCAST_SHARD_H

#include "bufring.h"
#include "config.h"
#include "list.h"
#include "msg.h"
#include "ring.h"
#include "room.h"
#include "timer.h"
#include "users.h"

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

struct conn;
struct sendbuf;
struct sq_node;
struct tls_config;

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

/*
 * Why a connection failed before it became a WebSocket (or before its HTTP request was
 * answered): the `reason` label of ringcast_handshakes_failed_total. The names are
 * metrics.c's; the refusals are ARCHITECTURE.md's ("Refusals during the upgrade").
 */
enum hs_fail {
    HS_FAIL_BAD_REQUEST,   /* 400, and the other refusals of a request: 405, 411, 413, 431 */
    HS_FAIL_FORBIDDEN,     /* 403: origin or token */
    HS_FAIL_NOT_FOUND,     /* 404: unknown path */
    HS_FAIL_NOT_WEBSOCKET, /* 426: not an upgrade, or a version other than 13 */
    HS_FAIL_PER_IP,        /* 429: --max-conns-per-ip */
    HS_FAIL_UNAVAILABLE,   /* 503: full or draining */
    HS_FAIL_TIMEOUT,       /* no complete request within --handshake-timeout */
    HS_FAIL_TLS,           /* the TLS handshake failed */
    HS_FAIL_OTHER,         /* 500 and anything else */
    HS_FAIL_NR,
};

/* The reason a refusal with HTTP <status> counts under. Cannot fail. */
static inline enum hs_fail hs_fail_of_status(int status)
{
    switch (status) {
    case 400:
    case 405:
    case 411:
    case 413:
    case 431:
        return HS_FAIL_BAD_REQUEST;
    case 403:
        return HS_FAIL_FORBIDDEN;
    case 404:
        return HS_FAIL_NOT_FOUND;
    case 426:
        return HS_FAIL_NOT_WEBSOCKET;
    case 429:
        return HS_FAIL_PER_IP;
    case 503:
        return HS_FAIL_UNAVAILABLE;
    default:
        return HS_FAIL_OTHER;
    }
}

/* Counts one failed handshake, in the total and under <why> (enum hs_fail). */
#define STAT_HS_FAIL(s, why)                                                                       \
    do {                                                                                           \
        STAT_ADD(s, handshakes_failed, 1);                                                         \
        STAT_ADD(s, hs_failed[(why)], 1);                                                          \
    } while (0)

struct shard_stats {
    atomic_uint_fast64_t conns;
    atomic_uint_fast64_t accepted;
    atomic_uint_fast64_t handshakes_failed;     /* all reasons */
    atomic_uint_fast64_t hs_failed[HS_FAIL_NR]; /* per enum hs_fail */
    atomic_uint_fast64_t msgs_in;
    atomic_uint_fast64_t msgs_out;
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
    atomic_uint_fast64_t sends;
    atomic_uint_fast64_t slow_close;
    atomic_uint_fast64_t slow_drop;
    atomic_uint_fast64_t paused; /* publishers paused by backpressure (conn_pause) */
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
    atomic_uint_fast64_t upgrades;        /* connections that became WebSockets */
    atomic_uint_fast64_t closes;          /* upgraded connections that ended */
    /* The shard thread's CPU time, in ns. Its one writer is the main thread
     * (metrics_sample_shards), so that the shard's loop never pays for the clock call. */
    atomic_uint_fast64_t cpu_ns;
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
    struct users users; /* protocol connections by user (the server API) */
    struct timer_wheel wheel;
    uint32_t now; /* cached second (CLOCK_MONOTONIC) of this loop iteration */
    uint64_t now_ns;
    uint64_t flush_ns; /* clock at the start of this turn's flush */
    struct fifo flush; /* of conn.flush_link: the longest waiting is sent first */
    uint32_t nr_flush; /* connections in the FIFO */
    struct sq_node *node_free;
    /* conn_pause: the connections whose reading is paused (some may be gone meanwhile) */
    struct paused_list {
        struct {
            uint32_t idx, gen;
            uint32_t until;     /* shard millisecond (wrapping) at which reading resumes */
            struct rxbuf *held; /* what was read while paused, handled when it resumes */
        } * v;
        uint32_t nr, cap;
    } paused;
    struct sendbuf *sendbuf_free;
    uint32_t nr_sendbuf_free;
    bool draining;
    bool draining_done;
    uint64_t drain_deadline_ns;
    bool xs_pending;
    uint32_t trim_sec;   /* second of the last tls_thread_tick() */
    uint32_t hs_active;  /* TLS handshakes under way (CF_TLS_HS) */
    uint32_t hs_waiting; /* CF_TLS_WAIT connections still alive */
    struct fifo hs_wait; /* of conn.flush_link: CF_TLS_WAIT connections, dead ones included */
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
    uint64_t started_ns;    /* mono_ns() at start, for the server API's `info` uptime */
    char node_uid[37];      /* this process's random UUID, the server API's node `uid` */
};

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

/* Pushes an envelope to shard <to>. Returns 0, or -ENOMEM when the queue could not grow (the
 * envelope was not sent; what <ptr> holds is still the caller's). */
int shard_push(struct shard *s, unsigned to, uint32_t kind, void *ptr, uint64_t val);

/* Current monotonic time in ns. */
uint64_t mono_ns(void);

#endif
