/* SPDX-License-Identifier: MIT */
/*
 * history: a channel's stream position and recent publications. The contract is in history.h.
 *
 * The ring holds the offsets top - nr + 1 … top, oldest at slot _head, so every question
 * ("which publications follow offset N?") is arithmetic on those bounds: nothing is searched.
 * The history command's `since` and the recovery rules are Centrifugo's (its memory broker
 * reads `since` as "after offset" forward and "before offset" in reverse, and its isRecovered
 * asks that the first publication returned is offset + 1 and the last is the top).
 */
#include "history.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---------------------------------------------------------------------------------------------
 * Internals
 */

static int set_epoch(struct history *h, const char *epoch)
{
    if (epoch) {
        size_t n = strlen(epoch);
        if (n > HISTORY_EPOCH_MAX)
            return -EINVAL;
        memcpy(h->epoch, epoch, n + 1);
        h->epoch_len = (uint8_t)n;
        return 0;
    }
    static const char hex[] = "0123456789abcdef";
    uint8_t r[4];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return errno ? -errno : -EIO;
    for (size_t i = 0; i < sizeof(r); i++) {
        h->epoch[2 * i] = hex[r[i] >> 4];
        h->epoch[2 * i + 1] = hex[r[i] & 15];
    }
    h->epoch[2 * sizeof(r)] = '\0';
    h->epoch_len = 2 * sizeof(r);
    return 0;
}

static struct history_item *slot(const struct history *h, uint32_t pos)
{
    /* <pos> counts from the oldest held; both are below <size>, so the sum fits in 64 bits. */
    return &h->_ring[((uint64_t)h->_head + pos) % h->_cap];
}

static void drop_all(struct history *h)
{
    for (uint32_t i = 0; i < h->nr; i++)
        msg_unref(slot(h, i)->m);
    free(h->_ring);
    h->_ring = NULL;
    h->_cap = 0;
    h->nr = 0;
    h->_head = 0;
}

/* Makes room for one more publication below <size>: the ring starts at 8 slots and doubles, so
 * a channel with a few publications does not hold --history-size slots. Returns 0 or -ENOMEM
 * (the ring is as it was). */
static int grow(struct history *h)
{
    uint32_t cap = h->_cap ? h->_cap * 2 : 8;
    if (cap > h->size || cap < h->_cap)
        cap = h->size;
    struct history_item *r = malloc((size_t)cap * sizeof(*r));
    if (!r)
        return -ENOMEM;
    for (uint32_t i = 0; i < h->nr; i++)
        r[i] = *slot(h, i);
    free(h->_ring);
    h->_ring = r;
    h->_cap = cap;
    h->_head = 0;
    return 0;
}

/* Offset of the oldest publication held; only meaningful when nr > 0. */
static uint64_t oldest(const struct history *h)
{
    return h->top - h->nr + 1;
}

static bool epoch_matches(const struct history *h, const char *epoch, size_t len)
{
    return len == 0 || (len == h->epoch_len && memcmp(epoch, h->epoch, len) == 0);
}

/* ---------------------------------------------------------------------------------------------
 * API
 */

int history_init(struct history *h, uint32_t size, uint32_t ttl, const char *epoch)
{
    *h = (struct history){.size = size, .ttl = ttl};
    return set_epoch(h, epoch);
}

void history_fini(struct history *h)
{
    drop_all(h);
}

int history_reset(struct history *h, const char *epoch)
{
    char keep[HISTORY_EPOCH_MAX + 1];
    memcpy(keep, h->epoch, sizeof(keep));
    uint8_t keep_len = h->epoch_len;
    int rc = set_epoch(h, epoch);
    if (rc < 0) {
        memcpy(h->epoch, keep, sizeof(keep));
        h->epoch_len = keep_len;
        return rc;
    }
    drop_all(h);
    h->top = 0;
    return 0;
}

int history_append(struct history *h, uint64_t offset, struct msg *m, uint32_t pub_off,
                   uint32_t pub_len, int64_t now)
{
    if (offset != h->top + 1 || offset == 0 || pub_off > m->len || pub_len > m->len - pub_off)
        return -EINVAL;
    history_expire(h, now);
    h->top = offset;
    h->_expires = now + h->ttl;
    if (h->size == 0)
        return 0;
    if (h->nr == h->size) {
        msg_unref(slot(h, 0)->m);
        h->_head = (h->_head + 1) % h->_cap;
        h->nr--;
    } else if (h->nr == h->_cap && grow(h) < 0) {
        return -ENOMEM;
    }
    *slot(h, h->nr) = (struct history_item){
        .offset = offset,
        .m = msg_ref(m),
        .pub_off = pub_off,
        .pub_len = pub_len,
    };
    h->nr++;
    return 0;
}

void history_expire(struct history *h, int64_t now)
{
    if (h->ttl && h->nr && now >= h->_expires)
        drop_all(h);
}

const struct history_item *history_view_at(const struct history_view *v, uint32_t i)
{
    return slot(v->_h, v->_reverse ? v->_first - i : v->_first + i);
}

int history_query(struct history *h, const struct history_query *q, int64_t now, uint32_t max_pubs,
                  struct history_view *v)
{
    *v = (struct history_view){._h = h, ._reverse = q->reverse};
    /* Centrifugo: reverse from offset 0 would mean "before the first", a bad request. */
    if (q->has_since && q->reverse && q->since_offset == 0)
        return -EINVAL;
    if (q->has_since && !epoch_matches(h, q->since_epoch, q->since_epoch_len))
        return -ESTALE;
    history_expire(h, now);
    if (q->limit == 0 || h->nr == 0)
        return 0;
    uint64_t want = q->limit < 0 ? UINT64_MAX : (uint64_t)q->limit;
    if (max_pubs && want > max_pubs)
        want = max_pubs;
    uint64_t lo = oldest(h), avail;
    if (!q->reverse) {
        if (q->has_since && q->since_offset >= h->top)
            return 0;
        /* Oldest first, from the first after since.offset (or the oldest held). */
        uint64_t from = q->has_since && q->since_offset >= lo ? q->since_offset + 1 : lo;
        v->_first = (uint32_t)(from - lo);
        avail = h->top - from + 1;
    } else {
        /* Newest first, from the last before since.offset (or the top). */
        uint64_t from = q->has_since && q->since_offset <= h->top ? q->since_offset - 1 : h->top;
        if (from < lo)
            return 0;
        v->_first = (uint32_t)(from - lo);
        avail = from - lo + 1;
    }
    v->nr = (uint32_t)(avail < want ? avail : want);
    return 0;
}

enum history_recovery history_recover(struct history *h, uint64_t offset, const char *epoch,
                                      size_t epoch_len, int64_t now, uint32_t max_pubs,
                                      struct history_view *v)
{
    *v = (struct history_view){._h = h};
    history_expire(h, now);
    if (!epoch_matches(h, epoch, epoch_len))
        return HISTORY_EPOCH_CHANGED;
    if (offset > h->top)
        return HISTORY_AHEAD;
    if (offset == h->top)
        return HISTORY_RECOVERED; /* nothing missed */
    uint64_t missed = h->top - offset;
    /* Every publication from offset + 1 to the top must be held. */
    if (h->nr == 0 || oldest(h) > offset + 1)
        return HISTORY_GAP;
    if (max_pubs && missed > max_pubs)
        return HISTORY_TOO_MANY;
    v->_first = (uint32_t)(offset + 1 - oldest(h));
    v->nr = (uint32_t)missed;
    return HISTORY_RECOVERED;
}

const char *history_recovery_str(enum history_recovery r)
{
    switch (r) {
    case HISTORY_RECOVERED:
        return "recovered";
    case HISTORY_EPOCH_CHANGED:
        return "epoch changed";
    case HISTORY_GAP:
        return "gap";
    case HISTORY_AHEAD:
        return "ahead";
    case HISTORY_TOO_MANY:
        return "too many";
    }
    return "unknown";
}
