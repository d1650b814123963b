/* SPDX-License-Identifier: MIT */
/*
 * channel: the rules of protocol channel names (ARCHITECTURE.md, "Channels whose name starts
 * with `$` need a subscription token; a channel name containing `#` is limited to the users
 * listed after it, comma-separated (`dialog#alice,bob`), as in Centrifugo").
 *
 * Raw rooms and protocol channels are one namespace, so a channel name obeys the rules of room
 * names: 1 to 255 bytes, valid UTF-8, no '/', no control characters (C0, DEL, C1). The checks
 * answer with the protocol's error codes (PROTOCOL-CENTRIFUGO.md §4, §8): 102 for a name that
 * cannot be a channel, 103 for a permission the connection lacks.
 *
 * Pure functions of their arguments: no state, no allocation, any thread.
 */
#ifndef RINGCAST_CHANNEL_H
#define RINGCAST_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest channel name (the room name limit). */
#define CHANNEL_NAME_MAX 255

/* Is <name>/<len> a valid channel (and room) name? Cannot fail. */
bool channel_name_valid(const char *name, size_t len);

/* Does <name> start with '$' (a subscription token is needed to subscribe)? Cannot fail. */
bool channel_is_private(const char *name, size_t len);

/*
 * May user <user>/<user_len> use channel <name>/<len> by its `#` rule? Without '#' anyone
 * may. With it, the part after the last '#' is a comma-separated list of users, and <user>
 * must be one of them; an anonymous user ("") never is, even where the list has an empty
 * entry (Centrifugo would let "" match `dialog#` or `a#,b`, which no one means). Cannot fail.
 */
bool channel_user_allowed(const char *name, size_t len, const char *user, size_t user_len);

/*
 * The subscribe decision for user <user>/<user_len> on <name>/<len>; <token_ok> says a
 * subscription token for this channel was verified. Returns 0 (allowed), 102 (not a valid
 * name) or 103 (a `$` channel without a verified token, or a `#` channel not listing the
 * user: permission denied). Cannot fail.
 */
uint32_t channel_can_subscribe(const char *name, size_t len, const char *user, size_t user_len,
                               bool token_ok);

/*
 * The decision for publish, presence, presence_stats and history from a client. <subscribed>
 * says the connection is subscribed to the channel: a `$` channel is open only to its
 * subscribers (they showed a token), a `#` channel only to its users. Returns 0, 102 or 103.
 * Cannot fail.
 */
uint32_t channel_can_use(const char *name, size_t len, const char *user, size_t user_len,
                         bool subscribed);

#endif
