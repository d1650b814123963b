/* SPDX-License-Identifier: MIT */
/*
 * worker: internals shared by the files of one ringcast-bench worker process (worker.c: the
 * io_uring loop, phases and pacing; client.c: one connection's life, from socket to close).
 *
 * A worker owns one io_uring (SINGLE_ISSUER | DEFER_TASKRUN) with a sparse table of registered
 * files, one slot per client it owns: a socket is created, bound and configured with plain
 * syscalls, installed into its slot and its plain descriptor closed at once, so a worker holds
 * up to ~20,000 connections while its fd table stays nearly empty, and several workers go past
 * the per-process open-file limit together (PLATFORM.md section 2). Receives are multishot,
 * from one provided buffer ring, so idle connections hold no receive memory.
 *
 * wss:// clients add a TLS session (tlsclient.h) between those receives and sends: received
 * bytes are fed to it, the plaintext it gives goes where a plain client's bytes go, and what the
 * client queues to send is plaintext, sealed when a send starts. The worker owns the config (one
 * CTR-DRBG, the saved session for --tls-resume) that all its sessions share.
 *
 * Everything here belongs to the worker process; nothing is shared but its stats block.
 */
#ifndef RINGCAST_BENCH_WORKER_H
#define RINGCAST_BENCH_WORKER_H

#include "bench.h"
#include "pace.h"
#include "proto.h"
#include "tlsclient.h"
#include "ws_frame.h"
#include "wsclient.h"

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

enum client_state {
    CL_IDLE,       /* not started */
    CL_CONNECTING, /* connect in flight */
    CL_TLS,        /* wss: TLS handshake in progress */
    CL_UPGRADING,  /* request sent, waiting for 101 */
    CL_OPEN,
    CL_CLOSING, /* close frame sent or received */
    CL_DONE,    /* slot closed */
};

enum {
    CL_F_RECV = 1 << 0,    /* multishot receive armed */
    CL_F_SENDING = 1 << 1, /* one send in flight */
    CL_F_CLOSE_SENT = 1 << 2,
    CL_F_CLOSE_RCVD = 1 << 3,
    CL_F_ENDING = 1 << 4, /* tearing down: cancel, then close the slot */
    CL_F_CANCELLED = 1 << 5,
    CL_F_JOINED = 1 << 6,
    CL_F_CONNECT = 1 << 7, /* connect in flight */
};

/* user_data: [op:8][client:32]. Slots are never reused within a run, so no generation. */
enum { UD_CONNECT = 1, UD_RECV, UD_SEND, UD_CANCEL, UD_CLOSE };

struct client {
    struct ws_parser parser;
    uint64_t t_start; /* connect submitted: handshake latency starts here */
    uint64_t t_tls;   /* wss: ClientHello queued */
    struct tlsc *tls; /* wss: the TLS session, NULL otherwise and once the slot is closed */
    uint8_t *aux;     /* upgrade answer, a split control frame, or a split message */
    uint8_t *pend;    /* bytes queued behind the send in flight (wss: plaintext) */
    uint8_t *fly;     /* bytes of the send in flight (wss: ciphertext) */
    uint8_t *ctl;     /* a control frame split across receives */
    uint32_t aux_len, aux_cap;
    uint32_t pend_len, pend_cap;
    uint32_t fly_len, fly_off, fly_cap;
    uint32_t seq;      /* last sequence number published */
    uint32_t inflight; /* echo: own messages not back yet */
    uint32_t msg_len;  /* bytes of the data message being received */
    uint8_t hdr_len;   /* leading bytes of a split data message kept in <hdr> */
    uint8_t ctl_len;
    uint8_t state;
    uint8_t flags;
    uint8_t nr_ops; /* requests in flight that name this client */
    uint8_t joins;  /* PROTO_RX_JOINED answers still awaited before the client is a member */
    char key[WSC_KEY_LEN + 1];
    uint8_t hdr[48];
};

struct worker {
    const struct bench_opts *o;
    const struct proto_ops *proto;
    struct bench_ctl *ctl;
    struct worker_stats *st;
    uint32_t id;
    uint32_t lo, n; /* clients lo .. lo + n - 1 */
    struct client *c;
    uint32_t *last_seq; /* n * seq_slots, or NULL when not tracked */
    uint32_t seq_slots;

    struct io_uring ring;
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    unsigned nr_bufs, buf_size, br_added;

    struct wsc_random rnd;
    uint64_t now;
    uint8_t opcode;

    uint32_t next_open;  /* next client to start */
    uint32_t nr_pending; /* connecting or upgrading */
    uint32_t nr_live;    /* started and slot not closed yet */
    uint32_t window;     /* pending handshakes allowed at once */
    struct pace conn_pace;
    bool conn_paced;

    uint32_t phase;
    struct pace pub_pace;
    struct rng pick;
    bool run_started;
    uint32_t fan_inflight; /* fanout window: published, own echo not back yet */
    bool closing;
    bool forced;
    uint32_t close_next; /* next client to close (or, once forced, to abort) */
    uint64_t close_start;
    uint64_t last_done_t; /* a client last reached CL_DONE */
    uint64_t forced_t;
    uint64_t next_scan;
    uint64_t poll_until; /* --poll-us: poll without blocking until then */
    uint64_t next_cpu;
    uint64_t cpu_run_start;

    uint8_t *scratch; /* at least WSC_RESPONSE_MAX + buf_size bytes */

    struct tlsc_config *tls_cfg; /* wss: shared by this worker's sessions; NULL for ws */
    uint8_t *tls_plain;          /* wss: TLSC_PLAIN_MAX bytes, one record decrypted */
    bool tls_primed;             /* --tls-resume: the first handshake is over (its session saved) */
};

/* client.c */

/* Creates, configures and installs sockets for clients next_open .. next_open + <count> - 1
 * and submits their connects. Returns how many were started. */
uint32_t client__open_batch(struct worker *w, uint32_t count);

/* Dispatches one completion. */
void client__handle_cqe(struct worker *w, const struct io_uring_cqe *cqe);

/*
 * Publishes one message from local client <i>, due at <due_ns>: stamped with the time it is
 * written (or <due_ns> with --stamp schedule); the difference is recorded as send lag.
 */
void client__publish(struct worker *w, uint32_t i, uint64_t due_ns);

/* Starts the closing handshake (or a teardown if not open yet) of local client <i>. */
void client__close(struct worker *w, uint32_t i);

/* Tears local client <i> down at once: cancels its requests, then closes its slot. */
void client__abort(struct worker *w, uint32_t i);

/* worker.c */

/* An SQE, submitting first when the SQ is full. Never NULL. */
struct io_uring_sqe *worker__sqe(struct worker *w);

#endif
