/* SPDX-License-Identifier: MIT */
/*
 * jwt: verification of the HS256 tokens of the Centrifugo client protocol
 * (PROTOCOL-CENTRIFUGO.md §9): connection tokens (connect.token, refresh.token) and
 * subscription tokens (subscribe.token, sub_refresh.token).
 *
 * A token is base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256), without
 * padding (RFC 7515 §2, §3.1). Only `alg` "HS256" is accepted, so `none` and every public-key
 * algorithm are refused before any claim is read; the MAC is computed with mbedtls and
 * compared in constant time. Claims are read with jansson only after the MAC matched, and
 * copied into one heap block that the caller frees with jwt_claims_free(). JSON claims
 * (`info`, `data`, `meta`, per-channel `info`/`data`) are kept as their raw JSON text, byte for
 * byte as the token carried it, ready to be embedded in protocol messages.
 *
 * The module decides validity (signature, algorithm, shape, time, audience, issuer, the
 * channel/user/client binding of a subscription token); it knows nothing of connections or
 * channels' rules, and jwt_answer() says which protocol answer each error calls for. It does
 * no I/O and keeps no state: any thread.
 */
#ifndef RINGCAST_JWT_H
#define RINGCAST_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest token accepted, in bytes (a longer one is malformed); far above any real token. */
#define JWT_TOKEN_MAX 16384

/* What verification checks beyond the signature. */
struct jwt_key {
    const uint8_t *secret; /* HMAC key, borrowed for the call */
    size_t secret_len;
    const char *audience; /* NULL: `aud` not checked; else must equal it or be in its array */
    const char *issuer;   /* NULL: `iss` not checked; else must be equal */
};

/* Raw JSON text of a claim, borrowing the claims block; p NULL and len 0 when absent. */
struct jwt_json {
    const char *p;
    size_t len;
};

/* `override` options (§9): bit set in override_set when given, its value in override_value. */
enum {
    JWT_OV_PRESENCE = 1 << 0,
    JWT_OV_JOIN_LEAVE = 1 << 1,
    JWT_OV_FORCE_PUSH_JOIN_LEAVE = 1 << 2,
    JWT_OV_FORCE_POSITIONING = 1 << 3,
    JWT_OV_FORCE_RECOVERY = 1 << 4,
};

/* One entry of a connection token's `subs` map (or of its `channels` array: then no options). */
struct jwt_sub {
    const char *channel;  /* NUL-terminated */
    struct jwt_json info; /* `info`, or `b64info` decoded (wins) */
    struct jwt_json data; /* `data`, or `b64data` decoded (wins) */
    uint8_t override_set, override_value;
};

/*
 * Claims of a verified token. Strings are NUL-terminated and contain no NUL; every pointer
 * borrows the same block, freed by jwt_claims_free(). Absent numeric claims (and 0) read 0.
 */
struct jwt_claims {
    const char *sub;      /* user id; "" when absent (anonymous) */
    const char *channel;  /* subscription tokens: the channel; NULL in connection tokens */
    const char *client;   /* subscription tokens: bound client id; NULL when absent */
    int64_t exp;          /* unix s; 0: no expiry */
    int64_t nbf;          /* unix s; 0: none */
    int64_t iat;          /* unix s; informational */
    bool has_expire_at;   /* `expire_at` present: it, not `exp`, sets the expiry */
    int64_t expire_at;    /* unix s; 0 with has_expire_at: never expires */
    struct jwt_json info; /* `info`, or `b64info` decoded (wins): conn_info / chan_info */
    struct jwt_json data; /* subscription tokens: `data` or `b64data`: subscribe result data */
    struct jwt_json meta; /* connection tokens: `meta`, never sent to clients */
    /* Connection tokens: server-side subscriptions, `channels` first, then `subs` entries;
     * a channel named in both appears once, with the `subs` options (`subs` wins, §9). */
    struct jwt_sub *subs;
    uint32_t nr_subs;
    uint8_t override_set, override_value; /* subscription tokens: `override` */
};

/*
 * Verifies connection token <token>/<len> with <key> at unix time <now> (seconds) and gives
 * its claims in *<out> (free with jwt_claims_free). Returns 0, or
 *   -EBADMSG      malformed: not three base64url parts, padding, bad JSON, a claim of the
 *                 wrong type, a `b64info` that is not base64 of JSON text, longer than
 *                 JWT_TOKEN_MAX, or a `channel` claim (that marks a subscription token, §9)
 *   -ENOTSUP      `alg` is not "HS256" (including "none"), or a `crit` header is present
 *   -EKEYREJECTED the signature does not match
 *   -EKEYEXPIRED  `exp` <= <now>, or `nbf` > <now>
 *   -EACCES       `aud` or `iss` differ from what <key> asks for
 *   -ENOMEM
 * On error *<out> is NULL. Borrows <key> and <token> for the call only.
 */
int jwt_verify_connect(const struct jwt_key *key, const char *token, size_t len, int64_t now,
                       struct jwt_claims **out);

/*
 * Verifies subscription token <token>/<len> for channel <channel>/<channel_len>, held by the
 * connection of user <user> (NUL-terminated; "" or NULL for anonymous) and client id <client>
 * (NUL-terminated; NULL reads as ""), and gives its claims in *<out>. Returns 0 or the errors of
 * jwt_verify_connect() (where a missing `channel` claim, not a present one, is -EBADMSG), and
 *   -EPERM        the token's `channel` is not <channel>, its `sub` is not <user>, or it has a
 *                 `client` that is not <client> (checked after the signature and the time)
 */
int jwt_verify_subscribe(const struct jwt_key *key, const char *token, size_t len, int64_t now,
                         const char *channel, size_t channel_len, const char *user,
                         const char *client, struct jwt_claims **out);

/* Frees claims given by a jwt_verify_* call; NULL is fine. Cannot fail. */
void jwt_claims_free(struct jwt_claims *c);

/*
 * The connection's or subscription's expiry from verified claims: `expire_at` when present
 * (0 = never), else `exp` (0 = never). Cannot fail.
 */
int64_t jwt_expiry(const struct jwt_claims *c);

/* Where a token is used; the same error calls for different answers (§3, §4, §9). */
enum jwt_use {
    JWT_USE_CONNECT,     /* connect.token */
    JWT_USE_REFRESH,     /* refresh.token */
    JWT_USE_SUBSCRIBE,   /* subscribe.token */
    JWT_USE_SUB_REFRESH, /* sub_refresh.token */
};

/*
 * The protocol's answer to error <err> of a jwt_verify_* call used as <use>: sets exactly one
 * of *<error_code> (an error reply with that code, PROTOCOL-CENTRIFUGO.md §8) and
 * *<close_code> (close the connection with that code, §7), and the other to 0.
 *   connection tokens: expired 109; out of memory 100; anything else close 3500
 *   subscription tokens: expired 109; channel/user/client mismatch close 3500; out of memory
 *   100; anything else (bad signature, malformed, algorithm, audience, issuer) 103
 * The doc names 103 only for a bad signature; the other invalid subscription tokens get the
 * same answer because they are the same case to the client: a token that does not verify.
 * Cannot fail.
 */
void jwt_answer(enum jwt_use use, int err, uint32_t *error_code, uint16_t *close_code);

#endif
