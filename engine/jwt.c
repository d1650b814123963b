/* SPDX-License-Identifier: MIT */
/*
 * jwt: HS256 token verification for the Centrifugo client protocol. The contract is in jwt.h.
 *
 * Order of checks, so that nothing unauthenticated is interpreted beyond what it takes to pick
 * the algorithm: split into three parts, decode and read the header (`alg` only), check the
 * MAC, and only then parse the claims. Time, audience and issuer come after the claims' shape,
 * the subscription binding last, as Centrifugo does (its verifier checks signature and time,
 * its handler the channel and user).
 *
 * Claims are copied in two passes over the same code: the first measures, the second copies
 * into one block of that size (struct, then the subs array, then bytes), so the caller frees
 * everything with one free().
 */
#include "jwt.h"

#include "json_raw.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * base64
 */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * RFC 7515 §2: base64url without padding. Refuses '=', the '+' and '/' of plain base64, a
 * length that leaves one lone character, and non-zero unused bits in the last character (so
 * that one value has one encoding). Gives a malloc'ed buffer with a NUL after the bytes.
 */
static int b64url_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    if (n % 4 == 1)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++)
        if (b64url_value((unsigned char)s[i]) < 0)
            return -EBADMSG;
    if (n % 4 == 2 && (b64url_value((unsigned char)s[n - 1]) & 0x0f) != 0)
        return -EBADMSG;
    if (n % 4 == 3 && (b64url_value((unsigned char)s[n - 1]) & 0x03) != 0)
        return -EBADMSG;
    size_t padded = (n + 3) / 4 * 4;
    char *std = malloc(padded ? padded : 1);
    uint8_t *dst = malloc(padded / 4 * 3 + 1);
    if (!std || !dst) {
        free(std);
        free(dst);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    for (size_t i = n; i < padded; i++)
        std[i] = '=';
    size_t olen = 0;
    int rc =
        mbedtls_base64_decode(dst, padded / 4 * 3 + 1, &olen, (const unsigned char *)std, padded);
    free(std);
    if (rc != 0) {
        free(dst);
        return -EBADMSG;
    }
    dst[olen] = '\0';
    *out = dst;
    *out_len = olen;
    return 0;
}

/* Plain base64 with padding (RFC 4648 §4), as Centrifugo's `b64info`/`b64data` are. */
static int b64std_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
    size_t cap = n / 4 * 3 + 3, olen = 0;
    uint8_t *dst = malloc(cap + 1);
    *out = NULL;
    if (!dst)
        return -ENOMEM;
    if (mbedtls_base64_decode(dst, cap, &olen, (const unsigned char *)s, n) != 0) {
        free(dst);
        return -EBADMSG;
    }
    dst[olen] = '\0';
    *out = dst;
    *out_len = olen;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Header and signature
 */

/* Constant time in the length, which is public (32): no early exit on the first difference. */
static bool mac_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (uint8_t)(a[i] ^ b[i]);
    return diff == 0;
}

static int check_header(const char *s, size_t n)
{
    uint8_t *raw;
    size_t raw_len;
    int rc = b64url_decode(s, n, &raw, &raw_len);
    if (rc < 0)
        return rc;
    json_t *h = json_raw_load((const char *)raw, raw_len, 0);
    free(raw);
    if (!h || !json_is_object(h)) {
        json_decref(h);
        return -EBADMSG;
    }
    json_t *alg = json_object_get(h, "alg");
    if (!json_is_string(alg))
        rc = alg ? -EBADMSG : -ENOTSUP;
    else if (strcmp(json_string_value(alg), "HS256") != 0)
        rc = -ENOTSUP;
    else if (json_object_get(h, "crit"))
        rc = -ENOTSUP; /* RFC 7515 §4.1.11: extensions we do not know must be refused */
    json_decref(h);
    return rc;
}

static int check_signature(const struct jwt_key *key, const char *token, size_t signed_len,
                           const char *sig, size_t sig_len)
{
    uint8_t *want;
    size_t want_len;
    int rc = b64url_decode(sig, sig_len, &want, &want_len);
    if (rc < 0)
        return rc;
    uint8_t mac[32];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (!md || mbedtls_md_hmac(md, key->secret, key->secret_len, (const unsigned char *)token,
                               signed_len, mac) != 0) {
        free(want);
        return -ENOMEM;
    }
    rc = want_len == sizeof(mac) && mac_equal(mac, want, sizeof(mac)) ? 0 : -EKEYREJECTED;
    free(want);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Claims
 */

struct block {
    char *base; /* NULL while measuring */
    size_t off; /* bytes used (or needed) so far */
};

/* Copies <p>/<n> and a NUL into the block; returns the copy (NULL while measuring). */
static char *put(struct block *b, const void *p, size_t n)
{
    char *d = b->base ? b->base + b->off : NULL;
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    b->off += n + 1;
    return d;
}

/* A string claim: absent or null gives <dflt>; any other type is malformed. */
static int put_string(struct block *b, json_t *obj, const char *name, const char *dflt,
                      const char **out)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) {
        *out = dflt ? put(b, dflt, strlen(dflt)) : NULL;
        return 0;
    }
    if (!json_is_string(v))
        return -EBADMSG;
    *out = put(b, json_string_value(v), json_string_length(v));
    return 0;
}

/* RFC 7519 §2 NumericDate: a JSON number, maybe with a fraction (truncated). */
static int get_time(json_t *obj, const char *name, int64_t *out, bool *present)
{
    json_t *v = json_object_get(obj, name);
    *out = 0;
    if (present)
        *present = false;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d <= -9.2e18 || d >= 9.2e18)
            return -EBADMSG;
        *out = (int64_t)d;
    } else {
        return -EBADMSG;
    }
    if (present)
        *present = true;
    return 0;
}

/*
 * A JSON claim kept as raw text: `<b64name>` (base64 of JSON text; NULL: no such form) wins over
 * `<name>` (any JSON value, copied from the claims text <txt> exactly as written). null counts
 * as absent.
 */
static int put_json(struct block *b, json_t *obj, const char *txt, size_t txt_len, const char *name,
                    const char *b64name, struct jwt_json *out)
{
    *out = (struct jwt_json){0};
    json_t *b64 = b64name ? json_object_get(obj, b64name) : NULL;
    if (b64 && !json_is_null(b64)) {
        if (!json_is_string(b64))
            return -EBADMSG;
        uint8_t *raw;
        size_t raw_len;
        int rc = b64std_decode(json_string_value(b64), json_string_length(b64), &raw, &raw_len);
        if (rc < 0)
            return rc;
        /* The JSON protocol embeds it as is, so it must be JSON text. */
        json_t *chk = json_raw_load((const char *)raw, raw_len, JSON_DECODE_ANY);
        struct json_raw t = json_raw_trim((const char *)raw, raw_len);
        if (!chk) {
            free(raw);
            return -EBADMSG;
        }
        if (!json_is_null(chk)) {
            out->p = put(b, t.p, t.len);
            out->len = t.len;
        }
        json_decref(chk);
        free(raw);
        return 0;
    }
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v))
        return 0;
    struct json_raw r;
    if (!json_raw_member(txt, txt_len, name, strlen(name), &r))
        return -EBADMSG; /* cannot happen: jansson saw it */
    out->p = put(b, r.p, r.len);
    out->len = r.len;
    return 0;
}

static int get_override(json_t *obj, uint8_t *set, uint8_t *value)
{
    static const struct {
        const char *name;
        uint8_t bit;
    } opts[] = {
        {"presence", JWT_OV_PRESENCE},
        {"join_leave", JWT_OV_JOIN_LEAVE},
        {"force_push_join_leave", JWT_OV_FORCE_PUSH_JOIN_LEAVE},
        {"force_positioning", JWT_OV_FORCE_POSITIONING},
        {"force_recovery", JWT_OV_FORCE_RECOVERY},
    };
    json_t *ov = json_object_get(obj, "override");
    *set = *value = 0;
    if (!ov || json_is_null(ov))
        return 0;
    if (!json_is_object(ov))
        return -EBADMSG;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        json_t *o = json_object_get(ov, opts[i].name);
        if (!o || json_is_null(o))
            continue;
        /* Centrifugo wraps each in {"value": bool} (protobuf BoolValue). */
        json_t *v = json_is_object(o) ? json_object_get(o, "value") : NULL;
        if (!json_is_boolean(v))
            return -EBADMSG;
        *set |= opts[i].bit;
        if (json_is_true(v))
            *value |= opts[i].bit;
    }
    return 0;
}

struct parsed {
    json_t *root;    /* the claims object */
    const char *txt; /* its text */
    size_t txt_len;
    size_t nr_subs;    /* entries of the subs array */
    json_t *chan_list; /* `channels` entries that `subs` does not name, deduplicated, in order */
};

/* The server-side subscriptions of a connection token, into <subs> (NULL while measuring). */
static int put_subs(struct block *b, const struct parsed *p, struct jwt_sub *subs)
{
    size_t k = 0;
    size_t i;
    json_t *v;
    json_array_foreach(p->chan_list, i, v)
    {
        const char *ch = put(b, json_string_value(v), json_string_length(v));
        if (subs)
            subs[k] = (struct jwt_sub){.channel = ch};
        k++;
    }
    json_t *map = json_object_get(p->root, "subs");
    if (!json_is_object(map))
        return 0;
    struct json_raw map_txt;
    if (!json_raw_member(p->txt, p->txt_len, "subs", 4, &map_txt))
        return -EBADMSG;
    const char *name;
    json_object_foreach(map, name, v)
    {
        size_t name_len = strlen(name);
        struct json_raw ent;
        struct jwt_sub s = {0};
        if (!json_raw_member(map_txt.p, map_txt.len, name, name_len, &ent))
            return -EBADMSG;
        s.channel = put(b, name, name_len);
        int rc = put_json(b, v, ent.p, ent.len, "info", "b64info", &s.info);
        if (rc == 0)
            rc = put_json(b, v, ent.p, ent.len, "data", "b64data", &s.data);
        if (rc == 0)
            rc = get_override(v, &s.override_set, &s.override_value);
        if (rc < 0)
            return rc;
        if (subs)
            subs[k] = s;
        k++;
    }
    return 0;
}

static int fill(struct block *b, const struct parsed *p, struct jwt_claims *c, struct jwt_sub *subs)
{
    json_t *r = p->root;
    int rc = put_string(b, r, "sub", "", &c->sub);
    if (rc == 0)
        rc = put_string(b, r, "channel", NULL, &c->channel);
    if (rc == 0)
        rc = put_string(b, r, "client", NULL, &c->client);
    if (rc == 0)
        rc = get_time(r, "exp", &c->exp, NULL);
    if (rc == 0)
        rc = get_time(r, "nbf", &c->nbf, NULL);
    if (rc == 0)
        rc = get_time(r, "iat", &c->iat, NULL);
    if (rc == 0)
        rc = get_time(r, "expire_at", &c->expire_at, &c->has_expire_at);
    if (rc == 0)
        rc = put_json(b, r, p->txt, p->txt_len, "info", "b64info", &c->info);
    if (rc == 0)
        rc = put_json(b, r, p->txt, p->txt_len, "data", "b64data", &c->data);
    if (rc == 0)
        rc = put_json(b, r, p->txt, p->txt_len, "meta", NULL, &c->meta);
    if (rc == 0)
        rc = get_override(r, &c->override_set, &c->override_value);
    if (rc == 0)
        rc = put_subs(b, p, subs);
    c->subs = subs;
    c->nr_subs = (uint32_t)p->nr_subs;
    return rc;
}

/* Checks the types of `channels`, `subs`, `aud`, `iss` and lists the subscriptions. */
static int prepare(struct parsed *p)
{
    json_t *chans = json_object_get(p->root, "channels");
    json_t *map = json_object_get(p->root, "subs");
    if (map && !json_is_null(map)) {
        if (!json_is_object(map))
            return -EBADMSG;
        const char *name;
        json_t *v;
        json_object_foreach(map, name, v)
        {
            if (name[0] == '\0' || !json_is_object(v))
                return -EBADMSG;
        }
        p->nr_subs = json_object_size(map);
    }
    p->chan_list = json_array();
    json_t *seen = json_object();
    if (!p->chan_list || !seen) {
        json_decref(seen);
        return -ENOMEM;
    }
    int rc = 0;
    if (chans && !json_is_null(chans)) {
        size_t i;
        json_t *v;
        if (!json_is_array(chans))
            rc = -EBADMSG;
        json_array_foreach(chans, i, v)
        {
            if (rc < 0)
                break;
            if (!json_is_string(v) || json_string_length(v) == 0) {
                rc = -EBADMSG;
                break;
            }
            const char *ch = json_string_value(v);
            if (json_object_get(seen, ch) || (json_is_object(map) && json_object_get(map, ch)))
                continue;
            if (json_object_set(seen, ch, json_true()) != 0 ||
                json_array_append(p->chan_list, v) != 0)
                rc = -ENOMEM;
            else
                p->nr_subs++;
        }
    }
    json_decref(seen);
    json_t *aud = json_object_get(p->root, "aud");
    if (rc == 0 && aud && !json_is_null(aud) && !json_is_string(aud)) {
        size_t i;
        json_t *v;
        if (!json_is_array(aud))
            return -EBADMSG;
        json_array_foreach(aud, i, v)
        {
            if (!json_is_string(v))
                return -EBADMSG;
        }
    }
    json_t *iss = json_object_get(p->root, "iss");
    if (rc == 0 && iss && !json_is_null(iss) && !json_is_string(iss))
        return -EBADMSG;
    return rc;
}

static bool audience_ok(json_t *root, const char *want)
{
    if (!want)
        return true;
    json_t *aud = json_object_get(root, "aud");
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

static bool issuer_ok(json_t *root, const char *want)
{
    json_t *iss = json_object_get(root, "iss");
    return !want || (json_is_string(iss) && strcmp(json_string_value(iss), want) == 0);
}

static int build(const struct parsed *p, struct jwt_claims **out)
{
    struct jwt_claims scratch = {0};
    struct block b = {0};
    int rc = fill(&b, p, &scratch, NULL);
    if (rc < 0)
        return rc;
    size_t head = sizeof(struct jwt_claims) + p->nr_subs * sizeof(struct jwt_sub);
    char *mem = malloc(head + b.off);
    if (!mem)
        return -ENOMEM;
    struct jwt_claims *c = (struct jwt_claims *)(void *)mem;
    *c = (struct jwt_claims){0};
    b = (struct block){.base = mem + head};
    rc = fill(&b, p, c, p->nr_subs ? (struct jwt_sub *)(void *)(mem + sizeof(*c)) : NULL);
    if (rc < 0) {
        free(mem);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * API
 */

enum token_kind { KIND_CONNECT, KIND_SUBSCRIBE };

static int verify(const struct jwt_key *key, const char *token, size_t len, enum token_kind kind,
                  struct parsed *p)
{
    if (len == 0 || len > JWT_TOKEN_MAX)
        return -EBADMSG;
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return -EBADMSG;
    int rc = check_header(token, (size_t)(d1 - token));
    if (rc < 0)
        return rc;
    /* Decoding the claims part checks its syntax; nothing in it is read before the MAC. */
    uint8_t *raw;
    size_t raw_len;
    rc = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &raw, &raw_len);
    if (rc < 0)
        return rc;
    p->txt = (const char *)raw;
    p->txt_len = raw_len;
    rc = check_signature(key, token, (size_t)(d2 - token), d2 + 1, len - (size_t)(d2 + 1 - token));
    if (rc < 0)
        return rc;
    p->root = json_raw_load(p->txt, raw_len, 0);
    if (!p->root || !json_is_object(p->root))
        return -EBADMSG;
    rc = prepare(p);
    if (rc < 0)
        return rc;
    json_t *ch = json_object_get(p->root, "channel");
    bool has_channel = ch && !json_is_null(ch);
    /* §9: a `channel` claim marks a subscription token; a subscription token needs one. */
    if (has_channel != (kind == KIND_SUBSCRIBE))
        return -EBADMSG;
    return 0;
}

static void parsed_fini(struct parsed *p)
{
    json_decref(p->root);
    json_decref(p->chan_list);
    free((void *)p->txt);
}

/* Time, audience and issuer, on claims already built. */
static int check_claims(const struct jwt_key *key, const struct parsed *p,
                        const struct jwt_claims *c, int64_t now)
{
    if ((c->exp != 0 && c->exp <= now) || (c->nbf != 0 && c->nbf > now))
        return -EKEYEXPIRED;
    if (!audience_ok(p->root, key->audience) || !issuer_ok(p->root, key->issuer))
        return -EACCES;
    return 0;
}

int jwt_verify_connect(const struct jwt_key *key, const char *token, size_t len, int64_t now,
                       struct jwt_claims **out)
{
    struct parsed p = {0};
    *out = NULL;
    int rc = verify(key, token, len, KIND_CONNECT, &p);
    if (rc == 0)
        rc = build(&p, out);
    if (rc == 0)
        rc = check_claims(key, &p, *out, now);
    parsed_fini(&p);
    if (rc < 0) {
        jwt_claims_free(*out);
        *out = NULL;
    }
    return rc;
}

int jwt_verify_subscribe(const struct jwt_key *key, const char *token, size_t len, int64_t now,
                         const char *channel, size_t channel_len, const char *user,
                         const char *client, struct jwt_claims **out)
{
    struct parsed p = {0};
    *out = NULL;
    int rc = verify(key, token, len, KIND_SUBSCRIBE, &p);
    if (rc == 0)
        rc = build(&p, out);
    if (rc == 0)
        rc = check_claims(key, &p, *out, now);
    if (rc == 0) {
        const struct jwt_claims *c = *out;
        /* The claim has no NUL (jansson refuses \u0000 without JSON_ALLOW_NUL). */
        if (strlen(c->channel) != channel_len || memcmp(c->channel, channel, channel_len) != 0 ||
            strcmp(c->sub, user ? user : "") != 0 ||
            (c->client && strcmp(c->client, client ? client : "") != 0))
            rc = -EPERM;
    }
    parsed_fini(&p);
    if (rc < 0) {
        jwt_claims_free(*out);
        *out = NULL;
    }
    return rc;
}

void jwt_claims_free(struct jwt_claims *c)
{
    free(c);
}

int64_t jwt_expiry(const struct jwt_claims *c)
{
    return c->has_expire_at ? c->expire_at : c->exp;
}

void jwt_answer(enum jwt_use use, int err, uint32_t *error_code, uint16_t *close_code)
{
    *error_code = 0;
    *close_code = 0;
    if (err == -EKEYEXPIRED)
        *error_code = 109;
    else if (err == -ENOMEM)
        *error_code = 100;
    else if (use == JWT_USE_CONNECT || use == JWT_USE_REFRESH || err == -EPERM)
        *close_code = 3500;
    else
        *error_code = 103;
}
