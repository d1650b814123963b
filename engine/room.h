/* SPDX-License-Identifier: MIT */
/*
 * room: rooms, the subscriptions that make connections their members, fan-out, and questions
 * about a room asked from any shard.
 *
 * Every shard keeps its own table of rooms: those with local subscriptions, and those whose
 * home it is (xxh3(name, seed) % shards). The home shard also records which shards have
 * members, as a bitmap fed by JOIN and LEAVE envelopes, so that a publish travels publisher ->
 * home -> each member shard once, never once per member. Order per publisher holds because
 * every hop is a FIFO ring per (from, to) pair.
 *
 * A subscription (struct sub) links one connection into one room. Its memory is the caller's:
 * the raw-room handler embeds exactly one in its connection's private area, protocol mode
 * keeps many per connection. A room never frees a subscription and never touches a connection
 * except to queue a message on it (conn_enqueue).
 *
 * Shard rule: every function taking a struct shard must be called on that shard's thread, with
 * subscriptions of that shard's connections.
 */
#ifndef RINGCAST_ROOM_H
#define RINGCAST_ROOM_H

#include "history.h"
#include "list.h"
#include "msg.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct engine;
struct room;
struct shard;
struct xshard_env;

/* Cross-shard envelope kinds (struct xshard_env.kind); every one is the room module's. */
enum {
    XS_PUBLISH = 1, /* member shard -> home: a message to fan out (ptr: msg, one ref) */
    XS_DELIVER,     /* home -> member shard: deliver to local members (ptr: msg, one ref) */
    XS_JOIN,        /* member shard -> home: first local member (ptr: a struct room the home
                       keeps or frees) */
    XS_LEAVE,       /* member shard -> home: last local member left (ptr: msg with the name) */
    XS_ASK,         /* asker -> home (and on to each member shard, for presence): a question
                       (ptr: struct room_ask) */
    XS_ANSWER,      /* home -> asker: the same question, answered (ptr: struct room_ask) */
    XS_PAUSE,       /* member shard -> a publisher's shard: its messages meet full queues here,
                       pause its reading (ptr: NULL; val: slot | ms / 4 << 24 | generation << 32) */
};

/* Backpressure (conn_pause): a publisher whose message is queued to a receiver holding more
 * than a quarter of --send-queue, or waits with as many bytes of others for another shard to
 * take them, stops being read for this long for each such quarter, again and again while that
 * lasts, so that a flood is paced by the room's readers instead of closing them as slow
 * consumers. */
#define ROOM_PAUSE_MS     20
#define ROOM_PAUSE_MAX_MS 1000 /* the longest pause, for a backlog far over the limit */
/* A receiver over that quarter whose sends have not moved for this long is cut instead of
 * pacing the room (--slow-consumer close). */
#define ROOM_STALL_S 2

struct room_table {
    struct room **buckets;
    uint32_t mask;
    uint32_t nr;
    struct list pending; /* rooms whose JOIN or LEAVE could not be sent yet (retried) */
    struct list streams; /* home: streams holding publications, by last publication, oldest
                            first (the --history-ttl sweep) */
};

enum sub_flag {
    SUB_ECHO = 1u << 0,       /* deliver the connection's own publishes to it too */
    SUB_PROTO = 1u << 1,      /* a protocol-mode subscriber: it gets each message as a `pub` push
                                 (msg.pub, encoded once by the room's home) and presence counts it
                                 (it must be embedded as proto_conn.h says) */
    SUB_JOIN_LEAVE = 1u << 2, /* protocol: also gets the join and leave pushes */
    SUB_PENDING = 1u << 3,    /* protocol: waits for its position from the home: gets nothing
                                 (every publication sent meanwhile is in that answer or before
                                 its position); the owner clears it */
};

/* One connection's membership of one room. All-zero: not subscribed. */
struct sub {
    struct list link;  /* private: in the room's list */
    struct room *room; /* NULL when not subscribed */
    struct conn *conn;
    uint32_t flags; /* enum sub_flag */
};

/*
 * Subscribes <c> to room <name>[0..<len>) through <sub> (borrowed until room_unsubscribe; it
 * must not be subscribed already), with <flags>. A connection holds at most one subscription
 * per room: the fan-out relies on it when a member is closed in the middle of it. The home shard
 * learns of the first local member through a JOIN; if that cannot be sent now (no memory) it is
 * retried every loop turn (room_retry), never lost. Returns 0 or -ENOMEM (nothing changed).
 */
int room_subscribe(struct shard *s, struct sub *sub, struct conn *c, const char *name, size_t len,
                   uint32_t flags);

/* Ends <sub>'s membership; a no-op when it is not subscribed. Cannot fail. */
void room_unsubscribe(struct shard *s, struct sub *sub);

/*
 * Publishes a message from the member behind <from> to its room, on every shard with members:
 * the frame is encoded once here; the publisher is skipped unless its sub has SUB_ECHO.
 * Returns 0 or -ENOMEM.
 */
int room_publish(struct shard *s, const struct sub *from, uint8_t opcode, const uint8_t *p,
                 size_t len);

/*
 * Publishes to room <name>[0..<name_len>) from outside any connection (the HTTP API, a cluster
 * peer, a protocol client), from any shard: every member gets it, protocol subscribers with the
 * publisher's ClientInfo JSON <info>[0..<info_len>) (may be empty; at most UINT16_MAX bytes).
 * The home gives it the room's next offset and keeps it in the history (--history-size), even
 * when no member is there; with no history and no member it is dropped. Returns 0 or -ENOMEM.
 */
int room_publish_by_name(struct shard *s, const char *name, size_t name_len, uint8_t opcode,
                         const uint8_t *p, size_t len);
int room_publish_info(struct shard *s, const char *name, size_t name_len, uint8_t opcode,
                      const uint8_t *p, size_t len, const char *info, size_t info_len);

/*
 * Sends the ready protocol push <push>[0..<len>) (a join or a leave) to the protocol members of
 * room <name> that asked for join/leave (SUB_JOIN_LEAVE), through the home, in order with the
 * room's publications. It takes no offset and no place in the history. Returns 0 or -ENOMEM.
 */
int room_push_join_leave(struct shard *s, const char *name, size_t name_len, const char *push,
                         size_t len);

/* ---- questions about a room, answered by its home ----------------------------------------- */

/* Where an answer goes: the asking connection, told apart from a later one in its slot. */
struct reply_to {
    uint32_t shard;
    uint32_t slot;
    uint32_t gen;
};

enum room_question {
    ROOM_Q_INFO = 1,       /* does the room exist, and on how many shards has it members */
    ROOM_Q_PRESENCE,       /* result: {"presence":{"<client>":ClientInfo,…}} */
    ROOM_Q_PRESENCE_STATS, /* result: {"num_clients":N,"num_users":M} */
    ROOM_Q_HISTORY,        /* in: hist; result: {"publications":[…],"epoch":"…","offset":N} */
    ROOM_Q_SUBSCRIBE,      /* in: hist.has_since (recover), since_offset, since_epoch; answer:
                              epoch, top, recovery and, when recovered, result: the missed
                              Publication objects, comma-separated, oldest first */
    ROOM_Q_PUBLISH,        /* in: msg, published by the home as room_publish_info would;
                              result: {"offset":N,"epoch":"…"} of the publication, {} when
                              the room keeps no history (--history-size 0) */
};

struct room_ask;
/* The ClientInfo of a protocol subscription (SUB_PROTO), for presence: proto_conn.h's
 * proto_sub_client_info. Runs on the subscription's shard. */
typedef void (*room_client_info_fn)(const struct sub *sub, struct proto_client_info *ci);
/* Runs on the asker's shard with the answer, only while the asking connection is still the
 * one of the reply address and OPEN. The ask is freed after it returns. */
typedef void (*room_answer_cb)(struct shard *s, struct conn *c, const struct room_ask *a);

/*
 * A question travelling to a room's home and back. Made by room_ask_create on the asker's
 * shard, filled there, answered (the fields below "answer") on the home shard, and freed on the
 * asker's shard after the answer was handled or dropped: the envelopes carry it both ways, and
 * the ring's release/acquire orders the home's writes before the asker's reads.
 */
struct room_ask {
    uint32_t question; /* enum room_question */
    struct reply_to reply;
    room_answer_cb on_answer;
    room_client_info_fn client_info; /* ROOM_Q_PRESENCE and ROOM_Q_PRESENCE_STATS: required */
    uint64_t cookie;                 /* the asker's own */
    struct msg *msg; /* ROOM_Q_PUBLISH in: the publication (one reference, the ask's) */
    /* ROOM_Q_HISTORY and ROOM_Q_SUBSCRIBE in */
    struct {
        int32_t limit; /* as struct history_query */
        bool reverse, has_since;
        uint64_t since_offset;
        char since_epoch[HISTORY_EPOCH_MAX + 1]; /* NUL-terminated; "" matches any */
    } hist;
    /* answer */
    int status;               /* ROOM_Q_INFO: 0, or -ENOENT: no such room (no member anywhere) */
    uint32_t nr_shards;       /* ROOM_Q_INFO: shards with members */
    uint32_t nr_home_members; /* ROOM_Q_INFO: subscriptions on the home shard */
    uint32_t error;           /* protocol error code (§8: 107, 108, 112, 100), 0: answered */
    struct proto_buf result;  /* the result's JSON text (see enum room_question) */
    uint64_t top;             /* ROOM_Q_SUBSCRIBE: the stream's top offset */
    uint32_t recovery;        /* ROOM_Q_SUBSCRIBE with hist.has_since: enum history_recovery */
    char epoch[HISTORY_EPOCH_MAX + 1]; /* ROOM_Q_SUBSCRIBE: the stream's epoch */
    /* private: the presence questions' round of the member shards */
    uint64_t _todo;
    struct proto_buf _users;
    uint32_t _nr_clients;
    bool _at_home_done;
    /* the room */
    uint64_t hash;
    uint16_t name_len;
    char name[];
};

/* A question <q> about room <name>[0..<len>) for <c>, answered to <cb>. Returns it (the caller
 * owns it until room_ask) or NULL when out of memory. */
struct room_ask *room_ask_create(struct shard *s, struct conn *c, uint32_t q, const char *name,
                                 size_t len, room_answer_cb cb);

/* Sends <a> (taken) to the room's home; the answer comes back to <cb> on this shard, or is
 * dropped when the asker is gone by then. When this shard is the home (and no other shard is
 * to be asked), <cb> runs before room_ask returns. Returns 0, or -ENOMEM (<a> freed, no
 * answer). */
int room_ask(struct shard *s, struct room_ask *a);

/* Frees an ask that was never sent. Cannot fail. */
void room_ask_free(struct room_ask *a);

/* A ROOM_Q_PUBLISH question for <c>: the text or binary message <p>/<len> of <opcode> to room
 * <name>, with the publisher's ClientInfo JSON <info> (may be empty). Returns it (send it with
 * room_ask) or NULL when out of memory. */
struct room_ask *room_ask_publish(struct shard *s, struct conn *c, const char *name, size_t len,
                                  uint8_t opcode, const uint8_t *p, size_t plen, const char *info,
                                  size_t info_len, room_answer_cb cb);

/* ---- for the shard loop and the engine -------------------------------------------------- */

/* Handles one cross-shard envelope addressed to this shard. */
void room_handle_envelope(struct shard *s, const struct xshard_env *env);

/* Sends the JOINs and LEAVEs that could not be sent before. Returns true when some are still
 * pending. */
bool room_retry(struct shard *s);

/* Once a second: drops the publications --history-ttl has expired and the rooms left with
 * nothing. Cannot fail. */
void room_tick(struct shard *s);

/* Makes an empty table. Returns 0 or -ENOMEM. */
int room_table_init(struct room_table *t);

/* Frees every room of this shard (shutdown); subscriptions must be gone already. */
void room_table_fini(struct shard *s);

/* Frees what a leftover envelope of kind <kind> holds (after the shards stopped). */
void room_envelope_drop(const struct xshard_env *env);

/* Home shard of a room. */
unsigned room_home(const struct engine *e, uint64_t hash);
uint64_t room_hash(const struct engine *e, const char *name, size_t len);

/* ---- read-only walks (the server API, api.c) ---------------------------------------------- */

/* What room_each shows of one room: borrowed for the callback only. */
struct room_view {
    const char *name;
    size_t name_len;
    uint32_t nr_local; /* subscriptions on this shard */
    bool home_live;    /* this shard is the room's home and some shard has members */
};

/*
 * Calls <fn>(<arg>, view) for every room in this shard's table, in no particular order: those
 * with local subscriptions and those whose home this is. <fn> must not subscribe, unsubscribe,
 * publish or close connections (the table must not change during the walk). Cannot fail.
 */
typedef void (*room_each_fn)(void *arg, const struct room_view *v);
void room_each(struct shard *s, room_each_fn fn, void *arg);

#endif
