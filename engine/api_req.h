/* SPDX-License-Identifier: MIT */
/*
 * api_req: the requests of the server HTTP API (`POST /api/<method>`, ARCHITECTURE.md
 * "Endpoints"), decoded and checked: which method a path names, the fields of each method's
 * JSON body with the types and rules of Centrifugo's server API, and the glob patterns of the
 * `channels` method. api.c executes what this decodes.
 *
 * jansson parses the body; `data` (application JSON of any type) is not re-encoded but borrowed
 * as the exact bytes the backend sent, found with json_raw, as protocol mode does. It owns the
 * jansson tree of the request being decoded and the array of broadcast channels, nothing else;
 * no I/O, no connections, no shards. Any thread.
 */
#ifndef RINGCAST_API_REQ_H
#define RINGCAST_API_REQ_H

#include "proto.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum api_method {
    API_PUBLISH = 1,
    API_BROADCAST,
    API_SEND,
    API_UNSUBSCRIBE,
    API_DISCONNECT,
    API_PRESENCE,
    API_PRESENCE_STATS,
    API_HISTORY,
    API_CHANNELS,
    API_INFO,
};

/* Centrifugo's disconnect when the request names none: 3503 "force disconnect", no reconnect
 * (PROTOCOL-CENTRIFUGO.md §7). */
#define API_DISCONNECT_CODE   3503
#define API_DISCONNECT_REASON "force disconnect"
/* Longest disconnect reason: a close frame's payload is 125 bytes, 2 of them the code
 * (RFC 6455 §5.5). */
#define API_REASON_MAX 123

/*
 * One decoded request. Strings borrow the request's jansson tree, `data` borrows the body;
 * both live until api_req_fini() (and the body must outlive that). Fields the method does not
 * have, and fields left out, read as zero.
 */
struct api_req {
    enum api_method method;
    struct proto_str channel; /* publish, presence(_stats), history: a valid channel name;
                                 unsubscribe: empty means every channel of the user */
    struct proto_str user;    /* send, unsubscribe, disconnect: never empty */
    struct proto_str data;    /* publish, broadcast, send: raw JSON as sent, never empty */
    struct proto_str pattern; /* channels: empty when absent */
    /* broadcast: the channels in order, each checked on its own (one error does not fail the
     * others, as in Centrifugo): <channel_errors>[i] is 0, 107 (empty) or 102 (not a valid
     * name) */
    struct proto_str *channels;
    uint32_t *channel_errors;
    uint32_t nr_channels;
    /* disconnect: API_DISCONNECT_CODE and _REASON unless the request names them */
    uint16_t code;
    struct proto_str reason;
    /* history; since_epoch empty matches any epoch */
    int32_t limit;
    bool reverse, has_since;
    uint64_t since_offset;
    struct proto_str since_epoch;
    /* private */
    json_t *_root;
};

/* The method named by <name>/<len> (the path after "/api/"), or 0 when none. Cannot fail. */
enum api_method api_method_find(const char *name, size_t len);

/*
 * Decodes the body <body>/<len> of a request for <method> into *<r> (overwritten, not
 * released). Returns
 *    0        decoded: execute it, then api_req_fini(<r>)
 *    > 0      Centrifugo's error code for the reply body (HTTP 200, as Centrifugo answers):
 *             107 bad request (a required field missing or empty, a field of the wrong type, a
 *             number out of range, a disconnect code outside 3000..4999 or a reason longer
 *             than API_REASON_MAX), 102 unknown channel (a channel name that can never be
 *             valid, channel.h); *<r> holds nothing to release
 *   -EPROTO   the body is not one JSON object (HTTP 400)
 *   -ENOMEM   out of memory (HTTP 500)
 * Fields of other types than documented, unknown fields and null values are treated as
 * Centrifugo's decoder treats them: a wrong type fails, unknown is ignored, null is absent.
 */
int api_req_decode(enum api_method method, const char *body, size_t len, struct api_req *r);

/* Releases what api_req_decode gave in <r> and zeroes it; a zeroed req is fine. Cannot fail. */
void api_req_fini(struct api_req *r);

/*
 * Does <s>/<slen> match the glob <pat>/<plen>? `*` matches any run of bytes (empty included),
 * `?` any one byte, `\` makes the next byte literal; every other byte matches itself. (The
 * subset of the gobwas/glob syntax Centrifugo uses for `channels` that needs no parsing;
 * `[...]` and `{...}` match literally.) Time O(plen * slen), no allocation. Cannot fail.
 */
bool api_glob_match(const char *pat, size_t plen, const char *s, size_t slen);

#endif
