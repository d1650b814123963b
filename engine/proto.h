/* SPDX-License-Identifier: MIT */
/*
 * proto: the JSON codec of the Centrifugo client protocol, v2 (PROTOCOL-CENTRIFUGO.md).
 *
 * Decoding: a text frame holds one or more commands separated by exactly one '\n' (§2);
 * proto_read() gives them one at a time, in order, so a frame of any length needs the memory
 * of one command. jansson parses each command; application JSON (`data`) is not re-encoded
 * but borrowed as the exact bytes the client sent (Centrifugo passes it on verbatim), found
 * with json_raw. A command that the protocol answers with an error reply carries that code in
 * `error`; input the protocol answers by closing the connection is a negative errno, and
 * proto_close_code() names the close code.
 *
 * Encoding: one function per reply and push the server sends, appending to a proto_buf with
 * the field names, order and omitempty rules of the doc (the order of the frames the doc shows
 * byte for byte). Replies and pushes can share one frame, '\n'-separated (proto_buf_sep).
 * proto_encode_pub_push() writes a whole publication push once per channel and says where
 * its Publication object lies, so the same bytes serve every subscriber's push and the
 * history and recovery replies.
 *
 * It owns the jansson tree of the command being read, nothing else; it does no I/O and knows
 * nothing of connections, channels' rules or tokens. Any thread.
 */
#ifndef RINGCAST_PROTO_H
#define RINGCAST_PROTO_H

#include "msg.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest channel name: room names are 1 to 255 bytes (ARCHITECTURE.md). */
#define PROTO_CHANNEL_MAX 255
/* Default for proto_reader_init's <max_cmds>: a frame of 64 KiB holds fewer than 1,800
 * subscribe commands (36 bytes or more each; the SDK sends one per subscription in the
 * connect frame, §2), so only frames of pongs and sends can reach it. */
#define PROTO_MAX_CMDS 4096

/* Bytes; p is NULL when absent. Decoded strings hold no NUL. */
struct proto_str {
    const char *p;
    size_t len;
};

/* ---------------------------------------------------------------------------------------------
 * Decoding
 */

enum proto_method {
    PROTO_PONG = 0, /* `{}`, or any object with neither id nor method (§2, §7) */
    PROTO_CONNECT,
    PROTO_SUBSCRIBE,
    PROTO_UNSUBSCRIBE,
    PROTO_PUBLISH,
    PROTO_PRESENCE,
    PROTO_PRESENCE_STATS,
    PROTO_HISTORY,
    PROTO_PING, /* the `ping` method; decoded with error 108 (§2) */
    PROTO_SEND,
    PROTO_RPC,
    PROTO_REFRESH,
    PROTO_SUB_REFRESH,
};

/* One entry of connect `subs` (§3): recover a server-side subscription. */
struct proto_connect_sub {
    struct proto_str channel, epoch;
    uint64_t offset;
    bool recover;
};

/*
 * One decoded command. Strings borrow the command's jansson tree, `data` borrows the frame;
 * both live until proto_cmd_fini() (and the frame must outlive that). Fields a method does
 * not have, and fields the client left out, read as zero.
 */
struct proto_cmd {
    uint32_t id; /* 0: none (only PROTO_PONG and PROTO_SEND have none) */
    enum proto_method method;
    /* Non-zero: answer an error reply with this code (§8) and do not execute: 106 channel
     * longer than PROTO_CHANNEL_MAX; 107 publish without data; 108 the ping method. */
    uint32_t error;
    struct proto_str channel;       /* subscribe, unsubscribe, publish, presence(_stats), history,
                                       sub_refresh: never empty */
    struct proto_str token;         /* connect, refresh, subscribe, sub_refresh */
    struct proto_str data;          /* raw JSON as sent: connect, subscribe, publish, send, rpc */
    struct proto_str name, version; /* connect */
    struct proto_str rpc_method;    /* rpc `method` */
    /* subscribe */
    bool recover, positioned, recoverable, join_leave;
    uint64_t offset;
    struct proto_str epoch;
    int64_t flag;
    /* history; since_epoch empty matches any epoch (§5) */
    int32_t limit;
    bool reverse, has_since;
    uint64_t since_offset;
    struct proto_str since_epoch;
    /* connect */
    struct proto_connect_sub *subs;
    uint32_t nr_subs;
    /* private */
    json_t *_root;
};

/* Field readers for a decoded JSON object <o>, shared with the server API's request decoder.
 * proto_json_field: member <name>, NULL when absent or null. proto_json_str: a string member
 * without NUL, borrowed from <o> ({NULL, 0} when absent). proto_json_bool: a boolean member
 * (false when absent). Both return 0, or -EPROTO for a member of the wrong type. */
json_t *proto_json_field(json_t *o, const char *name);
int proto_json_str(json_t *o, const char *name, struct proto_str *out);
int proto_json_bool(json_t *o, const char *name, bool *out);

/* Releases what proto_read() gave in <cmd> and zeroes it; a zeroed cmd is fine. Cannot fail. */
void proto_cmd_fini(struct proto_cmd *cmd);

struct proto_reader {
    /* private: the frame (borrowed), where the next command starts, commands given so far */
    const char *_buf;
    size_t _len, _pos;
    uint32_t _nr, _max;
    int _err;
};

/*
 * Starts reading the text frame <frame>/<len>, borrowed until the last proto_read() and
 * every proto_cmd_fini() of its commands. At most <max_cmds> commands (0: PROTO_MAX_CMDS).
 * Cannot fail.
 */
void proto_reader_init(struct proto_reader *r, const char *frame, size_t len, uint32_t max_cmds);

/*
 * Decodes the next command into *<cmd> (which it overwrites without releasing). Returns
 *   1        a command: handle it (or answer cmd->error), then proto_cmd_fini(<cmd>)
 *   0        the frame is done
 *   -EPROTO  bad request, close 3501 (§2): a line that is not one JSON object, an empty line
 *            (two '\n' in a row, a leading '\n', more than one trailing '\n', an empty frame),
 *            an id that is not a uint32, a command with an id but no known method, a method
 *            key whose value is not an object, two method keys, a method other than send
 *            without an id, a field of the wrong type, an empty or missing channel, an
 *            empty refresh or sub_refresh token
 *   -E2BIG   more than <max_cmds> commands, close 3501
 *   -ENOMEM  close 3004 (internal error)
 * Commands before an error were valid and are handled in order; after an error nothing more
 * is read (the error is sticky), as Centrifugo drops the rest of the frame.
 */
int proto_read(struct proto_reader *r, struct proto_cmd *cmd);

/* The close code for a proto_read() error (3501 or 3004). Cannot fail. */
uint16_t proto_close_code(int err);

/* ---------------------------------------------------------------------------------------------
 * Encoding
 */

/* A growing output buffer; all-zero is empty. Errors are sticky: once memory ran out every
 * encoder returns -ENOMEM and the contents must be dropped. */
struct proto_buf {
    char *p;
    size_t len, cap;
    bool oom;
};

/* Frees the buffer's memory and zeroes it. Cannot fail. */
void proto_buf_fini(struct proto_buf *b);

/* Adds the '\n' that separates two messages of one frame, if <b> holds one already (§2; no
 * trailing newline is written). Returns 0 or -ENOMEM. */
int proto_buf_sep(struct proto_buf *b);

/* Appends the bytes <p>/<len> as they are (raw JSON, a separator). Returns 0 or -ENOMEM. */
int proto_buf_put(struct proto_buf *b, const void *p, size_t len);

/* Appends <s>/<len> as a JSON string: quotes, escapes, and each invalid UTF-8 sequence
 * replaced by U+FFFD (so that any bytes give valid JSON in a text frame). Returns 0 or -ENOMEM. */
int proto_buf_jstr(struct proto_buf *b, const char *s, size_t len);

/*
 * Appends the `data` JSON of a raw room message <p>/<len> (ARCHITECTURE.md: a raw text message
 * that is valid JSON reaches protocol subscribers as that JSON, any other as a JSON string):
 * the message itself, trimmed, when <text> and jansson accepts it; else the message as a JSON
 * string (binary messages too; invalid UTF-8 becomes U+FFFD). Returns 0 or -ENOMEM.
 */
int proto_buf_raw_data(struct proto_buf *b, const char *p, size_t len, bool text);

/* ClientInfo (§5): user and client always written; conn_info and chan_info (raw JSON) only
 * when not empty. */
struct proto_client_info {
    struct proto_str user, client, conn_info, chan_info;
};

/* A publication to encode (§6): data is raw JSON and required; info NULL for none, or the
 * ClientInfo already encoded in info_json (proto_encode_client_info; used when info is NULL and
 * info_json not empty). */
struct proto_pub {
    struct proto_str data;
    const struct proto_client_info *info;
    struct proto_str info_json;
    uint64_t offset; /* 0: omitted (a channel without history) */
};

/* Appends ClientInfo <ci> as a JSON object (§5). Returns 0 or -ENOMEM. */
int proto_encode_client_info(struct proto_buf *b, const struct proto_client_info *ci);

struct proto_connect_result {
    struct proto_str client; /* required */
    struct proto_str version;
    bool expires;
    uint32_t ttl; /* s */
    struct proto_str data;
    uint32_t ping; /* s */
    bool pong;
};

struct proto_subscribe_result {
    bool expires;
    uint32_t ttl;
    bool recoverable;
    struct proto_str epoch;
    uint64_t offset;
    bool positioned, was_recovering, recovered;
    const struct proto_str *pubs; /* encoded Publication objects, oldest first */
    uint32_t nr_pubs;
    struct proto_str data;
};

/* A server-side subscription in the connect reply's `subs` map. */
struct proto_server_sub {
    struct proto_str channel;
    const struct proto_subscribe_result *res;
};

/*
 * Replies. Each appends one message `{"id":<id>,"<method>":{...}}` to <b> (call
 * proto_buf_sep() first to batch) and returns 0 or -ENOMEM. Strings are escaped; fields
 * typed proto_str that hold JSON (data, publications, conn_info) must be valid JSON and are
 * copied verbatim, except that a newline (whitespace in JSON) becomes a space, since '\n'
 * separates the messages of a frame (§2). Zero fields are omitted unless said otherwise.
 */
int proto_encode_connect(struct proto_buf *b, uint32_t id, const struct proto_connect_result *r,
                         const struct proto_server_sub *subs, uint32_t nr_subs);
/* refresh result: client, version, expires, ttl of <r> (§9). */
int proto_encode_refresh(struct proto_buf *b, uint32_t id, const struct proto_connect_result *r);
int proto_encode_subscribe(struct proto_buf *b, uint32_t id,
                           const struct proto_subscribe_result *r);
/* sub_refresh result: expires, ttl. */
int proto_encode_sub_refresh(struct proto_buf *b, uint32_t id, bool expires, uint32_t ttl);
/* An empty result `{}` for <method>: unsubscribe and publish (§2). */
int proto_encode_empty(struct proto_buf *b, uint32_t id, enum proto_method method);
/* presence (§5): begin, one add per client (map key: its client id), end; `{}` when none. */
int proto_encode_presence_begin(struct proto_buf *b, uint32_t id);
int proto_encode_presence_add(struct proto_buf *b, const struct proto_client_info *ci);
int proto_encode_presence_end(struct proto_buf *b);
/* presence_stats: both counts always written, even 0. */
int proto_encode_presence_stats(struct proto_buf *b, uint32_t id, uint32_t num_clients,
                                uint32_t num_users);
/* history (§5): publications (may be empty), epoch and offset always written. */
int proto_encode_history(struct proto_buf *b, uint32_t id, const struct proto_str *pubs,
                         uint32_t nr_pubs, struct proto_str epoch, uint64_t offset);
/* rpc result: `data` when not empty. */
int proto_encode_rpc(struct proto_buf *b, uint32_t id, struct proto_str data);
/* Error reply (§8): <message> NULL gives proto_error_message(<code>); `temporary` is written
 * for the codes the doc marks temporary (100, 111, 113). */
int proto_encode_error(struct proto_buf *b, uint32_t id, uint32_t code, const char *message);

/*
 * Pushes (§6), `{"push":{...}}` without id.
 * proto_encode_pub_push writes `{"push":{"channel":C,"pub":P}}` and sets *<pub_at> (may be
 * NULL) to P's bytes within <b>, for history and recovery replies; it borrows <b> until the
 * next write to <b> (which may move it): keep the offset <pub_at>->p - <b>->p, not the pointer.
 */
int proto_encode_pub_push(struct proto_buf *b, struct proto_str channel,
                          const struct proto_pub *pub, struct proto_str *pub_at);
/* The Publication object alone (history and recovery replies of unshared publications). */
int proto_encode_pub(struct proto_buf *b, const struct proto_pub *pub);
/* join (<join> true) or leave push of <ci> on <channel>. */
int proto_encode_join_leave(struct proto_buf *b, struct proto_str channel, bool join,
                            const struct proto_client_info *ci);
/* unsubscribe push: <code> < 2500 ends the subscription, >= 2500 resubscribes (§6). */
int proto_encode_unsubscribe_push(struct proto_buf *b, struct proto_str channel, uint32_t code,
                                  const char *reason);
/* message push (server `send`): no channel. */
int proto_encode_message_push(struct proto_buf *b, struct proto_str data);
/* disconnect push; Centrifugo closes the socket instead over WebSocket (§6, §7). */
int proto_encode_disconnect_push(struct proto_buf *b, uint32_t code, const char *reason,
                                 bool reconnect);

/*
 * The text frame a protocol subscriber gets for the room message <m> (a server frame made by
 * msg_frame or msg_frame_info, with its room name):
 * `{"push":{"channel":<room>,"pub":{"data":D,"info":I,"offset":O}}}`, where D is the payload as
 * JSON when <m> is a text frame holding valid JSON, else the payload as a JSON string
 * (ARCHITECTURE.md, "Endpoints"), I the publisher's ClientInfo of msg_info() (absent when
 * none) and O <m>->offset (absent when 0). Sets <pub_off> and <pub_len> (when not NULL) to the
 * span of the Publication object within the new msg's data, for the history. Borrows <m> for
 * the call (never writes to it: it is shared across shards). Returns a new msg with one
 * reference, or NULL when out of memory.
 */
struct msg *proto_pub_frame(const struct msg *m, uint32_t *pub_off, uint32_t *pub_len);

/* Appends the Publication object of room message <m> with offset <offset> (as proto_pub_frame
 * writes it inside its push). Returns 0 or -ENOMEM. */
int proto_encode_msg_pub(struct proto_buf *b, const struct msg *m, uint64_t offset);

/* The message of error <code> (§8 table), "unknown error" for others. Cannot fail. */
const char *proto_error_message(uint32_t code);
/* The close reason text for <code> (§7 table; plain text, never valid JSON), "" for others. */
const char *proto_close_reason(uint16_t code);

#endif
