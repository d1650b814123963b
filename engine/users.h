/* SPDX-License-Identifier: MIT */
/*
 * users: one shard's index of its protocol connections by user, so that the server API's
 * `send`, `unsubscribe` and `disconnect` reach every connection of a user without a scan of
 * the shard's slots, and `info` can count distinct users.
 *
 * A hash table (xxh3 with the engine's random seed: user ids come from tokens, but a backend may
 * take them from its own users) of one entry per distinct user with connections on this shard;
 * each entry owns a copy of the user id and keeps the list of its connections. A connection is
 * represented by a struct users_link that its owner embeds (protocol mode keeps it in its
 * session), so a connection costs 32 bytes here and no allocation; only a user's first
 * connection on the shard allocates its entry, and its last one frees it.
 *
 * Owns the table and the entries, never the links. Not thread-safe: one table per shard, used
 * on that shard's thread only. Anonymous connections (user "") are not indexed by the caller.
 */
#ifndef RINGCAST_USERS_H
#define RINGCAST_USERS_H

#include "list.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct users_entry;

/* One connection's place in the index. All-zero: not indexed. */
struct users_link {
    struct list link;          /* private: in the entry's list */
    struct users_entry *entry; /* private: NULL when not indexed */
    void *owner;               /* the caller's (protocol mode: the connection) */
};

struct users {
    struct users_entry **buckets; /* private */
    uint32_t mask;                /* private */
    uint32_t nr_users;            /* distinct users */
    uint32_t nr_links;            /* connections indexed */
    uint64_t seed;                /* private */
};

/* Makes an empty table hashing with <seed>. Returns 0 or -ENOMEM. */
int users_init(struct users *u, uint64_t seed);

/* Frees the table and every entry; links still indexed are left dangling (shutdown only).
 * Cannot fail; a zeroed table is fine. */
void users_fini(struct users *u);

/*
 * Indexes <l> (borrowed until users_del; not indexed already) under user <user>/<len>
 * (1 byte or more, copied). Returns 0, or -ENOMEM (nothing changed) when the user is new here
 * and its entry could not be allocated. Growing the table may fail silently: chains get longer.
 */
int users_add(struct users *u, struct users_link *l, const char *user, size_t len);

/* Removes <l> from the index; a no-op when it is not indexed. Cannot fail. */
void users_del(struct users *u, struct users_link *l);

/* The connections of user <user>/<len> on this shard. Cannot fail. */
uint32_t users_count(const struct users *u, const char *user, size_t len);

/*
 * Calls <fn>(<arg>, link) for every connection of user <user>/<len>, in the order they were
 * added; <fn> may users_del the link it is given (closing that connection), but no other.
 * Returns the number of calls. Cannot fail.
 */
typedef void (*users_link_fn)(void *arg, struct users_link *l);
uint32_t users_each_link(struct users *u, const char *user, size_t len, users_link_fn fn,
                         void *arg);

/* Calls <fn>(<arg>, user, len, connections) once per distinct user, in no particular order;
 * <fn> must not change the table. Cannot fail. */
typedef void (*users_user_fn)(void *arg, const char *user, size_t len, uint32_t nr_links);
void users_each_user(const struct users *u, users_user_fn fn, void *arg);

#endif
