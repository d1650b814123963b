/* SPDX-License-Identifier: MIT */
/*
 * bench: what the ringcast-bench parent and its worker processes share.
 *
 * The parent maps one anonymous MAP_SHARED region before forking: a control block it writes
 * (the phase of the run and the publishing window) and one stats block per worker, which only
 * that worker writes. Every field written by one process and read by another goes through
 * relaxed atomic stores and loads (STAT_* below), except the phase, which is a release store by
 * the parent paired with the acquire load in the worker's loop, so that the times written before
 * it are visible once the new phase is. Histograms follow hist.h's one-writer rule.
 *
 * Workers never talk to each other: each owns a contiguous range of clients, and a receiver
 * checks what it gets (sequence, timestamp) from the payload alone.
 */
#ifndef RINGCAST_BENCH_BENCH_H
#define RINGCAST_BENCH_BENCH_H

#include "hist.h"
#include "plan.h"

#include <stdint.h>

enum bench_phase {
    PH_CONNECT, /* open connections (at a pace or within a window) */
    PH_RUN,     /* from t_run_start (a settle after the last join) publish until t_run_end;
                 * hold: just hold */
    PH_DRAIN,   /* publishing over: wait for what is still on its way */
    PH_CLOSE,   /* closing handshake with every connection, then exit */
};

struct bench_ctl {
    uint32_t phase;           /* enum bench_phase; release store, acquire load */
    uint32_t stop_connecting; /* ramp: the limit was found */
    uint64_t t_run_start;     /* CLOCK_MONOTONIC ns; valid from PH_RUN on */
    uint64_t t_run_end;
    uint64_t t_measure; /* messages scheduled before this are left out of latency */
    uint64_t seed;      /* publish schedule: every worker draws the same picks */
};

/* Close codes a worker tells apart when the server closes (anything else is "other"). */
enum { CC_1000, CC_1001, CC_1008, CC_OTHER, CC_NR };

struct worker_stats {
    /* connections */
    uint64_t attempted;
    uint64_t established;
    uint64_t open;
    uint64_t pending;        /* connect or upgrade in progress */
    uint64_t failed;         /* never reached OPEN, for any reason below */
    uint64_t refused;        /* HTTP status other than 101 */
    uint64_t connect_errors; /* connect(2) failed */
    uint64_t hs_timeouts;
    uint64_t proto_errors; /* malformed answer or frames */
    uint64_t client_limit; /* our side ran out of something (ports, sockets) */
    uint64_t tls_errors;   /* the TLS handshake failed (alert, verification, malformed) */
    uint64_t dropped;      /* open connections the server closed or reset */
    uint64_t close_clean;  /* our close answered by the server's close */
    uint64_t close_forced;
    uint64_t close_codes[CC_NR];
    int32_t first_status;     /* first refusal's HTTP status */
    int32_t first_errno;      /* first connect error */
    uint64_t t_first_attempt; /* CLOCK_MONOTONIC ns, 0 until set */
    uint64_t t_last_established;
    /* TLS handshakes (wss://), from the ClientHello to the server's Finished */
    uint64_t tls_full;
    uint64_t tls_resumed;
    uint64_t tls_offered;               /* handshakes that offered the saved session */
    uint64_t t_full_first, t_full_last; /* first ClientHello, last completion; 0 until set */
    uint64_t t_resumed_first, t_resumed_last;
    int32_t first_tls_error; /* mbedtls code of the first failed handshake */
    char tls_suite[64];      /* suite of the first completed handshake; written once */
    /* messages */
    uint64_t published;
    uint64_t expected; /* deliveries the publishes of this worker must produce */
    uint64_t skipped;  /* picks whose client was not open */
    uint64_t received; /* deliveries, duplicates not counted */
    uint64_t reordered;
    uint64_t duplicates;
    uint64_t malformed;
    uint64_t unexpected; /* a message from a publisher this client should not hear */
    uint64_t echoes;     /* fanout publisher's own messages back */
    uint64_t rx_bytes;
    uint64_t tx_bytes;
    uint64_t recvs; /* receive completions carrying bytes */
    uint64_t rx_frames;
    uint64_t pings;
    uint64_t nobufs;      /* multishot receives stopped for lack of buffers */
    uint64_t max_lag_ns;  /* how late a publish went out against its schedule */
    uint64_t late;        /* publishes more than 1 ms late */
    uint64_t seq_tracked; /* 1 when reordering and duplicates are checked */
    uint64_t waits_run;   /* waits that could block, from t_run_start to the end of the drain */
    /* this process */
    uint64_t cpu_us;         /* user + system, refreshed about every 100 ms */
    uint64_t cpu_us_connect; /* spent until the connect phase was over */
    uint64_t cpu_us_run;     /* spent from t_run_start to the end of the drain */
    uint32_t connect_done;
    uint32_t exited;
    char fatal[160];        /* a setup failure, for the parent to print */
    struct hist lat;        /* delivery latency (echo: round trip), ns */
    struct hist lag;        /* send lag: actual send time - scheduled time, ns */
    struct hist hs;         /* connect + upgrade, ns */
    struct hist hs_full;    /* TLS: full handshakes, ns */
    struct hist hs_resumed; /* TLS: abbreviated handshakes, ns */
};

struct bench_shm {
    struct bench_ctl ctl;
    struct worker_stats w[]; /* opts.workers of them */
};

#define STAT_LOAD(p)   __atomic_load_n(&(p), __ATOMIC_RELAXED)
#define STAT_SET(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELAXED)
/* One writer per field: a relaxed load and store, no locked instruction. */
#define STAT_ADD(p, n) STAT_SET(p, (p) + (n))
#define STAT_INC(p)    STAT_ADD(p, 1)

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now(void);

/*
 * Runs worker <id> of the plan <o> in the calling (forked) process until the parent moves the
 * run to PH_CLOSE and every connection is closed. Returns the process exit status: 0, or 3
 * after a setup failure described in its stats' <fatal>.
 */
int worker_main(const struct bench_opts *o, struct bench_shm *shm, uint32_t id);

#endif
