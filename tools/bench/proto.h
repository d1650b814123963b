/* SPDX-License-Identifier: MIT */
/*
 * proto: the messaging protocol a ringcast-bench client speaks on top of WebSocket, kept apart
 * from the transport (worker.c) so that another adapter (ringcast's protocol mode, Socket.IO,
 * a peer's pub/sub) can be added for comparison runs without touching the io_uring code.
 *
 * An adapter says which path a client asks for, what it sends right after the upgrade to become
 * a member (nothing in raw room mode), how a published message is written, and how a received
 * message is classified. Every published payload carries the publisher's client number, a
 * per-publisher sequence number (from 1) and the scheduled send time (CLOCK_MONOTONIC
 * nanoseconds: every process of a run is on one machine, so the clocks agree), which is how
 * receivers measure latency, loss and reordering without talking to each other.
 *
 * Some protocols want an answer to their own chatter (Engine.IO's ping): rx() says so, reply()
 * writes the answer, and the client sends it as a text message. Some put several protocol
 * messages in one WebSocket message (Centrifugo's newline-separated batches): split() says
 * where each ends, and rx() then sees one protocol message at a time.
 *
 * Adapters own nothing and keep no state: every function is pure given its arguments.
 */
#ifndef RINGCAST_BENCH_PROTO_H
#define RINGCAST_BENCH_PROTO_H

#include "plan.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_msg {
    uint32_t pub;   /* publishing client */
    uint32_t seq;   /* per publisher, from 1 */
    uint64_t ts_ns; /* scheduled send time */
};

enum proto_rx {
    PROTO_RX_DELIVERY, /* a published message: *<m> is filled in */
    PROTO_RX_JOINED,   /* an answer the hello waits for (hello() says how many): a member then */
    PROTO_RX_IGNORE,   /* protocol chatter that is neither */
    PROTO_RX_REPLY,    /* protocol chatter to answer: reply() writes the answer */
    PROTO_RX_BAD,      /* not understood, or a refusal: before JOINED the client fails */
};

/* Longest answer reply() writes. */
#define PROTO_REPLY_MAX 64

struct proto_ops {
    const char *name;
    /* Leading bytes of a message that rx() needs; SIZE_MAX for the whole message. */
    size_t rx_need;
    /* Smallest payload publish() can write. */
    size_t min_payload;
    /*
     * The server delivers a publish to its publisher too (it is a subscriber like any other):
     * its own copy is then expected and counted as a delivery.
     */
    bool self_delivery;
    /*
     * Writes the request path with query of client <g> (NUL-terminated). Returns its length
     * or -ENOSPC.
     */
    int (*path)(const struct bench_opts *o, uint32_t g, char *out, size_t cap);
    /*
     * Writes the payload of the message to send right after the upgrade (0: none) and sets
     * *<joins> to the number of PROTO_RX_JOINED answers that make the client a member (0: a
     * member as soon as the upgrade completes).
     */
    size_t (*hello)(const struct bench_opts *o, uint32_t g, uint8_t *out, size_t cap,
                    uint32_t *joins);
    /*
     * Writes the payload of one published message of exactly o->payload bytes (at least
     * min_payload) into <out> (<cap> >= o->payload). Returns its length.
     */
    size_t (*publish)(const struct bench_opts *o, const struct bench_msg *m, uint8_t *out,
                      size_t cap);
    /*
     * Length of the first protocol message of the <len> bytes at <p> (a whole WebSocket
     * message, or what follows the previous protocol message and its separator), without its
     * separator; the client skips one separator byte after it. NULL for a protocol that sends
     * one protocol message per WebSocket message. An adapter with split() has rx_need SIZE_MAX.
     */
    size_t (*split)(const uint8_t *p, size_t len);
    /*
     * Classifies a received data message of <total> bytes (one protocol message of it, with
     * split()), of which the first <have> (at least min(rx_need, total)) are in <p>.
     */
    enum proto_rx (*rx)(const struct bench_opts *o, const uint8_t *p, size_t have, size_t total,
                        struct bench_msg *m);
    /*
     * Writes the payload of the text message that answers a message rx() classified as
     * PROTO_RX_REPLY (the same <p>, <have>, <total>) into <out> (<cap> >= PROTO_REPLY_MAX).
     * Returns its length, 0 when there is nothing to send. NULL for an adapter whose rx() never
     * returns PROTO_RX_REPLY.
     */
    size_t (*reply)(const struct bench_opts *o, const uint8_t *p, size_t have, size_t total,
                    uint8_t *out, size_t cap);
};

/* Raw room mode: WS /room/<name>, messages forwarded verbatim (proto_raw.c). */
extern const struct proto_ops proto_raw;

/* Socket.IO v5 over Engine.IO v4, WebSocket transport only (proto_socketio.c). */
extern const struct proto_ops proto_socketio;

/*
 * The Centrifugo client protocol v2 in JSON, for ringcast's protocol mode and Centrifugo
 * (proto_centrifugo.c).
 */
extern const struct proto_ops proto_centrifugo;

/* Looks up an adapter by name; NULL when unknown. */
const struct proto_ops *proto_find(const char *name);

/*
 * Internals shared by the adapters: raw mode's payload object (proto_raw.c), which other
 * adapters wrap in their own framing.
 */

/* Leading bytes of the object that carry the bench fields (through the "rcb" value's quote). */
#define PROTO_RAW_HEAD_LEN 41
/* Smallest object. */
#define PROTO_RAW_MIN_LEN 42
/*
 * Smallest object padded with a "p" member rather than spaces: from here on the object reads
 * back unchanged through a JSON parser and serialiser (JSON.parse + JSON.stringify).
 */
#define PROTO_RAW_JSON_MIN 49

/*
 * Writes the payload object of message <m>, exactly <len> bytes (at least PROTO_RAW_MIN_LEN),
 * into <out>. Returns <len>. Cannot fail.
 */
size_t proto__raw_encode(const struct bench_msg *m, uint8_t *out, size_t len);

/*
 * Decodes the bench fields of a payload object of <total> bytes whose first <have> are in <p>
 * into *<m>. Returns false when it is not one (too short, wrong prefix, not hex).
 */
bool proto__raw_decode(const uint8_t *p, size_t have, size_t total, struct bench_msg *m);

/*
 * Smallest --payload of a centrifugo run of <o>: the publish command around the channel with
 * the longest name in the run and the smallest JSON-clean payload object. Cannot fail.
 */
size_t proto__centrifugo_min_payload(const struct bench_opts *o);

#endif
