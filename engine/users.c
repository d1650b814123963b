/* SPDX-License-Identifier: MIT */
/*
 * users: a shard's protocol connections by user (contract in users.h).
 */
#include "users.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct users_entry {
    struct users_entry *hnext;
    uint64_t hash;
    struct list links; /* of struct users_link, oldest first */
    uint32_t nr_links;
    uint32_t len;
    char name[];
};

static uint64_t hash_of(const struct users *u, const char *user, size_t len)
{
    return XXH3_64bits_withSeed(user, len, u->seed);
}

static int grow(struct users *u)
{
    uint32_t nmask = u->buckets ? u->mask * 2 + 1 : 63;
    struct users_entry **nb = calloc((size_t)nmask + 1, sizeof(*nb));
    if (!nb)
        return -ENOMEM;
    for (uint32_t i = 0; u->buckets && i <= u->mask; i++) {
        struct users_entry *e = u->buckets[i];
        while (e) {
            struct users_entry *next = e->hnext;
            e->hnext = nb[e->hash & nmask];
            nb[e->hash & nmask] = e;
            e = next;
        }
    }
    free(u->buckets);
    u->buckets = nb;
    u->mask = nmask;
    return 0;
}

int users_init(struct users *u, uint64_t seed)
{
    memset(u, 0, sizeof(*u));
    u->seed = seed;
    return grow(u);
}

void users_fini(struct users *u)
{
    for (uint32_t i = 0; u->buckets && i <= u->mask; i++) {
        struct users_entry *e = u->buckets[i];
        while (e) {
            struct users_entry *next = e->hnext;
            free(e);
            e = next;
        }
    }
    free(u->buckets);
    memset(u, 0, sizeof(*u));
}

static struct users_entry *find(const struct users *u, uint64_t hash, const char *user, size_t len)
{
    if (!u->buckets)
        return NULL;
    for (struct users_entry *e = u->buckets[hash & u->mask]; e; e = e->hnext)
        if (e->hash == hash && e->len == len && memcmp(e->name, user, len) == 0)
            return e;
    return NULL;
}

int users_add(struct users *u, struct users_link *l, const char *user, size_t len)
{
    uint64_t hash = hash_of(u, user, len);
    struct users_entry *e = find(u, hash, user, len);
    if (!e) {
        if (len > UINT32_MAX || !u->buckets)
            return -ENOMEM;
        e = malloc(sizeof(*e) + len);
        if (!e)
            return -ENOMEM;
        if (u->nr_users >= u->mask)
            grow(u); /* without memory the chains get longer; lookups still work */
        e->hash = hash;
        list_init(&e->links);
        e->nr_links = 0;
        e->len = (uint32_t)len;
        memcpy(e->name, user, len);
        e->hnext = u->buckets[hash & u->mask];
        u->buckets[hash & u->mask] = e;
        u->nr_users++;
    }
    list_add_tail(&e->links, &l->link);
    l->entry = e;
    e->nr_links++;
    u->nr_links++;
    return 0;
}

void users_del(struct users *u, struct users_link *l)
{
    struct users_entry *e = l->entry;
    if (!e)
        return;
    list_del(&l->link);
    l->entry = NULL;
    u->nr_links--;
    if (--e->nr_links)
        return;
    struct users_entry **pp = &u->buckets[e->hash & u->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    u->nr_users--;
    free(e);
}

uint32_t users_count(const struct users *u, const char *user, size_t len)
{
    const struct users_entry *e = find(u, hash_of(u, user, len), user, len);
    return e ? e->nr_links : 0;
}

uint32_t users_each_link(struct users *u, const char *user, size_t len, users_link_fn fn, void *arg)
{
    struct users_entry *e = find(u, hash_of(u, user, len), user, len);
    if (!e)
        return 0;
    /*
     * <fn> may remove the link it is given, and with the user's last link the entry goes too:
     * the next link is saved before the call, and the count bounds the walk so that the freed
     * entry's list head is never read.
     */
    uint32_t left = e->nr_links, n = 0;
    struct list *pos = e->links.next;
    while (left--) {
        struct list *next = pos->next;
        fn(arg, container_of(pos, struct users_link, link));
        n++;
        pos = next;
    }
    return n;
}

void users_each_user(const struct users *u, users_user_fn fn, void *arg)
{
    for (uint32_t i = 0; u->buckets && i <= u->mask; i++)
        for (const struct users_entry *e = u->buckets[i]; e; e = e->hnext)
            fn(arg, e->name, e->len, e->nr_links);
}
