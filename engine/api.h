/* SPDX-License-Identifier: MIT */
/*
 * api: the server HTTP API, `POST /api/<method>` (ARCHITECTURE.md "Endpoints"), Centrifugo-style,
 * for backends: a JSON body in (api_req.h decodes it), `{"result":{...}}` or
 * `{"error":{"code":N,"message":"..."}}` out with HTTP 200, as Centrifugo answers. The request
 * carries `X-API-Key: <--api-key>` (or `Authorization: apikey <key>`, which Centrifugo also
 * takes), compared in constant time; a wrong or missing key is 401, an unknown method 404, a
 * body that is not one JSON object 400. Without --api-key the API does not exist: every
 * /api/ path is 404, like any path without a route (the contract says the option *enables* it).
 *
 * What each method reaches, and how:
 *   publish, broadcast       room_publish_by_name from this shard: every member on every shard,
 *                            raw members the JSON text, protocol subscribers a `pub` push
 *   send, unsubscribe,       one XS_API_USER envelope to every other shard, and the same action
 *   disconnect               here: each shard finds the user's protocol connections in its own
 *                            index (users.h) and acts on them; answered once the envelopes are
 *                            queued, as Centrifugo answers once its broker has the command
 *   channels, info           a gather that visits every shard in turn (this one, then id + 1,
 *                            ...) collecting each shard's part, and comes back here to answer: a
 *                            deferred HTTP answer (http.h)
 *   presence, presence_stats, history: asked of the channel's home shard (room_ask), deferred
 *
 * Cross-shard envelopes: the kinds below, from XS_API_FIRST up (room.h's are below it); what
 * each carries is allocated by the sending shard and freed by the shard that ends its journey
 * (the receiver for XS_API_USER; the asker for a gather, which the shards on its way grow).
 *
 * Shard rule: every function on the thread of the shard that received the request or the
 * envelope.
 */
#ifndef RINGCAST_API_H
#define RINGCAST_API_H

#include "http.h"

#include <stddef.h>
#include <stdint.h>

struct xshard_env;

/* Envelope kinds (struct xshard_env.kind) of this module: XS_API_FIRST and up. */
enum {
    XS_API_FIRST = 64,
    XS_API_USER = XS_API_FIRST, /* asker -> each other shard: send/unsubscribe/disconnect for a
                                   user (ptr: struct api_user_op, freed by the receiver) */
    XS_API_GATHER,              /* shard -> next shard: collect your part (ptr: struct
                                   api_gather) */
    XS_API_GATHERED,            /* last shard -> asker: answer it (ptr: struct api_gather,
                                   freed by the asker) */
};

/* POST /api/<method> (routes.c). */
void api_route(struct shard *s, struct conn *c, const struct http_request *req, const uint8_t *body,
               size_t body_len);

/* Handles one envelope of kind XS_API_FIRST or above addressed to this shard. */
void api_handle_envelope(struct shard *s, const struct xshard_env *env);

/* Frees what a leftover envelope of this module holds (after the shards stopped). */
void api_envelope_drop(const struct xshard_env *env);

#endif
