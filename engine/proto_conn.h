/* SPDX-License-Identifier: MIT */
/*
 * proto_conn: protocol mode, `WS /connection/websocket`: the Centrifugo client protocol in its
 * JSON form (PROTOCOL-CENTRIFUGO.md) as a WebSocket application (ws.h), so that the official
 * SDKs connect unmodified: connect (HS256 tokens through jwt.h, or anonymous; server-side
 * subscriptions from the token's `channels`/`subs`), subscribe and unsubscribe (channel rules
 * through channel.h; positioning and recovery from the room's history), publish (with the
 * publisher's ClientInfo), presence, presence_stats, history, refresh and sub_refresh, batched
 * commands, join and leave pushes, the application-level ping `{}` and the close codes of §7
 * (3502 without a connect within 10 s, 3005 for a connection left expired). rpc is answered
 * with error 108 "not available" (there is no application behind it); send is accepted and
 * ignored.
 *
 * Each connection owns one heap struct proto_session (its pointer is the application's part of
 * the private area): the client id, the user, the token's info, and one struct sub per
 * subscribed channel, all freed when the connection closes. Channels are rooms (room.h): a
 * subscription is a room membership flagged SUB_PROTO, and a publish is room_publish_info of
 * the `data` JSON text as a text frame, so raw members hear it verbatim and every protocol
 * subscriber, the publisher included, gets the `pub` push the room's home encoded once, with
 * its offset. Questions for the home (room_ask) answer presence, history and the position of a
 * subscription; while a subscription waits for its position it gets nothing (SUB_PENDING), so
 * the recovered publications and the later pushes meet exactly.
 *
 * Shard rule: the handler runs on the shard that owns the connection; proto_client_id() is pure
 * and runs on any thread.
 */
#ifndef RINGCAST_PROTO_CONN_H
#define RINGCAST_PROTO_CONN_H

#include "http.h"
#include "msg.h"
#include "ws.h"

#include <stddef.h>
#include <stdint.h>

/* Length of a client id without its NUL: a UUID, 8-4-4-4-12 hex digits. */
#define PROTO_CLIENT_ID_LEN 36

extern const struct ws_handler proto_handler;

/* GET /connection/websocket: upgrades to protocol mode (routes.c). */
void proto_route(struct shard *s, struct conn *c, const struct http_request *req,
                 const uint8_t *body, size_t body_len);

/*
 * Writes the UUID version 4 (RFC 9562 §5.4) made of the 16 random bytes <rnd> into <out> as 36
 * lowercase hex digits and dashes, NUL-terminated. Cannot fail.
 */
void proto_client_id(char out[PROTO_CLIENT_ID_LEN + 1], const uint8_t rnd[16]);

struct proto_client_info;
struct sub;
/* The ClientInfo of the protocol subscription <sub> (flagged SUB_PROTO, made by this module),
 * borrowed from its session until the subscription ends: for presence (room.c). Cannot fail. */
void proto_sub_client_info(const struct sub *sub, struct proto_client_info *ci);

/* ---- server actions (the server API, api.c) ---------------------------------------------- */

/*
 * Calls <fn>(<s>, conn, <arg>) for every protocol connection of user <user>/<len> on this shard
 * (those whose connect succeeded with that non-empty user), oldest first. <fn> may close the
 * connection it is given, but no other. Returns the number of calls. Cannot fail.
 */
typedef void (*proto_user_fn)(struct shard *s, struct conn *c, void *arg);
uint32_t proto_for_user(struct shard *s, const char *user, size_t len, proto_user_fn fn, void *arg);

/*
 * Ends the subscription of protocol connection <c> to <channel>/<len> (every subscription when
 * <len> is 0), as the server API's `unsubscribe` does: the room membership goes at once and the
 * client gets an unsubscribe push, code 2000 "server unsubscribe", per channel (one frame for
 * all). Returns the number of subscriptions ended. Without memory for the pushes <c> is closed
 * 3004 (the subscriptions are gone either way).
 */
int proto_server_unsubscribe(struct shard *s, struct conn *c, const char *channel, size_t len);

#endif
