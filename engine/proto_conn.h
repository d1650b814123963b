/* SPDX-License-Identifier: MIT */
/*
 * proto_conn: protocol mode, `WS /connection/websocket`: the Centrifugo client protocol in its
 * JSON form (PROTOCOL-CENTRIFUGO.md) as a WebSocket application (ws.h), so that the official
 * SDKs connect unmodified. This first slice serves connect (HS256 tokens through jwt.h, or
 * anonymous), subscribe and unsubscribe (channel rules through channel.h), publish, batched
 * commands, the application-level ping `{}` and the close codes of §7; presence,
 * presence_stats, history, refresh, sub_refresh and rpc are answered with error 108 "not
 * available" for now, send is accepted and ignored.
 *
 * Each connection owns one heap struct proto_session (its pointer is the application's part of
 * the private area): the client id, the user, and one struct sub per subscribed channel, all
 * freed when the connection closes. Channels are rooms (room.h): a subscription is a room
 * membership flagged SUB_PROTO, and a publish is room_publish_by_name of the `data` JSON text as
 * a text frame, so raw members hear it verbatim and every protocol subscriber, the publisher
 * included, gets the `pub` push that room.c builds with proto_pub_frame() (proto.h).
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
