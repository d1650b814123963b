/* SPDX-License-Identifier: MIT */
/*
 * history: one channel's stream position and recent publications, for the history command,
 * the server API's history and recovery on resubscribe (PROTOCOL-CENTRIFUGO.md §5, §8).
 *
 * A stream has an offset (the top: offset of the last publication, 1, 2, 3…; 0 when empty)
 * and an epoch, a random string naming this incarnation of the stream, so that a client's
 * position from an earlier one (before a restart, or before the channel was dropped and made
 * again) is never taken for a position in this one. It keeps the last <size> publications
 * (--history-size) in a ring, until --history-ttl seconds after the last publication; then
 * the publications go, and the top and epoch stay (Centrifugo's longer-lived stream meta), so
 * a client that missed nothing still recovers and one that missed something learns it cannot.
 * The ring is allocated at the first publication, grows by doubling up to <size> and is freed
 * when the TTL empties it, so an idle channel costs only this struct and a quiet one little more.
 *
 * Each kept publication is a reference to the msg that carried it (the shared, encoded push,
 * see proto_encode_pub_push) and the span of its Publication object inside the msg's bytes:
 * fan-out and history share one buffer. The history owns one reference per kept publication.
 *
 * Memory is bounded by <size> references. Queries return views into the ring, valid until the
 * next call that changes the history. Offsets held are always contiguous (top - nr + 1 … top).
 * Not thread-safe: every call on the channel's home shard. Time is unix seconds from the caller.
 */
#ifndef RINGCAST_HISTORY_H
#define RINGCAST_HISTORY_H

#include "msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest epoch string. Random epochs are 8 hex digits, as Centrifugo's look (§3). */
#define HISTORY_EPOCH_MAX 32

struct history_item {
    uint64_t offset;
    struct msg *m;    /* one reference, owned by the history */
    uint32_t pub_off; /* the Publication JSON object is m->data[pub_off .. pub_off + pub_len) */
    uint32_t pub_len;
};

struct history {
    uint64_t top;   /* offset of the last publication; 0: none yet */
    uint32_t size;  /* publications kept at most; 0: none (offsets and epoch still move) */
    uint32_t ttl;   /* s after the last publication that the publications live; 0: forever */
    uint32_t nr;    /* publications held */
    uint32_t _head; /* ring slot of the oldest */
    int64_t _expires;
    uint32_t _cap;              /* slots in _ring: 8, 16, … up to <size> as it fills */
    struct history_item *_ring; /* NULL until a publication is kept */
    char epoch[HISTORY_EPOCH_MAX + 1];
    uint8_t epoch_len;
};

/*
 * Starts an empty stream keeping <size> publications for <ttl> s, with epoch <epoch> (at most
 * HISTORY_EPOCH_MAX bytes) or, when <epoch> is NULL, a fresh random one. Returns 0, -EINVAL
 * (epoch too long), or the errno of getrandom(2). Allocates nothing.
 */
int history_init(struct history *h, uint32_t size, uint32_t ttl, const char *epoch);

/* Drops every reference held and frees the ring. Cannot fail. */
void history_fini(struct history *h);

/*
 * A new incarnation: drops the publications, sets the top to 0 and takes epoch <epoch> (NULL:
 * random). Clients holding positions in the old one then fail to recover (epoch changed).
 * Returns as history_init().
 */
int history_reset(struct history *h, const char *epoch);

/* The offset the next publication must carry: top + 1. Cannot fail. */
static inline uint64_t history_next_offset(const struct history *h)
{
    return h->top + 1;
}

/*
 * Appends the publication with offset <offset> (must be history_next_offset()), whose
 * Publication object is <m>->data[<pub_off> .. <pub_off> + <pub_len>), at time <now>. Takes a
 * reference to <m> of its own (the caller keeps its reference). Evicts the oldest when full.
 * Returns 0; -EINVAL when <offset> is not the next one or the span is outside <m> (nothing
 * changes); -ENOMEM when the ring could not be allocated: the top still moves to <offset> and
 * the publication is not kept, which history_recover() then reports as a gap, never as a
 * silent hole.
 */
int history_append(struct history *h, uint64_t offset, struct msg *m, uint32_t pub_off,
                   uint32_t pub_len, int64_t now);

/* Drops the publications when <now> is --history-ttl or more after the last one. Every query
 * calls it first. Cannot fail. */
void history_expire(struct history *h, int64_t now);

/* A view of publications in the order to send them; valid until the history changes. */
struct history_view {
    uint32_t nr;
    /* private */
    const struct history *_h;
    uint32_t _first; /* position of item 0, counted from the oldest held */
    bool _reverse;
};

/* Item <i> (< <v>->nr) of a view. Cannot fail. */
const struct history_item *history_view_at(const struct history_view *v, uint32_t i);

struct history_query {
    int32_t limit;           /* 0: no publications, only the position; < 0: all; > 0: at most */
    bool reverse;            /* newest first */
    bool has_since;          /* `since` given */
    uint64_t since_offset;   /* forward: those after it; reverse: those before it */
    const char *since_epoch; /* must be the epoch; empty (or NULL) matches any (§5) */
    size_t since_epoch_len;
};

/*
 * The history command (§5) at time <now>, with at most <max_pubs> publications (0: no cap).
 * Fills *<v>; the reply's `epoch` and `offset` are h->epoch and h->top. Returns 0, or
 *   -EINVAL  reverse with since.offset 0: error 107 "bad request"
 *   -ESTALE  since.epoch is not this stream's epoch: error 112 "unrecoverable position"
 * When `since` points before the oldest publication kept, the publications that are kept are
 * returned (history answers what it has; recovery is where gaps matter).
 */
int history_query(struct history *h, const struct history_query *q, int64_t now, uint32_t max_pubs,
                  struct history_view *v);

enum history_recovery {
    HISTORY_RECOVERED = 0, /* every missed publication is in the view (maybe none) */
    HISTORY_EPOCH_CHANGED, /* the client's epoch is another incarnation of the stream */
    HISTORY_GAP,           /* some publications after the client's offset are gone */
    HISTORY_AHEAD,         /* the client's offset is beyond the top: not this stream's */
    HISTORY_TOO_MANY,      /* more missed publications than <max_pubs> */
};

/*
 * The recovery decision for a subscribe with recover=true, <offset> and <epoch>/<epoch_len>
 * (empty matches any epoch), at time <now> (§8). HISTORY_RECOVERED fills *<v> with every
 * publication after <offset>, oldest first; the reply then carries recovered:true and
 * `offset` = <offset> (the SDK advances through the publications). Any other result leaves
 * *<v> empty; the reply then carries no `recovered`, and `offset`/`epoch` = h->top/h->epoch.
 * <max_pubs> caps one recovery (Centrifugo's recovery_max_publication_limit; 0: no cap).
 * Cannot fail.
 */
enum history_recovery history_recover(struct history *h, uint64_t offset, const char *epoch,
                                      size_t epoch_len, int64_t now, uint32_t max_pubs,
                                      struct history_view *v);

/* A word for the log: "recovered", "epoch changed", "gap", "ahead", "too many". */
const char *history_recovery_str(enum history_recovery r);

#endif
