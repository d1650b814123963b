/* SPDX-License-Identifier: MIT */
/*
 * iptable: per-address connection counts (contract in iptable.h).
 *
 * Slots hold (address, count); a count of 0 marks an empty slot, so address 0 needs no special
 * case. Linear probing from hash(address). Deleting shifts the following entries of the probe
 * run back (Knuth's algorithm R), so no tombstones accumulate and a probe ends at the first
 * empty slot. The table doubles when more than half full and halves when less than an eighth
 * full (the gap keeps one address at the boundary from resizing on every call).
 */
#include "iptable.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <xxhash.h>

struct ip_slot {
    uint32_t ip;
    uint32_t count; /* 0: empty */
};

struct ip_table {
    pthread_mutex_t lock;
    struct ip_slot *slots;
    size_t cap; /* power of two */
    size_t nr;  /* slots in use */
    uint64_t seed;
};

/* ---- internals ------------------------------------------------------------------------ */

static size_t home(const struct ip_table *t, uint32_t ip)
{
    return (size_t)XXH3_64bits_withSeed(&ip, sizeof(ip), t->seed) & (t->cap - 1);
}

/* The slot holding <ip>, or the empty slot where it would go. The table is never full. */
static size_t find(const struct ip_table *t, uint32_t ip)
{
    size_t i = home(t, ip);
    while (t->slots[i].count != 0 && t->slots[i].ip != ip)
        i = (i + 1) & (t->cap - 1);
    return i;
}

/* Moves every entry into a table of <cap> slots. Returns false (and changes nothing) when the
 * memory is lacking. */
static bool resize(struct ip_table *t, size_t cap)
{
    struct ip_slot *old = t->slots;
    size_t old_cap = t->cap;
    struct ip_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return false;
    t->slots = slots;
    t->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].count != 0)
            t->slots[find(t, old[i].ip)] = old[i];
    free(old);
    return true;
}

/* Empties slot <i> and shifts back the entries after it that probed past it. */
static void remove_at(struct ip_table *t, size_t i)
{
    size_t mask = t->cap - 1;
    size_t j = i;
    for (;;) {
        t->slots[i].count = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (t->slots[j].count == 0)
                return;
            size_t h = home(t, t->slots[j].ip);
            /* Entry j may move to i unless its home lies cyclically in (i, j]. */
            bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
            if (!stays)
                break;
        }
        t->slots[i] = t->slots[j];
        i = j;
    }
}

/* ---- API ------------------------------------------------------------------------------ */

struct ip_table *iptable_create(void)
{
    struct ip_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = IPTABLE_MIN_CAP;
    t->slots = calloc(t->cap, sizeof(*t->slots));
    if (!t->slots || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->slots);
        free(t);
        return NULL;
    }
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != sizeof(t->seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t->seed =
            ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) * 0x9e3779b97f4a7c15ull;
    }
    return t;
}

void iptable_destroy(struct ip_table *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

int iptable_acquire(struct ip_table *t, uint32_t ip, uint64_t limit)
{
    int ret = 0;
    pthread_mutex_lock(&t->lock);
    size_t i = find(t, ip);
    if (t->slots[i].count != 0) {
        if (t->slots[i].count >= limit || t->slots[i].count == UINT32_MAX)
            ret = -EUSERS;
        else
            t->slots[i].count++;
    } else if (limit == 0) {
        ret = -EUSERS;
    } else {
        /* Grow first, so that the table stays at most half full after the insertion. */
        if (2 * (t->nr + 1) > t->cap) {
            if (!resize(t, 2 * t->cap)) {
                ret = -ENOMEM;
                goto out;
            }
            i = find(t, ip);
        }
        t->slots[i].ip = ip;
        t->slots[i].count = 1;
        t->nr++;
    }
out:
    pthread_mutex_unlock(&t->lock);
    return ret;
}

void iptable_release(struct ip_table *t, uint32_t ip)
{
    pthread_mutex_lock(&t->lock);
    size_t i = find(t, ip);
    if (t->slots[i].count != 0 && --t->slots[i].count == 0) {
        remove_at(t, i);
        t->nr--;
        if (t->cap > IPTABLE_MIN_CAP && 8 * t->nr < t->cap)
            (void)resize(t, t->cap / 2); /* lacking memory, stay larger */
    }
    pthread_mutex_unlock(&t->lock);
}

uint32_t iptable_count(struct ip_table *t, uint32_t ip)
{
    pthread_mutex_lock(&t->lock);
    uint32_t n = t->slots[find(t, ip)].count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t iptable_nr(struct ip_table *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->nr;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t iptable_cap(struct ip_table *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->cap;
    pthread_mutex_unlock(&t->lock);
    return n;
}
