/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for engine/jwt (and engine/json_raw beneath it).
 *
 * A token the fuzzer writes almost never carries a valid MAC, which would leave the claims
 * code unreached, so the first byte chooses how the rest is used:
 *   bit 0  0: the rest is a token, verified as it is
 *          1: the rest is "<header JSON>\n<claims JSON>", which the target encodes and signs
 *             with the test secret, so the claims are parsed whatever they say
 *   bit 1  verify as a subscription token (channel "$c", user "u", client "cl")
 *   bit 2  check audience "ringcast" and issuer "auth"
 *   bit 3  (signed mode) change one signature character after signing
 *
 * Invariants: the result is one the contract lists; claims are given exactly on success;
 * a correctly signed token never fails the signature and a changed signature never verifies;
 * a subscription token that verifies names the channel, user and client asked for, and a
 * connection token that verifies has no `channel`; every raw JSON claim is JSON that jansson
 * accepts, and every string is NUL-terminated inside the block (ASan sees the reads);
 * verifying twice gives the same result; jwt_answer gives exactly one answer.
 */
#include "jwt.h"

#include <errno.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort() rather than assert(): the check must hold in release builds of the target too. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define SECRET "fuzz-secret"

/* base64url without padding of <p>/<n> into <out> at *<len> (room for it is the caller's). */
static void b64url(const void *p, size_t n, char *out, size_t *len)
{
    size_t olen = 0;
    REQUIRE(mbedtls_base64_encode((unsigned char *)out + *len, n / 3 * 4 + 5, &olen, p, n) == 0);
    for (size_t i = *len; i < *len + olen; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    while (olen && out[*len + olen - 1] == '=')
        olen--;
    *len += olen;
}

/* Builds a signed token from "<header>\n<claims>"; gives a malloc'ed token and its length. */
static char *sign(const uint8_t *s, size_t n, size_t *tok_len)
{
    const uint8_t *nl = memchr(s, '\n', n);
    size_t hl = nl ? (size_t)(nl - s) : 0;
    const uint8_t *claims = nl ? nl + 1 : s;
    size_t cl = nl ? n - hl - 1 : n;
    char *tok = malloc(2 * n + 128);
    REQUIRE(tok);
    size_t len = 0;
    if (nl)
        b64url(s, hl, tok, &len);
    else
        b64url("{\"alg\":\"HS256\"}", 15, tok, &len);
    tok[len++] = '.';
    b64url(claims, cl, tok, &len);
    uint8_t mac[32];
    REQUIRE(mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                            (const unsigned char *)SECRET, strlen(SECRET),
                            (const unsigned char *)tok, len, mac) == 0);
    tok[len++] = '.';
    b64url(mac, sizeof(mac), tok, &len);
    *tok_len = len;
    return tok;
}

static void check_json(struct jwt_json j)
{
    if (!j.p) {
        REQUIRE(j.len == 0);
        return;
    }
    REQUIRE(j.len > 0 && j.p[j.len] == '\0');
    json_t *v = json_loadb(j.p, j.len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    REQUIRE(v);
    json_decref(v);
}

static void check_claims(const struct jwt_claims *c, bool subscribe)
{
    REQUIRE(c->sub);
    (void)strlen(c->sub);
    if (subscribe) {
        REQUIRE(c->channel && strcmp(c->channel, "$c") == 0);
        REQUIRE(strcmp(c->sub, "u") == 0);
        REQUIRE(!c->client || strcmp(c->client, "cl") == 0);
    } else {
        REQUIRE(!c->channel);
    }
    check_json(c->info);
    check_json(c->data);
    check_json(c->meta);
    REQUIRE(!c->nr_subs == !c->subs);
    for (uint32_t i = 0; i < c->nr_subs; i++) {
        REQUIRE(c->subs[i].channel && c->subs[i].channel[0] != '\0');
        check_json(c->subs[i].info);
        check_json(c->subs[i].data);
        REQUIRE((c->subs[i].override_value & ~c->subs[i].override_set) == 0);
        /* No channel twice (checked on the first entries only, to keep runs fast). */
        for (uint32_t k = 0; k < i && i < 64; k++)
            REQUIRE(strcmp(c->subs[k].channel, c->subs[i].channel) != 0);
    }
    REQUIRE((c->override_value & ~c->override_set) == 0);
    (void)jwt_expiry(c);
}

static int verify(const struct jwt_key *k, const char *tok, size_t len, bool subscribe,
                  struct jwt_claims **c)
{
    /* The token in an exact-size heap buffer, so that a read past it is caught. */
    char *t = malloc(len ? len : 1);
    REQUIRE(t);
    if (len)
        memcpy(t, tok, len);
    int rc = subscribe ? jwt_verify_subscribe(k, t, len, 1900000000, "$c", 2, "u", "cl", c)
                       : jwt_verify_connect(k, t, len, 1900000000, c);
    free(t);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4 * JWT_TOKEN_MAX)
        return 0;
    uint8_t cfg = data[0];
    bool signed_mode = cfg & 1, subscribe = cfg & 2, corrupt = signed_mode && (cfg & 8);
    struct jwt_key k = {.secret = (const uint8_t *)SECRET, .secret_len = strlen(SECRET)};
    if (cfg & 4) {
        k.audience = "ringcast";
        k.issuer = "auth";
    }
    size_t len = size - 1;
    char *tok = NULL;
    if (signed_mode) {
        tok = sign(data + 1, size - 1, &len);
        if (corrupt) {
            size_t dot = len;
            while (tok[dot - 1] != '.')
                dot--;
            char *sig = tok + dot; /* after the last '.', 43 characters */
            size_t pos = (size_t)cfg >> 4 < (size_t)(tok + len - sig) ? (size_t)cfg >> 4 : 0;
            sig[pos] = sig[pos] == 'A' ? 'B' : 'A';
        }
    }
    const char *t = tok ? tok : (const char *)data + 1;

    struct jwt_claims *c = (struct jwt_claims *)(uintptr_t)1;
    int rc = verify(&k, t, len, subscribe, &c);
    REQUIRE(rc == 0 || rc == -EBADMSG || rc == -ENOTSUP || rc == -EKEYREJECTED ||
            rc == -EKEYEXPIRED || rc == -EACCES || rc == -EPERM);
    REQUIRE(rc != -EPERM || subscribe);
    REQUIRE(rc == 0 ? c != NULL : c == NULL);
    if (signed_mode && !corrupt && len <= JWT_TOKEN_MAX)
        REQUIRE(rc != -EKEYREJECTED);
    if (corrupt)
        REQUIRE(rc != 0);
    if (rc == 0)
        check_claims(c, subscribe);
    jwt_claims_free(c);

    struct jwt_claims *again;
    REQUIRE(verify(&k, t, len, subscribe, &again) == rc);
    jwt_claims_free(again);

    for (int use = JWT_USE_CONNECT; use <= JWT_USE_SUB_REFRESH; use++) {
        uint32_t e;
        uint16_t cl;
        jwt_answer((enum jwt_use)use, rc ? rc : -EBADMSG, &e, &cl);
        REQUIRE(!e != !cl);
        REQUIRE(cl == 0 || cl == 3500);
    }
    free(tok);
    return 0;
}
